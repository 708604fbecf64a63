//! Incremental rendering against the full render and a model of the kernel.

use std::collections::BTreeMap;

use super::*;
use crate::diff::Element;
use crate::model::{Protocol, ServicePort};

/// An element's identity in the kernel (its set or map and key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Dispatch(ServiceAddr),
    Backend(ServiceAddr, usize),
    NoEndpoints(ServiceAddr),
    Hairpin(Ipv4Addr),
}

/// Element key -> value, as nft holds them.
type Kernel = BTreeMap<Key, Option<Endpoint>>;

fn split(element: Element) -> (Key, Option<Endpoint>) {
    match element {
        Element::Dispatch { addr, buckets } => {
            (Key::Dispatch(addr), Some(Endpoint { ip: Ipv4Addr::UNSPECIFIED, port: buckets as u16 }))
        }
        Element::Backend { addr, bucket, endpoint } => (Key::Backend(addr, bucket), Some(endpoint)),
        Element::NoEndpoints(addr) => (Key::NoEndpoints(addr), None),
        Element::Hairpin(ip) => (Key::Hairpin(ip), None),
    }
}

/// Applies ops as nft would: all deletes, then all adds; deleting a missing
/// element or adding an existing one fails the transaction.
fn apply(kernel: &mut Kernel, ops: &[Op]) {
    for op in ops {
        if let Op::Delete(element) = op {
            let (key, _) = split(*element);
            assert!(kernel.remove(&key).is_some(), "delete of missing {key:?}");
        }
    }
    for op in ops {
        if let Op::Add(element) = op {
            let (key, value) = split(*element);
            assert!(kernel.insert(key, value).is_none(), "add of existing {key:?}");
        }
    }
}

fn kernel_of(ruleset: &Ruleset) -> Kernel {
    let mut kernel = Kernel::new();
    apply(&mut kernel, &diff(&Ruleset::default(), ruleset));
    kernel
}

fn addr(last: u8) -> ServicePort {
    ServicePort { cluster_ip: Ipv4Addr::new(10, 96, 0, last), port: 80, protocol: Protocol::Tcp }
}

fn port(service: &str, port_name: &str, at: u8, endpoints: &[u8], local: &[u8]) -> (ServiceKey, ServicePortState) {
    let key = ServiceKey { namespace: "ns".into(), name: service.into(), port_name: port_name.into() };
    let endpoints = endpoints.iter().map(|e| Endpoint { ip: Ipv4Addr::new(10, 244, 0, *e), port: 8080 }).collect();
    let local_ips = local.iter().map(|e| Ipv4Addr::new(10, 244, 0, *e)).collect();
    (key, ServicePortState { port: addr(at), endpoints, local_ips })
}

fn name(service: &str) -> ServiceName {
    ServiceName::new("ns", service)
}

#[test]
fn adding_one_service_yields_only_its_elements() {
    let mut rendered = Rendered::new();
    rendered.replace_service(&name("a"), vec![port("a", "", 1, &[1, 2], &[1])]);
    rendered.replace_service(&name("b"), vec![port("b", "", 2, &[], &[])]);
    let mut kernel = Kernel::new();
    apply(&mut kernel, &rendered.take_ops());
    rendered.replace_service(&name("c"), vec![port("c", "", 3, &[3], &[])]);
    let ops = rendered.take_ops();
    assert_eq!(ops.len(), 1 + 16, "dispatch and 16 buckets of c only");
    apply(&mut kernel, &ops);
    assert_eq!(kernel, kernel_of(rendered.ruleset()));
    assert!(rendered.take_ops().is_empty(), "ops are taken once");
}

#[test]
fn replacing_with_the_same_ports_yields_nothing() {
    let mut rendered = Rendered::new();
    rendered.replace_service(&name("a"), vec![port("a", "", 1, &[1, 2], &[1])]);
    rendered.take_ops();
    rendered.replace_service(&name("a"), vec![port("a", "", 1, &[1, 2], &[1])]);
    assert_eq!(rendered.take_ops(), vec![]);
}

#[test]
fn a_change_undone_before_the_sync_yields_nothing() {
    let mut rendered = Rendered::new();
    rendered.replace_service(&name("a"), vec![port("a", "", 1, &[1, 2], &[1])]);
    rendered.take_ops();
    rendered.replace_service(&name("a"), vec![]);
    rendered.replace_service(&name("a"), vec![port("a", "", 1, &[1, 2], &[1])]);
    assert_eq!(rendered.take_ops(), vec![]);
}

#[test]
fn duplicate_address_passes_to_the_next_claim_when_the_winner_leaves() {
    let mut rendered = Rendered::new();
    rendered.replace_service(&name("a"), vec![port("a", "", 1, &[1], &[1])]);
    rendered.replace_service(&name("b"), vec![port("b", "", 1, &[2], &[2])]);
    assert_eq!(
        rendered.ruleset().services[&ServiceAddr { ip: addr(1).cluster_ip, protocol: Protocol::Tcp, port: 80 }][0]
            .ip
            .octets()[3],
        1
    );
    assert!(!rendered.ruleset().hairpin.contains(&Ipv4Addr::new(10, 244, 0, 2)), "loser contributes no hairpin");
    let mut kernel = kernel_of(rendered.ruleset());
    rendered.take_ops();
    rendered.replace_service(&name("a"), vec![]);
    apply(&mut kernel, &rendered.take_ops());
    assert_eq!(kernel, kernel_of(rendered.ruleset()));
    assert_eq!(rendered.ruleset().hairpin, BTreeSet::from([Ipv4Addr::new(10, 244, 0, 2)]));
    assert!(rendered.is_consistent());
}

#[test]
fn forgotten_changes_are_not_replayed() {
    let mut rendered = Rendered::new();
    rendered.replace_service(&name("a"), vec![port("a", "", 1, &[1], &[1])]);
    rendered.forget_changes();
    assert_eq!(rendered.take_ops(), vec![]);
}

/// A small deterministic generator (xorshift), so the sequence is the same
/// on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn pick(&mut self, pool: u8, most: u64) -> Vec<u8> {
        let count = self.below(most + 1);
        let mut picked: Vec<u8> = (0..count).map(|_| self.below(u64::from(pool)) as u8 + 1).collect();
        picked.sort_unstable();
        picked.dedup();
        picked
    }
}

#[test]
fn random_replacements_keep_kernel_and_full_render_in_step() {
    let services = ["a", "b", "c", "d", "e", "f"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut rendered = Rendered::new();
    let mut kernel = Kernel::new();
    for step in 0..2_000 {
        for _ in 0..=rng.below(3) {
            let service = services[rng.below(services.len() as u64) as usize];
            let ports = (0..rng.below(3))
                .map(|p| {
                    // Four addresses for six services: duplicates are common;
                    // twelve endpoint IPs: hairpin IPs are shared.
                    let endpoints = rng.pick(12, 20);
                    let local: Vec<u8> = endpoints.iter().copied().filter(|_| rng.below(2) == 0).collect();
                    let at = rng.below(4) as u8 + 1;
                    port(service, &format!("p{p}"), at, &endpoints, &local)
                })
                .collect();
            rendered.replace_service(&name(service), ports);
        }
        apply(&mut kernel, &rendered.take_ops());
        assert_eq!(kernel, kernel_of(rendered.ruleset()), "step {step}: kernel matches the content");
        assert!(rendered.is_consistent(), "step {step}: content matches a full render");
    }
}
