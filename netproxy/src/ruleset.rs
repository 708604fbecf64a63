//! Pure rendering of the model into the nftables *data* the table holds.
//!
//! The table's chains and rules are fixed (see the crate docs); everything
//! that changes with Services lives in map and set elements. A [`Ruleset`]
//! is exactly that element content, so two rulesets can be diffed into
//! element operations ([`crate::diff`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::model::{Endpoint, Protocol, ProxyState};

/// Fewest buckets a service with endpoints gets.
pub const MIN_BUCKETS: usize = 16;
/// Most buckets a service gets; endpoints beyond this many get no traffic.
pub const MAX_BUCKETS: usize = 1 << 16;

/// The key clients hit: destination address, protocol and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceAddr {
    /// ClusterIP.
    pub ip: Ipv4Addr,
    /// Protocol.
    pub protocol: Protocol,
    /// Service port.
    pub port: u16,
}

/// Element content of the proxy table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Per service address, the endpoint behind each bucket (index = bucket).
    /// An empty vector means the service has no endpoints and is rejected.
    pub services: BTreeMap<ServiceAddr, Vec<Endpoint>>,
    /// Local endpoint IPs that may talk to themselves through a service
    /// (hairpin), which must be masqueraded.
    pub hairpin: BTreeSet<Ipv4Addr>,
}

impl Ruleset {
    /// Number of nft elements this ruleset holds (for logs and benchmarks).
    pub fn element_count(&self) -> usize {
        // With endpoints: one dispatch entry plus the buckets; without: one
        // `no_endpoints` entry.
        let per_service: usize = self.services.values().map(|b| if b.is_empty() { 1 } else { b.len() + 1 }).sum();
        per_service + self.hairpin.len()
    }
}

/// Bucket count for `endpoints` endpoints: a power of two, at least
/// [`MIN_BUCKETS`], at least one bucket per endpoint, at most [`MAX_BUCKETS`].
pub fn bucket_count(endpoints: usize) -> usize {
    endpoints.next_power_of_two().clamp(MIN_BUCKETS, MAX_BUCKETS)
}

/// Every bucket count a service can have; one nft chain exists per value.
pub fn bucket_tiers() -> impl Iterator<Item = usize> {
    std::iter::successors(Some(MIN_BUCKETS), |k| Some(k * 2)).take_while(|k| *k <= MAX_BUCKETS)
}

/// Fills buckets round-robin so that each endpoint gets K/n or K/n+1.
pub fn fill_buckets(endpoints: &[Endpoint]) -> Vec<Endpoint> {
    if endpoints.is_empty() {
        return Vec::new();
    }
    (0..bucket_count(endpoints.len())).map(|bucket| endpoints[bucket % endpoints.len()]).collect()
}

/// Renders the element content for `state`. If two service ports claim the
/// same address (which the apiserver prevents), the first by key wins.
pub fn render_ruleset(state: &ProxyState) -> Ruleset {
    let mut ruleset = Ruleset::default();
    for port_state in state.services.values() {
        let addr = ServiceAddr {
            ip: port_state.port.cluster_ip,
            protocol: port_state.port.protocol,
            port: port_state.port.port,
        };
        if ruleset.services.contains_key(&addr) {
            continue;
        }
        let buckets = fill_buckets(&port_state.endpoints);
        if !buckets.is_empty() {
            ruleset.hairpin.extend(port_state.local_ips.iter().copied());
        }
        ruleset.services.insert(addr, buckets);
    }
    ruleset
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ServiceKey, ServicePort, ServicePortState};
    use std::collections::HashMap;

    fn endpoints(n: usize) -> Vec<Endpoint> {
        (0..n)
            .map(|i| Endpoint { ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 244, 0, 0)) + i as u32), port: 8080 })
            .collect()
    }

    fn state_with(ports: &[(&str, [u8; 4], u16, usize)]) -> ProxyState {
        let mut state = ProxyState::default();
        for (name, ip, port, n) in ports {
            state.services.insert(
                ServiceKey { namespace: "ns".into(), name: (*name).into(), port_name: String::new() },
                ServicePortState {
                    port: ServicePort { cluster_ip: Ipv4Addr::from(*ip), port: *port, protocol: Protocol::Tcp },
                    endpoints: endpoints(*n),
                    local_ips: endpoints(*n).iter().map(|e| e.ip).collect(),
                },
            );
        }
        state
    }

    #[test]
    fn bucket_count_is_a_power_of_two_covering_all_endpoints() {
        let cases = [(1, 16), (10, 16), (16, 16), (17, 32), (100, 128), (1 << 20, MAX_BUCKETS)];
        for (endpoints, want) in cases {
            assert_eq!(bucket_count(endpoints), want, "{endpoints} endpoints");
        }
        let tiers: Vec<usize> = bucket_tiers().collect();
        assert_eq!(tiers.first(), Some(&MIN_BUCKETS));
        assert_eq!(tiers.last(), Some(&MAX_BUCKETS));
        assert_eq!(tiers.len(), 13);
    }

    #[test]
    fn buckets_are_balanced_within_one() {
        for n in [1, 2, 3, 5, 7, 10, 16, 17, 33, 100] {
            let buckets = fill_buckets(&endpoints(n));
            let k = buckets.len();
            let mut counts: HashMap<Endpoint, usize> = HashMap::new();
            for endpoint in &buckets {
                *counts.entry(*endpoint).or_default() += 1;
            }
            assert_eq!(counts.len(), n, "every one of {n} endpoints gets a bucket");
            for (endpoint, count) in counts {
                assert!(count == k / n || count == k / n + 1, "{n} endpoints in {k} buckets: {endpoint:?} got {count}");
            }
        }
    }

    #[test]
    fn render_maps_services_to_buckets_and_collects_hairpin_ips() {
        let ruleset = render_ruleset(&state_with(&[("a", [10, 96, 0, 1], 80, 2), ("b", [10, 96, 0, 2], 53, 0)]));
        let a = ServiceAddr { ip: Ipv4Addr::new(10, 96, 0, 1), protocol: Protocol::Tcp, port: 80 };
        let b = ServiceAddr { ip: Ipv4Addr::new(10, 96, 0, 2), port: 53, ..a };
        assert_eq!(ruleset.services[&a].len(), 16);
        assert!(ruleset.services[&b].is_empty(), "no endpoints: rejected");
        assert_eq!(ruleset.hairpin, BTreeSet::from([Ipv4Addr::new(10, 244, 0, 0), Ipv4Addr::new(10, 244, 0, 1)]));
        assert_eq!(ruleset.element_count(), (1 + 16) + 1 + 2);
    }

    #[test]
    fn render_keeps_the_first_claim_on_a_duplicate_address() {
        let ruleset = render_ruleset(&state_with(&[("a", [10, 96, 0, 1], 80, 1), ("b", [10, 96, 0, 1], 80, 0)]));
        assert_eq!(ruleset.services.len(), 1);
        assert_eq!(ruleset.services.values().next().map(Vec::len), Some(16));
    }
}
