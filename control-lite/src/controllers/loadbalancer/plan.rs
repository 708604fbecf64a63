//! The bare-metal load-balancer decisions, without I/O: parsing the
//! address pool, and which ingress IP each `type: LoadBalancer` Service
//! (of no `loadBalancerClass`) should show.
//!
//! Two pools: a dedicated one (`--load-balancer-pool`), whose addresses
//! each go to one Service, and a shared one (`--load-balancer-shared-pool`,
//! the node's IP under `bosun up`), whose addresses several Services share
//! as long as no two of them use the same protocol and port (k3s's
//! ServiceLB shares node IPs the same way). A Service gets a dedicated
//! address when one is free, else a shared one.
//!
//! Level-triggered: the IPs in use are read from the Services' own
//! statuses, so nothing is kept between passes and a restarted control
//! plane decides the same. Older Services keep their IPs when two claim
//! the same one; a Service asking for `spec.loadBalancerIP` gets it if it
//! is in a pool and free for its ports. Work per pass is bounded by the
//! Services: finding an address skips at most the IPs in use.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// A pool entry that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("load-balancer pool entry {entry:?}: {why} (want a.b.c.d/len or a.b.c.d-e.f.g.h, IPv4)")]
pub struct PoolError {
    entry: String,
    why: &'static str,
}

/// The addresses load-balancer IPs are taken from: inclusive IPv4 ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pool {
    ranges: Vec<(u32, u32)>,
}

impl Pool {
    /// Parses CIDRs (`192.0.2.240/28`: the network and broadcast addresses
    /// left out up to /30) and ranges (`192.0.2.240-192.0.2.250`).
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Pool, PoolError> {
        let mut ranges = Vec::new();
        for entry in entries.into_iter().flat_map(|e| e.split(',')).map(str::trim).filter(|e| !e.is_empty()) {
            let fail = |why| PoolError { entry: entry.to_string(), why };
            let ip =
                |text: &str| text.trim().parse::<Ipv4Addr>().map(u32::from).map_err(|_| fail("not an IPv4 address"));
            let range = if let Some((net, len)) = entry.split_once('/') {
                let len: u32 = len.parse().ok().filter(|l| *l <= 32).ok_or_else(|| fail("bad prefix length"))?;
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                let first = ip(net)? & mask;
                let last = first | !mask;
                if len <= 30 {
                    (first + 1, last - 1)
                } else {
                    (first, last)
                }
            } else if let Some((from, to)) = entry.split_once('-') {
                let (from, to) = (ip(from)?, ip(to)?);
                if from > to {
                    return Err(fail("the range ends before it starts"));
                }
                (from, to)
            } else {
                let one = ip(entry)?;
                (one, one)
            };
            ranges.push(range);
        }
        Ok(Pool { ranges })
    }

    /// Whether the pool has no address.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether `ip` is in the pool.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        self.ranges.iter().any(|(first, last)| (*first..=*last).contains(&ip))
    }

    /// The lowest address of the pool that `fits`. `fits` accepts every
    /// pool address not in use, so the addresses skipped are in use: the
    /// work is bounded by the Services.
    fn first_fitting(&self, fits: impl Fn(Ipv4Addr) -> bool) -> Option<Ipv4Addr> {
        for (first, last) in &self.ranges {
            let mut candidate = *first;
            loop {
                let ip = Ipv4Addr::from(candidate);
                if fits(ip) {
                    return Some(ip);
                }
                if candidate == *last {
                    break;
                }
                candidate += 1;
            }
        }
        None
    }
}

/// What the planner needs of one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    /// `namespace/name`.
    pub key: String,
    /// Creation time (seconds) and key order: older Services win ties.
    pub age_order: (i64, String),
    /// `type: LoadBalancer` with no `loadBalancerClass` (ours to serve).
    pub ours: bool,
    /// `spec.loadBalancerIP`, when set and IPv4.
    pub requested: Option<Ipv4Addr>,
    /// The IPv4 ingress IPs its status shows.
    pub current: Vec<Ipv4Addr>,
    /// Its `(protocol, port)` pairs: what it takes of a shared address.
    pub ports: BTreeSet<(String, i32)>,
}

/// The addresses load balancers may take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pools {
    /// One Service per address.
    pub dedicated: Pool,
    /// Several Services per address, on different ports.
    pub shared: Pool,
    /// Ports no Service may take on a shared address (the node's own
    /// services when the node's IP is shared: ssh, the apiserver, the
    /// kubelet).
    pub reserved_ports: BTreeSet<i32>,
}

/// The ports kept off shared addresses by default: ssh, etcd, the
/// apiserver, and the kubelet's, kube-proxy's and controllers' ports.
pub const DEFAULT_RESERVED_PORTS: &[i32] = &[22, 2379, 2380, 6443, 10248, 10249, 10250, 10255, 10256, 10257, 10259];

impl Pools {
    /// Whether there is no address at all (the controller need not run).
    pub fn is_empty(&self) -> bool {
        self.dedicated.is_empty() && self.shared.is_empty()
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        self.dedicated.contains(ip) || self.shared.contains(ip)
    }

    /// Whether `service` may take `ip` given what is `used`.
    fn fits(&self, ip: Ipv4Addr, service: &ServiceView, used: &Used) -> bool {
        if self.dedicated.contains(ip) {
            return !used.contains_key(&ip);
        }
        self.shared.contains(ip)
            && self.may_share(service)
            && used.get(&ip).is_none_or(|taken| taken.is_disjoint(&service.ports))
    }

    /// Whether `service` may take a shared address at all: none of its
    /// ports is reserved.
    fn may_share(&self, service: &ServiceView) -> bool {
        service.ports.iter().all(|(_, port)| !self.reserved_ports.contains(port))
    }
}

/// The addresses handed out so far, with the ports taken on each.
type Used = BTreeMap<Ipv4Addr, BTreeSet<(String, i32)>>;

fn take(used: &mut Used, ip: Ipv4Addr, service: &ServiceView) {
    used.entry(ip).or_default().extend(service.ports.iter().cloned());
}

/// What one Service's status should become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Show this ingress IP.
    Assign(Ipv4Addr),
    /// No longer a load balancer of ours, or no address is left for it:
    /// drop the pools' ingress IPs.
    Clear,
    /// No address could be given (pool exhausted, or the requested one is
    /// outside the pool or taken); the reason is for an Event.
    Unassignable(&'static str),
}

/// The changes for `services` given `pools` (Services already right are
/// not listed).
pub fn plan(services: &[ServiceView], pools: &Pools) -> Vec<(String, Change)> {
    let mut order: Vec<&ServiceView> = services.iter().collect();
    order.sort_by(|a, b| a.age_order.cmp(&b.age_order));
    let mut used = Used::new();
    let mut waiting: Vec<&ServiceView> = Vec::new();
    let mut changes = Vec::new();
    for service in &order {
        if !service.ours {
            if service.current.iter().any(|ip| pools.contains(*ip)) {
                changes.push((service.key.clone(), Change::Clear));
            }
            continue;
        }
        let keep = match service.current.as_slice() {
            [ip] => service.requested.is_none_or(|r| r == *ip) && pools.fits(*ip, service, &used),
            _ => false,
        };
        if keep {
            take(&mut used, service.current[0], service);
        } else {
            waiting.push(service);
        }
    }
    for service in waiting {
        let change = match service.requested {
            Some(ip) if !pools.contains(ip) => Change::Unassignable("the requested loadBalancerIP is not in the pool"),
            Some(ip) if !pools.fits(ip, service, &used) => {
                Change::Unassignable("the requested loadBalancerIP is in use")
            }
            Some(ip) => Change::Assign(ip),
            None => {
                let fits = |ip| pools.fits(ip, service, &used);
                let found = pools.dedicated.first_fitting(fits).or_else(|| {
                    // Only scanned when every free shared address fits (see `first_fitting`).
                    pools.may_share(service).then(|| pools.shared.first_fitting(fits)).flatten()
                });
                match found {
                    Some(ip) => Change::Assign(ip),
                    None => Change::Unassignable("no address left in the pool for its ports"),
                }
            }
        };
        if let Change::Assign(ip) = change {
            take(&mut used, ip, service);
        } else if service.current.iter().any(|ip| pools.contains(*ip)) {
            // It must not keep routing on an address another Service holds.
            changes.push((service.key.clone(), Change::Clear));
        }
        changes.push((service.key.clone(), change));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().expect("ip")
    }

    fn svc(name: &str, age: i64, ours: bool, requested: Option<&str>, current: &[&str]) -> ServiceView {
        ServiceView {
            key: format!("default/{name}"),
            age_order: (age, name.to_string()),
            ours,
            requested: requested.map(ip),
            current: current.iter().map(|c| ip(c)).collect(),
            ports: [("TCP".to_string(), 80)].into(),
        }
    }

    fn on_ports(mut service: ServiceView, ports: &[(&str, i32)]) -> ServiceView {
        service.ports = ports.iter().map(|(p, n)| (p.to_string(), *n)).collect();
        service
    }

    fn dedicated(entries: &[&str]) -> Pools {
        Pools { dedicated: Pool::parse(entries.iter().copied()).expect("pool"), ..Pools::default() }
    }

    #[test]
    fn pools_parse_cidrs_ranges_and_single_addresses() {
        let pool =
            Pool::parse(["192.0.2.240/30", "198.51.100.7-198.51.100.8, 203.0.113.9", "10.0.0.5/32"]).expect("pool");
        let inside = ["192.0.2.241", "192.0.2.242", "198.51.100.7", "198.51.100.8", "203.0.113.9", "10.0.0.5"];
        let outside = ["192.0.2.240", "192.0.2.243", "198.51.100.9", "10.0.0.6"];
        assert!(inside.iter().all(|i| pool.contains(ip(i))), "{pool:?}");
        assert!(!outside.iter().any(|i| pool.contains(ip(i))), "{pool:?}");
        for bad in ["192.0.2.0/33", "192.0.2.9-192.0.2.1", "2001:db8::/64", "nonsense", "1.2.3.4/x"] {
            assert!(Pool::parse([bad]).is_err(), "{bad}");
        }
        assert!(Pool::parse(["", " "]).expect("empty").is_empty());
        // The whole IPv4 space parses without overflow.
        assert!(Pool::parse(["0.0.0.0/0"]).expect("all").contains(ip("255.255.255.254")));
    }

    #[test]
    fn assigns_keeps_moves_and_clears() {
        let pool = dedicated(&["192.0.2.240/29"]); // .241 - .246
        let services = [
            svc("kept", 1, true, None, &["192.0.2.243"]),
            svc("new", 2, true, None, &[]),
            svc("asks", 3, true, Some("192.0.2.246"), &[]),
            svc("duplicate", 4, true, None, &["192.0.2.243"]),
            svc("outside", 5, true, None, &["10.0.0.1"]),
            svc("now-clusterip", 6, false, None, &["192.0.2.244"]),
            svc("foreign-class", 7, false, None, &["10.9.9.9"]),
            svc("asks-taken", 8, true, Some("192.0.2.243"), &[]),
            svc("asks-outside", 9, true, Some("10.0.0.2"), &[]),
        ];
        let changes = plan(&services, &pool);
        let want = vec![
            ("default/now-clusterip", Change::Clear),
            ("default/new", Change::Assign(ip("192.0.2.241"))),
            ("default/asks", Change::Assign(ip("192.0.2.246"))),
            ("default/duplicate", Change::Assign(ip("192.0.2.242"))),
            ("default/outside", Change::Assign(ip("192.0.2.244"))),
            ("default/asks-taken", Change::Unassignable("the requested loadBalancerIP is in use")),
            ("default/asks-outside", Change::Unassignable("the requested loadBalancerIP is not in the pool")),
        ];
        let want: Vec<(String, Change)> = want.into_iter().map(|(k, c)| (k.to_string(), c)).collect();
        assert_eq!(changes, want);
    }

    #[test]
    fn an_exhausted_pool_says_so_and_a_settled_plan_is_empty() {
        let pool = dedicated(&["192.0.2.9"]);
        let services = [svc("a", 1, true, None, &["192.0.2.9"]), svc("b", 2, true, None, &[])];
        assert_eq!(
            plan(&services, &pool),
            vec![("default/b".into(), Change::Unassignable("no address left in the pool for its ports"))]
        );
        assert_eq!(plan(&services[..1], &pool), vec![]);
    }

    #[test]
    fn shared_addresses_take_services_on_other_ports_after_dedicated_ones_run_out() {
        let pools = Pools {
            dedicated: Pool::parse(["192.0.2.9"]).expect("pool"),
            shared: Pool::parse(["10.0.0.5", "10.0.0.6"]).expect("shared"),
            ..Pools::default()
        };
        let services = [
            svc("dedicated", 1, true, None, &[]),
            on_ports(svc("web", 2, true, None, &[]), &[("TCP", 80), ("TCP", 443)]),
            on_ports(svc("dns", 3, true, None, &[]), &[("UDP", 53), ("TCP", 53)]),
            on_ports(svc("web2", 4, true, None, &[]), &[("TCP", 443)]),
            on_ports(svc("udp80", 5, true, None, &[]), &[("UDP", 80)]),
            on_ports(svc("asks", 6, true, Some("10.0.0.5"), &[]), &[("TCP", 53)]),
            on_ports(svc("web3", 7, true, None, &[]), &[("TCP", 80)]),
        ];
        let want: Vec<(String, Change)> = [
            ("dedicated", Change::Assign(ip("192.0.2.9"))),
            ("web", Change::Assign(ip("10.0.0.5"))),
            ("dns", Change::Assign(ip("10.0.0.5"))),
            ("web2", Change::Assign(ip("10.0.0.6"))),
            ("udp80", Change::Assign(ip("10.0.0.5"))),
            ("asks", Change::Unassignable("the requested loadBalancerIP is in use")),
            ("web3", Change::Assign(ip("10.0.0.6"))),
        ]
        .into_iter()
        .map(|(k, c)| (format!("default/{k}"), c))
        .collect();
        assert_eq!(plan(&services, &pools), want);
    }

    #[test]
    fn a_shared_address_is_kept_by_the_older_of_two_services_on_one_port() {
        let pools = Pools { shared: Pool::parse(["10.0.0.5"]).expect("shared"), ..Pools::default() };
        let services = [
            on_ports(svc("older", 1, true, None, &["10.0.0.5"]), &[("TCP", 80)]),
            on_ports(svc("other-port", 2, true, None, &["10.0.0.5"]), &[("TCP", 8080)]),
            on_ports(svc("newer", 3, true, None, &["10.0.0.5"]), &[("TCP", 80)]),
        ];
        assert_eq!(
            plan(&services, &pools),
            vec![
                ("default/newer".into(), Change::Clear),
                ("default/newer".into(), Change::Unassignable("no address left in the pool for its ports"))
            ]
        );
    }

    #[test]
    fn reserved_ports_stay_off_shared_addresses_only() {
        let pools = Pools {
            dedicated: Pool::parse(["192.0.2.9"]).expect("pool"),
            shared: Pool::parse(["10.0.0.5"]).expect("shared"),
            reserved_ports: DEFAULT_RESERVED_PORTS.iter().copied().collect(),
        };
        let services = [
            on_ports(svc("takes-dedicated", 1, true, None, &[]), &[("TCP", 80)]),
            on_ports(svc("ssh", 2, true, None, &[]), &[("TCP", 22)]),
            on_ports(svc("kubelet-on-node", 3, true, Some("10.0.0.5"), &[]), &[("TCP", 10250)]),
            on_ports(svc("web", 4, true, None, &[]), &[("TCP", 8080)]),
        ];
        assert_eq!(
            plan(&services, &pools),
            vec![
                ("default/takes-dedicated".into(), Change::Assign(ip("192.0.2.9"))),
                ("default/ssh".into(), Change::Unassignable("no address left in the pool for its ports")),
                ("default/kubelet-on-node".into(), Change::Unassignable("the requested loadBalancerIP is in use")),
                ("default/web".into(), Change::Assign(ip("10.0.0.5"))),
            ]
        );
        // On a dedicated address every port is the Service's own.
        let ssh_first = [on_ports(svc("ssh", 1, true, None, &[]), &[("TCP", 22)])];
        assert_eq!(plan(&ssh_first, &pools), vec![("default/ssh".into(), Change::Assign(ip("192.0.2.9")))]);
    }
}
