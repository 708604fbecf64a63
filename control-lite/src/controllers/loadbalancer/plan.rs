//! The bare-metal load-balancer decisions, without I/O: parsing the
//! address pool, and which ingress IP each `type: LoadBalancer` Service
//! (of no `loadBalancerClass`) should show.
//!
//! Level-triggered: the IPs in use are read from the Services' own
//! statuses, so nothing is kept between passes and a restarted control
//! plane decides the same. Older Services keep their IPs when two claim
//! the same one; a Service asking for `spec.loadBalancerIP` gets it if it
//! is in the pool and free. Work per pass is bounded by the Services:
//! finding a free IP skips at most the IPs in use.

use std::collections::BTreeSet;
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

    /// The lowest address of the pool not in `used`.
    pub fn first_free(&self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        for (first, last) in &self.ranges {
            // Skips at most `used.len()` addresses: bounded by the Services.
            let mut candidate = *first;
            loop {
                if !used.contains(&Ipv4Addr::from(candidate)) {
                    return Some(Ipv4Addr::from(candidate));
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
}

/// What one Service's status should become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Show this ingress IP.
    Assign(Ipv4Addr),
    /// No longer a load balancer of ours: drop the pool's ingress IPs.
    Clear,
    /// No address could be given (pool exhausted, or the requested one is
    /// outside the pool or taken); the reason is for an Event.
    Unassignable(&'static str),
}

/// The changes for `services` given `pool` (Services already right are
/// not listed).
pub fn plan(services: &[ServiceView], pool: &Pool) -> Vec<(String, Change)> {
    let mut order: Vec<&ServiceView> = services.iter().collect();
    order.sort_by(|a, b| a.age_order.cmp(&b.age_order));
    let mut used: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let mut waiting: Vec<&ServiceView> = Vec::new();
    let mut changes = Vec::new();
    for service in &order {
        if !service.ours {
            if service.current.iter().any(|ip| pool.contains(*ip)) {
                changes.push((service.key.clone(), Change::Clear));
            }
            continue;
        }
        let keep = match service.current.as_slice() {
            [ip] => pool.contains(*ip) && service.requested.is_none_or(|r| r == *ip) && !used.contains(ip),
            _ => false,
        };
        if keep {
            used.insert(service.current[0]);
        } else {
            waiting.push(service);
        }
    }
    for service in waiting {
        let change = match service.requested {
            Some(ip) if !pool.contains(ip) => Change::Unassignable("the requested loadBalancerIP is not in the pool"),
            Some(ip) if used.contains(&ip) => Change::Unassignable("the requested loadBalancerIP is in use"),
            Some(ip) => Change::Assign(ip),
            None => match pool.first_free(&used) {
                Some(ip) => Change::Assign(ip),
                None => Change::Unassignable("no address left in the pool"),
            },
        };
        if let Change::Assign(ip) = change {
            used.insert(ip);
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
        }
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
        let pool = Pool::parse(["192.0.2.240/29"]).expect("pool"); // .241 - .246
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
        let pool = Pool::parse(["192.0.2.9"]).expect("pool");
        let services = [svc("a", 1, true, None, &["192.0.2.9"]), svc("b", 2, true, None, &[])];
        assert_eq!(
            plan(&services, &pool),
            vec![("default/b".into(), Change::Unassignable("no address left in the pool"))]
        );
        assert_eq!(plan(&services[..1], &pool), vec![]);
    }
}
