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
/// Set of service addresses dropped (`Local` policy, no local endpoint).
pub const NO_LOCAL_ENDPOINTS_SET: &str = "no_local_endpoints";
/// Set of proto . node port dropped (`Local` policy, no local endpoint).
pub const NODE_PORT_NO_LOCAL_ENDPOINTS_SET: &str = "node_port_no_local_endpoints";
/// Verdict map: proto . node port -> `goto` the node-port bucket chain.
pub const NODE_PORTS_MAP: &str = "node_ports";
/// Map: proto . node port . bucket -> endpoint address . port.
pub const NODE_PORT_BACKENDS_MAP: &str = "node_port_backends";
/// Set of proto . node port with no endpoints (rejected).
pub const NODE_PORT_NO_ENDPOINTS_SET: &str = "node_port_no_endpoints";
/// Interval set of the addresses node ports are answered on (static).
pub const NODE_PORT_ADDRESSES_SET: &str = "node_port_addresses";
/// Set of external / LB addresses (`ip . proto . port`) whose traffic is
/// marked for masquerading.
pub const MASQUERADE_ADDRS_SET: &str = "masquerade_addrs";
/// Set of proto . node port whose traffic is marked for masquerading.
pub const MASQUERADE_NODE_PORTS_SET: &str = "masquerade_node_ports";
/// Verdict map: affinity frontend (`ip . proto . port`) -> `jump` its
/// lookup chain.
pub const AFFINITY_PORTS_MAP: &str = "affinity_ports";
/// Verdict map: affinity node port -> `jump` its lookup chain.
pub const AFFINITY_NODE_PORTS_MAP: &str = "affinity_node_ports";
/// Verdict map: affinity frontend -> `jump` its record chain.
pub const AFFINITY_RECORD_MAP: &str = "affinity_record";
/// Verdict map: affinity node port -> `jump` its record chain.
pub const AFFINITY_RECORD_NODE_PORTS_MAP: &str = "affinity_record_node_ports";
/// Regular chain (from `nat_postrouting`) recording affinity choices.
pub const AFFINITY_RECORD_CHAIN: &str = "affinity_record_new";
/// Set of LB addresses (`ip . proto . port`) with source ranges.
pub const FIREWALLED_SET: &str = "lb_firewalled";
/// Interval set of `ip . proto . port . source range` allowed to LB addresses.
pub const SOURCE_RANGES_SET: &str = "lb_source_ranges";
/// Set of `ip . ip` pairs (endpoint to itself) that need masquerading.
pub const HAIRPIN_SET: &str = "hairpin";
/// Regular chain dispatching on `service_ports`.
pub const SERVICES_CHAIN: &str = "services";
/// Prefix of the per-bucket-count DNAT chains (`buckets_16`, `buckets_32`, ...).
pub const BUCKETS_CHAIN_PREFIX: &str = "buckets_";
/// Regular chain dispatching node ports on `node_ports`.
pub const NODE_PORTS_CHAIN: &str = "node_port_dispatch";
/// Prefix of the node-port DNAT chains (`node_port_buckets_16`, ...).
pub const NODE_PORT_BUCKETS_CHAIN_PREFIX: &str = "node_port_buckets_";
/// Base chain: filter prerouting before DNAT, LB source-range checks.
pub const FIREWALL_CHAIN: &str = "lb_firewall";
/// Packet mark bit asking `nat_postrouting` to masquerade (as upstream's).
pub const MASQUERADE_MARK: u32 = 0x4000;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// The /32 network of one address.
    pub const fn host(ip: Ipv4Addr) -> Self {
        Self { network: ip, prefix: 32 }
    }

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
    /// Node ports are answered on local addresses in these ranges (never on
    /// 127.0.0.0/8); empty: on every local address.
    pub node_port_addresses: Vec<Ipv4Cidr>,
    /// Masquerade all ClusterIP traffic, from pods too (kube-proxy's
    /// `--masquerade-all`), not only traffic from outside the pod range.
    pub masquerade_all: bool,
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
            node_port_addresses: Vec::new(),
            masquerade_all: false,
        })
    }

    /// Masquerades all ClusterIP traffic (`--masquerade-all`).
    pub fn with_masquerade_all(mut self, masquerade_all: bool) -> Self {
        self.masquerade_all = masquerade_all;
        self
    }

    /// Sets the node-port address ranges (`--nodeport-addresses`).
    pub fn with_node_port_addresses<S: AsRef<str>>(mut self, ranges: &[S]) -> Result<Self, ConfigError> {
        let parsed = ranges.iter().map(|range| {
            let range = range.as_ref().trim();
            range.parse().map_err(|()| ConfigError::InvalidCidr { what: "node_port_addresses", value: range.into() })
        });
        self.node_port_addresses = crate::model::disjoint(parsed.collect::<Result<_, _>>()?);
        Ok(self)
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
