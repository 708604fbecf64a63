//! Pure diff of two [`Ruleset`]s into nft element operations.
//!
//! Chains and rules never change after the full load, so an incremental
//! sync is only element adds and deletes. A changed map value is a delete
//! followed by an add of the same key (nft cannot replace an element in
//! place); the script renderer emits all deletes before all adds, in one
//! transaction.

use std::net::Ipv4Addr;

use crate::model::Endpoint;
use crate::ruleset::{Frontend, Ruleset, ServiceAddr, Target};
use crate::table::Ipv4Cidr;

/// One element of one of the table's maps or sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    /// `service_ports` / `node_ports`: frontend -> `goto` its bucket chain.
    Dispatch {
        /// The frontend.
        addr: Frontend,
        /// Number of buckets (selects the bucket chain).
        buckets: usize,
    },
    /// `backends` / `node_port_backends`: frontend and bucket -> endpoint.
    Backend {
        /// The frontend.
        addr: Frontend,
        /// Bucket index.
        bucket: usize,
        /// Endpoint behind the bucket.
        endpoint: Endpoint,
    },
    /// `no_endpoints` / `node_port_no_endpoints`: a rejected frontend.
    NoEndpoints(Frontend),
    /// `no_local_endpoints` / `node_port_no_local_endpoints`: a frontend
    /// whose traffic is dropped (`Local` policy, no endpoint on this node).
    NoLocalEndpoints(Frontend),
    /// `masquerade_addrs` / `masquerade_node_ports`: traffic marked for
    /// masquerading.
    Masquerade(Frontend),
    /// `lb_firewalled`: an LB address with source ranges.
    Firewalled(ServiceAddr),
    /// `lb_source_ranges`: one source range allowed to an LB address.
    SourceRange(ServiceAddr, Ipv4Cidr),
    /// The per-frontend ClientIP affinity objects: a dynamic map
    /// `client -> endpoint` with the timeout, its lookup chain and its
    /// record chain (named after the frontend and timeout).
    Affinity(Frontend, u32),
    /// `affinity_ports` / `affinity_node_ports`: frontend -> `jump` its
    /// lookup chain.
    AffinityLookup(Frontend, u32),
    /// `affinity_record` / `affinity_record_node_ports`: frontend -> `jump`
    /// its record chain.
    AffinityRecord(Frontend, u32),
    /// `hairpin`: an endpoint IP masqueraded when it reaches itself.
    Hairpin(Ipv4Addr),
}

/// An element operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Add the element.
    Add(Element),
    /// Delete the element (only its key is used).
    Delete(Element),
    /// Empty an [`Element::Affinity`] map (an endpoint went away: clients
    /// pinned to it must choose again).
    Flush(Element),
}

/// Operations that turn the kernel's `old` content into `new`.
pub fn diff(old: &Ruleset, new: &Ruleset) -> Vec<Op> {
    let mut ops = Vec::new();
    // Merge-join the two frontend-ordered maps.
    let mut before = old.services.iter().peekable();
    let mut after = new.services.iter().peekable();
    loop {
        let (addr, old_target, new_target) = match (before.peek(), after.peek()) {
            (None, None) => break,
            (Some((a, _)), Some((b, _))) if a == b => {
                let (addr, old_target) = before.next().unzip();
                let new_target = after.next().map(|(_, target)| target);
                (addr, old_target, new_target)
            }
            (Some((a, _)), Some((b, _))) if a > b => {
                let (addr, new_target) = after.next().unzip();
                (addr, None, new_target)
            }
            (Some(_), _) => {
                let (addr, old_target) = before.next().unzip();
                (addr, old_target, None)
            }
            (None, Some(_)) => {
                let (addr, new_target) = after.next().unzip();
                (addr, None, new_target)
            }
        };
        let Some(addr) = addr else { break };
        if old_target != new_target {
            diff_frontend(*addr, old_target, new_target, &mut ops);
        }
    }
    ops.extend(old.hairpin.difference(&new.hairpin).map(|ip| Op::Delete(Element::Hairpin(*ip))));
    ops.extend(new.hairpin.difference(&old.hairpin).map(|ip| Op::Add(Element::Hairpin(*ip))));
    ops
}

/// Ops for one frontend; `None` is an absent frontend, as opposed to one
/// present with no endpoints.
fn diff_frontend(addr: Frontend, before: Option<&Target>, after: Option<&Target>, ops: &mut Vec<Op>) {
    let empty = Target::default();
    let (old, new) = (before.unwrap_or(&empty), after.unwrap_or(&empty));
    let unserved_before = before.is_some() && old.buckets.is_empty();
    let unserved_after = after.is_some() && new.buckets.is_empty();
    let (drop_before, drop_after) = (unserved_before && old.drop_unserved, unserved_after && new.drop_unserved);
    toggle(Element::NoEndpoints(addr), unserved_before && !drop_before, unserved_after && !drop_after, ops);
    toggle(Element::NoLocalEndpoints(addr), drop_before, drop_after, ops);
    toggle(Element::Masquerade(addr), old.masquerade, new.masquerade, ops);
    if let Frontend::Ip(ip) = addr {
        diff_source_ranges(ip, &old.source_ranges, &new.source_ranges, ops);
    }
    diff_affinity(addr, old, new, ops);
    let (before, after) = (&old.buckets, &new.buckets);
    if before.len() != after.len() {
        if !before.is_empty() {
            ops.push(Op::Delete(Element::Dispatch { addr, buckets: before.len() }));
        }
        if !after.is_empty() {
            ops.push(Op::Add(Element::Dispatch { addr, buckets: after.len() }));
        }
    }
    for bucket in 0..before.len().max(after.len()) {
        let old = before.get(bucket);
        let new = after.get(bucket);
        if old == new {
            continue;
        }
        if let Some(endpoint) = old {
            ops.push(Op::Delete(Element::Backend { addr, bucket, endpoint: *endpoint }));
        }
        if let Some(endpoint) = new {
            ops.push(Op::Add(Element::Backend { addr, bucket, endpoint: *endpoint }));
        }
    }
}

/// Ops for the affinity objects of one frontend: created and deleted with
/// the affinity (a new timeout is a new set of objects), flushed when an
/// endpoint goes away.
fn diff_affinity(addr: Frontend, old: &Target, new: &Target, ops: &mut Vec<Op>) {
    let elements = |timeout| {
        [
            Element::Affinity(addr, timeout),
            Element::AffinityLookup(addr, timeout),
            Element::AffinityRecord(addr, timeout),
        ]
    };
    match (old.affinity, new.affinity) {
        (Some(before), Some(after)) if before == after => {
            if old.buckets.iter().any(|endpoint| !new.buckets.contains(endpoint)) {
                ops.push(Op::Flush(Element::Affinity(addr, after)));
            }
        }
        (before, after) => {
            ops.extend(before.into_iter().flat_map(elements).map(Op::Delete));
            ops.extend(after.into_iter().flat_map(elements).map(Op::Add));
        }
    }
}

/// Adds or deletes `element` when its presence changes.
fn toggle(element: Element, before: bool, after: bool, ops: &mut Vec<Op>) {
    match (before, after) {
        (true, false) => ops.push(Op::Delete(element)),
        (false, true) => ops.push(Op::Add(element)),
        _ => {}
    }
}

/// Ops for the firewall of one LB address (both lists sorted).
fn diff_source_ranges(addr: ServiceAddr, before: &[Ipv4Cidr], after: &[Ipv4Cidr], ops: &mut Vec<Op>) {
    toggle(Element::Firewalled(addr), !before.is_empty(), !after.is_empty(), ops);
    let removed = before.iter().filter(|range| after.binary_search(range).is_err());
    ops.extend(removed.map(|range| Op::Delete(Element::SourceRange(addr, *range))));
    let added = after.iter().filter(|range| before.binary_search(range).is_err());
    ops.extend(added.map(|range| Op::Add(Element::SourceRange(addr, *range))));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;
    use crate::ruleset::fill_buckets;

    fn addr(last: u8) -> Frontend {
        Frontend::Ip(ServiceAddr { ip: Ipv4Addr::new(10, 96, 0, last), protocol: Protocol::Tcp, port: 80 })
    }

    fn ep(last: u8) -> Endpoint {
        Endpoint { ip: Ipv4Addr::new(10, 244, 0, last), port: 8080 }
    }

    fn ruleset(services: &[(u8, &[u8])]) -> Ruleset {
        let mut ruleset = Ruleset::default();
        for (service, endpoints) in services {
            let endpoints: Vec<Endpoint> = endpoints.iter().map(|e| ep(*e)).collect();
            let buckets = fill_buckets(&endpoints);
            ruleset.hairpin.extend(buckets.iter().map(|e| e.ip));
            ruleset.services.insert(addr(*service), Target { buckets, ..Target::default() });
        }
        ruleset
    }

    fn count(ops: &[Op], pred: impl Fn(&Op) -> bool) -> usize {
        ops.iter().filter(|op| pred(op)).count()
    }

    #[test]
    fn identical_rulesets_need_no_ops() {
        let a = ruleset(&[(1, &[1, 2]), (2, &[])]);
        assert_eq!(diff(&a, &a.clone()), vec![]);
    }

    #[test]
    fn adding_a_service_adds_dispatch_buckets_and_hairpin() {
        let ops = diff(&ruleset(&[]), &ruleset(&[(1, &[1])]));
        assert_eq!(ops.len(), 1 + 16 + 1);
        assert_eq!(ops[0], Op::Add(Element::Dispatch { addr: addr(1), buckets: 16 }));
        assert_eq!(count(&ops, |op| matches!(op, Op::Add(Element::Backend { .. }))), 16);
        assert_eq!(ops.last(), Some(&Op::Add(Element::Hairpin(ep(1).ip))));
    }

    #[test]
    fn removing_a_service_deletes_everything_it_added() {
        let before = ruleset(&[(1, &[1])]);
        let ops = diff(&before, &ruleset(&[]));
        let added = diff(&ruleset(&[]), &before);
        let undone: Vec<Op> = added
            .into_iter()
            .map(|op| match op {
                Op::Add(element) => Op::Delete(element),
                Op::Delete(element) | Op::Flush(element) => Op::Add(element),
            })
            .collect();
        assert_eq!(ops, undone);
    }

    #[test]
    fn endpoint_change_produces_only_backend_and_hairpin_element_ops() {
        let ops = diff(&ruleset(&[(1, &[1, 2]), (2, &[3])]), &ruleset(&[(1, &[1, 4]), (2, &[3])]));
        // Buckets 1, 3, 5, ... move from endpoint 2 to endpoint 4.
        assert_eq!(count(&ops, |op| matches!(op, Op::Delete(Element::Backend { .. }))), 8);
        assert_eq!(count(&ops, |op| matches!(op, Op::Add(Element::Backend { .. }))), 8);
        assert!(ops.contains(&Op::Delete(Element::Hairpin(ep(2).ip))));
        assert!(ops.contains(&Op::Add(Element::Hairpin(ep(4).ip))));
        assert_eq!(ops.len(), 18, "nothing for the unchanged service, no dispatch change");
    }

    #[test]
    fn growing_past_sixteen_endpoints_moves_to_the_next_bucket_chain() {
        let small: Vec<u8> = (1..=16).collect();
        let large: Vec<u8> = (1..=17).collect();
        let ops = diff(&ruleset(&[(1, &small)]), &ruleset(&[(1, &large)]));
        assert_eq!(ops[0], Op::Delete(Element::Dispatch { addr: addr(1), buckets: 16 }));
        assert_eq!(ops[1], Op::Add(Element::Dispatch { addr: addr(1), buckets: 32 }));
        // Buckets 0..16 keep their endpoint; 16..32 are new.
        assert_eq!(count(&ops, |op| matches!(op, Op::Add(Element::Backend { .. }))), 16);
        assert_eq!(count(&ops, |op| matches!(op, Op::Delete(Element::Backend { .. }))), 0);
    }

    #[test]
    fn losing_all_endpoints_switches_to_reject_and_back() {
        let with = ruleset(&[(1, &[1])]);
        let without = ruleset(&[(1, &[])]);
        let ops = diff(&with, &without);
        assert_eq!(ops[0], Op::Add(Element::NoEndpoints(addr(1))));
        assert_eq!(ops[1], Op::Delete(Element::Dispatch { addr: addr(1), buckets: 16 }));
        assert_eq!(count(&ops, |op| matches!(op, Op::Delete(Element::Backend { .. }))), 16);
        let back = diff(&without, &with);
        assert_eq!(back[0], Op::Delete(Element::NoEndpoints(addr(1))));
        assert_eq!(back[1], Op::Add(Element::Dispatch { addr: addr(1), buckets: 16 }));
    }

    #[test]
    fn removing_a_rejected_service_deletes_its_reject_entry() {
        let ops = diff(&ruleset(&[(1, &[])]), &ruleset(&[]));
        assert_eq!(ops, vec![Op::Delete(Element::NoEndpoints(addr(1)))]);
    }

    #[test]
    fn interleaved_adds_and_removes_touch_only_the_changed_addresses() {
        let ops = diff(&ruleset(&[(1, &[]), (3, &[]), (5, &[])]), &ruleset(&[(2, &[]), (3, &[]), (6, &[])]));
        assert_eq!(
            ops,
            vec![
                Op::Delete(Element::NoEndpoints(addr(1))),
                Op::Add(Element::NoEndpoints(addr(2))),
                Op::Delete(Element::NoEndpoints(addr(5))),
                Op::Add(Element::NoEndpoints(addr(6))),
            ]
        );
    }

    #[test]
    fn hairpin_ip_shared_by_two_services_stays_while_one_uses_it() {
        let ops = diff(&ruleset(&[(1, &[1]), (2, &[1])]), &ruleset(&[(2, &[1])]));
        assert_eq!(count(&ops, |op| matches!(op, Op::Delete(Element::Hairpin(_)))), 0);
    }

    #[test]
    fn external_options_toggle_their_own_elements_only() {
        let lb = ServiceAddr { ip: Ipv4Addr::new(198, 51, 100, 2), protocol: Protocol::Tcp, port: 80 };
        let range = |s: &str| s.parse::<Ipv4Cidr>().expect("cidr");
        let with = |masquerade, ranges: &[&str]| {
            let mut ruleset = ruleset(&[]);
            let target = Target {
                buckets: fill_buckets(&[ep(1)]),
                masquerade,
                source_ranges: ranges.iter().map(|r| range(r)).collect(),
                ..Target::default()
            };
            ruleset.services.insert(Frontend::Ip(lb), target);
            ruleset
        };
        let ops = diff(&with(false, &[]), &with(true, &["10.0.0.0/8", "192.0.2.0/24"]));
        assert_eq!(
            ops,
            vec![
                Op::Add(Element::Masquerade(Frontend::Ip(lb))),
                Op::Add(Element::Firewalled(lb)),
                Op::Add(Element::SourceRange(lb, range("10.0.0.0/8"))),
                Op::Add(Element::SourceRange(lb, range("192.0.2.0/24"))),
            ]
        );
        let ops = diff(&with(true, &["10.0.0.0/8", "192.0.2.0/24"]), &with(true, &["192.0.2.0/24", "203.0.113.0/24"]));
        assert_eq!(
            ops,
            vec![
                Op::Delete(Element::SourceRange(lb, range("10.0.0.0/8"))),
                Op::Add(Element::SourceRange(lb, range("203.0.113.0/24"))),
            ]
        );
        let ops = diff(&with(true, &["192.0.2.0/24"]), &ruleset(&[]));
        assert!(ops.contains(&Op::Delete(Element::Firewalled(lb))));
        assert!(ops.contains(&Op::Delete(Element::SourceRange(lb, range("192.0.2.0/24")))));
        assert!(ops.contains(&Op::Delete(Element::Masquerade(Frontend::Ip(lb)))));
    }

    #[test]
    fn affinity_objects_follow_the_timeout_and_flush_only_when_an_endpoint_leaves() {
        let with = |timeout: Option<u32>, endpoints: &[u8]| {
            let mut ruleset = ruleset(&[(1, endpoints)]);
            if let Some(target) = ruleset.services.get_mut(&addr(1)) {
                target.affinity = timeout;
            }
            ruleset
        };
        let objects = |timeout| {
            [
                Element::Affinity(addr(1), timeout),
                Element::AffinityLookup(addr(1), timeout),
                Element::AffinityRecord(addr(1), timeout),
            ]
        };
        assert_eq!(diff(&with(None, &[1]), &with(Some(60), &[1])), objects(60).map(Op::Add).to_vec());
        let retimed = diff(&with(Some(60), &[1]), &with(Some(90), &[1]));
        assert_eq!(retimed[..3], objects(60).map(Op::Delete));
        assert_eq!(retimed[3..], objects(90).map(Op::Add));
        let grown = diff(&with(Some(60), &[1]), &with(Some(60), &[1, 2]));
        assert!(!grown.iter().any(|op| matches!(op, Op::Flush(_))), "a new endpoint keeps every pin");
        let shrunk = diff(&with(Some(60), &[1, 2]), &with(Some(60), &[1]));
        assert_eq!(shrunk.iter().filter(|op| matches!(op, Op::Flush(_))).count(), 1);
        assert!(shrunk.contains(&Op::Flush(Element::Affinity(addr(1), 60))));
    }
}
