//! Pure rendering of the model into the nftables *data* the table holds.
//!
//! The table's chains and rules are fixed (see the crate docs); everything
//! that changes with Services lives in map and set elements. A [`Ruleset`]
//! is exactly that element content, keyed by [`Frontend`] (a ClusterIP,
//! external or LB address, or a node port), so two rulesets can be diffed
//! into element operations ([`crate::diff`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::model::{Endpoint, Protocol, ProxyState, ServicePortState};
use crate::table::Ipv4Cidr;

/// Fewest buckets a service with endpoints gets.
pub const MIN_BUCKETS: usize = 16;
/// Most buckets a service gets; endpoints beyond this many get no traffic.
pub const MAX_BUCKETS: usize = 1 << 16;

/// An IP address clients hit: destination address, protocol and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceAddr {
    /// ClusterIP, external IP or load-balancer IP.
    pub ip: Ipv4Addr,
    /// Protocol.
    pub protocol: Protocol,
    /// Service port.
    pub port: u16,
}

/// Where clients connect: one key of the table's dispatch maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Frontend {
    /// `ip . proto . port` in `service_ports` (ClusterIP, external IP, LB IP).
    Ip(ServiceAddr),
    /// `proto . port` in `node_ports`, on the node-port addresses.
    NodePort {
        /// Protocol.
        protocol: Protocol,
        /// The node port.
        port: u16,
    },
}

impl From<ServiceAddr> for Frontend {
    fn from(addr: ServiceAddr) -> Self {
        Self::Ip(addr)
    }
}

/// What one frontend renders to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// The endpoint behind each bucket (index = bucket); empty: rejected.
    pub buckets: Vec<Endpoint>,
    /// Whether its traffic is marked for masquerading (reached from outside
    /// the cluster: node port, external IP, LB IP).
    pub masquerade: bool,
    /// Sources allowed to reach it (LB IPs with `loadBalancerSourceRanges`),
    /// disjoint; empty: every source.
    pub source_ranges: Vec<Ipv4Cidr>,
    /// With no buckets: drop its traffic (a `Local` policy and no endpoint
    /// on this node) instead of rejecting it (no endpoints at all).
    pub drop_unserved: bool,
    /// ClientIP affinity timeout (seconds), if the port has affinity.
    pub affinity: Option<u32>,
}

/// Element content of the proxy table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Per frontend, its buckets and options.
    pub services: BTreeMap<Frontend, Target>,
    /// Local endpoint IPs that may talk to themselves through a service
    /// (hairpin), which must be masqueraded.
    pub hairpin: BTreeSet<Ipv4Addr>,
}

impl Ruleset {
    /// Number of nft elements this ruleset holds (for logs and benchmarks).
    pub fn element_count(&self) -> usize {
        // With endpoints: one dispatch entry plus the buckets; without: one
        // `no_endpoints` (or drop) entry; plus masquerade and firewall entries.
        let per_frontend: usize = self
            .services
            .values()
            .map(|t| {
                let firewall = if t.source_ranges.is_empty() { 0 } else { 1 + t.source_ranges.len() };
                let affinity = if t.affinity.is_some() { 3 } else { 0 };
                t.buckets.len().max(1)
                    + usize::from(!t.buckets.is_empty())
                    + usize::from(t.masquerade)
                    + firewall
                    + affinity
            })
            .sum();
        per_frontend + self.hairpin.len()
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

/// Every frontend of one service port: its ClusterIP, node port, external
/// IPs and LB IPs, unique, in that order.
pub fn port_frontends(state: &ServicePortState) -> Vec<Frontend> {
    let (protocol, port) = (state.port.protocol, state.port.port);
    let external = &state.external;
    let ip = |ip: &Ipv4Addr| Frontend::Ip(ServiceAddr { ip: *ip, protocol, port });
    let mut frontends = vec![ip(&state.port.cluster_ip)];
    frontends.extend(external.node_port.map(|port| Frontend::NodePort { protocol, port }));
    for frontend in external.external_ips.iter().chain(&external.load_balancer_ips).map(ip) {
        if !frontends.contains(&frontend) {
            frontends.push(frontend);
        }
    }
    frontends
}

/// What `frontend` of one service port renders to: buckets over the
/// port's endpoints (only those on this node under a `Local` policy:
/// `internalTrafficPolicy` for the ClusterIP, `externalTrafficPolicy` for
/// the rest); marked for masquerading unless it is the ClusterIP
/// (`nat_postrouting` handles that by address) or keeps the client's
/// address (external policy `Local`); LB IPs limited to the source ranges.
pub fn render_frontend(state: &ServicePortState, frontend: Frontend) -> Target {
    let external = &state.external;
    let (is_cluster_ip, is_lb) = match frontend {
        Frontend::Ip(addr) => (addr.ip == state.port.cluster_ip, external.load_balancer_ips.contains(&addr.ip)),
        Frontend::NodePort { .. } => (false, false),
    };
    let local_only = if is_cluster_ip { state.internal_local } else { external.local };
    let endpoints = if local_only { &state.node_endpoints } else { &state.endpoints };
    Target {
        buckets: fill_buckets(endpoints),
        masquerade: !is_cluster_ip && !external.local,
        source_ranges: if is_lb { external.source_ranges.clone() } else { Vec::new() },
        // No endpoint here while the cluster has some: drop (as upstream),
        // rather than reject as for a service with no endpoints at all.
        drop_unserved: local_only && endpoints.is_empty() && !state.endpoints.is_empty(),
        affinity: state.affinity_timeout,
    }
}

/// Every frontend of one service port with what it renders to.
pub fn render_port(state: &ServicePortState) -> Vec<(Frontend, Target)> {
    port_frontends(state).into_iter().map(|frontend| (frontend, render_frontend(state, frontend))).collect()
}

/// Renders the element content for `state`. If two service ports claim the
/// same frontend (which the apiserver mostly prevents), the first by key
/// wins.
pub fn render_ruleset(state: &ProxyState) -> Ruleset {
    let mut ruleset = Ruleset::default();
    for port_state in state.services.values() {
        for (frontend, target) in render_port(port_state) {
            if ruleset.services.contains_key(&frontend) {
                continue;
            }
            if !target.buckets.is_empty() {
                ruleset.hairpin.extend(port_state.local_ips.iter().copied());
            }
            ruleset.services.insert(frontend, target);
        }
    }
    ruleset
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ExternalAccess, ServiceKey, ServicePort};
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
                    ..Default::default()
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
        assert_eq!(ruleset.services[&a.into()].buckets.len(), 16);
        assert!(ruleset.services[&b.into()].buckets.is_empty(), "no endpoints: rejected");
        assert_eq!(ruleset.hairpin, BTreeSet::from([Ipv4Addr::new(10, 244, 0, 0), Ipv4Addr::new(10, 244, 0, 1)]));
        assert_eq!(ruleset.element_count(), (1 + 16) + 1 + 2);
    }

    #[test]
    fn render_keeps_the_first_claim_on_a_duplicate_address() {
        let ruleset = render_ruleset(&state_with(&[("a", [10, 96, 0, 1], 80, 1), ("b", [10, 96, 0, 1], 80, 0)]));
        assert_eq!(ruleset.services.len(), 1);
        assert_eq!(ruleset.services.values().next().map(|t| t.buckets.len()), Some(16));
    }

    #[test]
    fn every_frontend_of_a_port_shares_its_buckets_and_only_lb_ips_are_firewalled() {
        let mut state = state_with(&[("a", [10, 96, 0, 1], 80, 2)]);
        let range: Ipv4Cidr = "192.0.2.0/24".parse().expect("cidr");
        if let Some(port) = state.services.values_mut().next() {
            port.external = ExternalAccess {
                node_port: Some(30080),
                external_ips: vec![Ipv4Addr::new(198, 51, 100, 1)],
                load_balancer_ips: vec![Ipv4Addr::new(198, 51, 100, 2)],
                source_ranges: vec![range],
                local: false,
            };
        }
        let ruleset = render_ruleset(&state);
        let at = |ip: [u8; 4]| Frontend::Ip(ServiceAddr { ip: ip.into(), protocol: Protocol::Tcp, port: 80 });
        let node_port = Frontend::NodePort { protocol: Protocol::Tcp, port: 30080 };
        let cases = [
            (at([10, 96, 0, 1]), false, vec![]),
            (node_port, true, vec![]),
            (at([198, 51, 100, 1]), true, vec![]),
            (at([198, 51, 100, 2]), true, vec![range]),
        ];
        assert_eq!(ruleset.services.len(), cases.len());
        let buckets = fill_buckets(&endpoints(2));
        for (frontend, masquerade, source_ranges) in cases {
            let want = Target { buckets: buckets.clone(), masquerade, source_ranges, ..Target::default() };
            assert_eq!(ruleset.services.get(&frontend), Some(&want), "{frontend:?}");
        }
        assert_eq!(ruleset.element_count(), 4 * 17 + 3 + 2 + 2);
    }

    #[test]
    fn local_policies_use_node_endpoints_keep_the_source_and_drop_when_none() {
        let mut state = state_with(&[("a", [10, 96, 0, 1], 80, 3)]);
        let Some(port) = state.services.values_mut().next() else { panic!("one port") };
        port.external.node_port = Some(30080);
        port.external.local = true;
        port.node_endpoints = endpoints(1);
        let node_port = Frontend::NodePort { protocol: Protocol::Tcp, port: 30080 };
        let cluster_ip =
            Frontend::Ip(ServiceAddr { ip: Ipv4Addr::new(10, 96, 0, 1), protocol: Protocol::Tcp, port: 80 });
        let ruleset = render_ruleset(&state);
        assert_eq!(ruleset.services[&node_port].buckets, fill_buckets(&endpoints(1)), "external: local only");
        assert!(!ruleset.services[&node_port].masquerade, "external Local keeps the client address");
        assert_eq!(ruleset.services[&cluster_ip].buckets, fill_buckets(&endpoints(3)), "internal: cluster-wide");

        let Some(port) = state.services.values_mut().next() else { panic!("one port") };
        port.node_endpoints.clear();
        port.internal_local = true;
        let ruleset = render_ruleset(&state);
        for frontend in [node_port, cluster_ip] {
            let target = &ruleset.services[&frontend];
            assert!(target.buckets.is_empty() && target.drop_unserved, "{frontend:?}: dropped");
        }
        let Some(port) = state.services.values_mut().next() else { panic!("one port") };
        port.endpoints.clear();
        let ruleset = render_ruleset(&state);
        assert!(!ruleset.services[&node_port].drop_unserved, "no endpoints at all: rejected, not dropped");
    }
}
