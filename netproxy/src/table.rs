//! Names of every nft object in the proxy table, and the validated static
//! parameters ([`TableSpec`]) the fixed part of the table depends on.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Verdict map: service address -> `goto` the bucket chain for its size.
pub const SERVICE_PORTS_MAP: &str = "service_ports";
/// Map: service address . bucket -> endpoint address . port.
pub const BACKENDS_MAP: &str = "backends";
/// Set of service addresses with no endpoints (rejected).
pub const NO_ENDPOINTS_SET: &str = "no_endpoints";
/// Set of `ip . ip` pairs (endpoint to itself) that need masquerading.
pub const HAIRPIN_SET: &str = "hairpin";
/// Regular chain dispatching on `service_ports`.
pub const SERVICES_CHAIN: &str = "services";
/// Prefix of the per-bucket-count DNAT chains (`buckets_16`, `buckets_32`, ...).
pub const BUCKETS_CHAIN_PREFIX: &str = "buckets_";
/// Base chain: nat prerouting (dstnat).
pub const NAT_PREROUTING_CHAIN: &str = "nat_prerouting";
/// Base chain: nat output (-100).
pub const NAT_OUTPUT_CHAIN: &str = "nat_output";
/// Base chain: nat postrouting (srcnat), masquerading.
pub const NAT_POSTROUTING_CHAIN: &str = "nat_postrouting";
/// Regular chain rejecting service traffic that was not DNATed.
pub const REJECT_CHAIN: &str = "reject_unserved";
/// Base chain: filter input.
pub const FILTER_INPUT_CHAIN: &str = "filter_input";
/// Base chain: filter forward.
pub const FILTER_FORWARD_CHAIN: &str = "filter_forward";
/// Base chain: filter output.
pub const FILTER_OUTPUT_CHAIN: &str = "filter_output";

/// Errors in the static proxy parameters.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A CIDR did not parse as `a.b.c.d/len`.
    #[error("invalid IPv4 CIDR {value:?} for {what}")]
    InvalidCidr {
        /// Which setting.
        what: &'static str,
        /// The offending value.
        value: String,
    },
    /// A table name nft would not accept as an identifier.
    #[error("invalid nft table name {name:?}: use ASCII letters, digits and '_', starting with a letter")]
    InvalidTableName {
        /// The offending name.
        name: String,
    },
}

/// An IPv4 network, printed as `a.b.c.d/len` with host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        mask(self.prefix) & u32::from(ip) == u32::from(self.network)
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Ipv4Cidr {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        let (addr, prefix) = value.split_once('/').ok_or(())?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| ())?;
        let prefix: u8 = prefix.parse().map_err(|_| ())?;
        if prefix > 32 {
            return Err(());
        }
        Ok(Self { network: Ipv4Addr::from(u32::from(addr) & mask(prefix)), prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Checks that `name` is a plain nft identifier (so it cannot inject script).
pub fn validate_table_name(name: &str) -> Result<(), ConfigError> {
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64;
    if valid {
        Ok(())
    } else {
        Err(ConfigError::InvalidTableName { name: name.into() })
    }
}

/// Validated parameters of the fixed part of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// nft table name (family `ip`).
    pub name: String,
    /// Service ClusterIP range: anything here that is not DNATed is rejected.
    pub service_cidr: Ipv4Cidr,
    /// Pod range: DNATed traffic from outside it is masqueraded.
    pub cluster_cidr: Ipv4Cidr,
}

impl TableSpec {
    /// Validates the table name and parses both CIDRs.
    pub fn new(name: &str, service_cidr: &str, cluster_cidr: &str) -> Result<Self, ConfigError> {
        validate_table_name(name)?;
        let cidr = |what, value: &str| {
            value.parse::<Ipv4Cidr>().map_err(|()| ConfigError::InvalidCidr { what, value: value.into() })
        };
        Ok(Self {
            name: name.into(),
            service_cidr: cidr("service_cidr", service_cidr)?,
            cluster_cidr: cidr("cluster_cidr", cluster_cidr)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_normalise_and_reject_garbage() {
        let cases = [
            ("10.96.0.0/16", Some("10.96.0.0/16")),
            ("10.96.7.9/16", Some("10.96.0.0/16")),
            ("0.0.0.0/0", Some("0.0.0.0/0")),
            ("10.0.0.1/32", Some("10.0.0.1/32")),
            ("10.96.0.0/33", None),
            ("10.96.0.0", None),
            ("fd00::/64", None),
        ];
        for (input, want) in cases {
            let got = input.parse::<Ipv4Cidr>().ok().map(|c| c.to_string());
            assert_eq!(got.as_deref(), want, "{input}");
        }
        let cidr: Ipv4Cidr = "10.96.0.0/16".parse().expect("valid");
        assert!(cidr.contains(Ipv4Addr::new(10, 96, 255, 1)));
        assert!(!cidr.contains(Ipv4Addr::new(10, 97, 0, 1)));
    }

    #[test]
    fn table_names_must_be_plain_identifiers() {
        for good in ["bosun", "bosun_np_123", "T1"] {
            assert!(TableSpec::new(good, "10.96.0.0/16", "10.244.0.0/16").is_ok(), "{good}");
        }
        for bad in ["", "1abc", "a b", "a;flush ruleset", "a-b"] {
            assert!(
                matches!(
                    TableSpec::new(bad, "10.96.0.0/16", "10.244.0.0/16"),
                    Err(ConfigError::InvalidTableName { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            TableSpec::new("t", "10.96.0.0/16", "nope"),
            Err(ConfigError::InvalidCidr { what: "cluster_cidr", .. })
        ));
    }
}
