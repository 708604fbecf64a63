//! Incremental rendering against the full render and a model of the kernel.

use std::collections::BTreeMap;

use super::*;
use crate::diff::Element;
use crate::model::{Endpoint, ExternalAccess, Protocol, ServicePort};
use crate::ruleset::ServiceAddr;
use crate::table::Ipv4Cidr;

/// An element's identity in the kernel (its set or map and key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Dispatch(Frontend),
    Backend(Frontend, usize),
    NoEndpoints(Frontend),
    NoLocalEndpoints(Frontend),
    Masquerade(Frontend),
    Firewalled(ServiceAddr),
    SourceRange(ServiceAddr, Ipv4Cidr),
    Affinity(Frontend, u32),
    AffinityLookup(Frontend, u32),
    AffinityRecord(Frontend, u32),
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
        Element::NoLocalEndpoints(addr) => (Key::NoLocalEndpoints(addr), None),
        Element::Masquerade(addr) => (Key::Masquerade(addr), None),
        Element::Firewalled(addr) => (Key::Firewalled(addr), None),
        Element::SourceRange(addr, range) => (Key::SourceRange(addr, range), None),
        Element::Affinity(addr, timeout) => (Key::Affinity(addr, timeout), None),
        Element::AffinityLookup(addr, timeout) => (Key::AffinityLookup(addr, timeout), None),
        Element::AffinityRecord(addr, timeout) => (Key::AffinityRecord(addr, timeout), None),
        Element::Hairpin(ip) => (Key::Hairpin(ip), None),
    }
}

/// Applies ops as nft would: all deletes, then all adds; deleting a missing
/// element or adding an existing one fails the transaction, and so does
/// flushing a missing affinity map.
fn apply(kernel: &mut Kernel, ops: &[Op]) {
    for op in ops {
        if let Op::Flush(element) = op {
            let (key, _) = split(*element);
            assert!(kernel.contains_key(&key), "flush of missing {key:?}");
        }
    }
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
    (key, ServicePortState { port: addr(at), endpoints, local_ips, ..Default::default() })
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
        rendered.ruleset().services[&ServiceAddr { ip: addr(1).cluster_ip, protocol: Protocol::Tcp, port: 80 }.into()]
            .buckets[0]
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
                    let (key, mut state) = port(service, &format!("p{p}"), at, &endpoints, &local);
                    state.external = random_external(&mut rng);
                    state.internal_local = rng.below(4) == 0;
                    state.affinity_timeout = [None, Some(60), Some(10_800)][rng.below(3) as usize];
                    state.node_endpoints = state.endpoints.iter().copied().filter(|_| rng.below(3) == 0).collect();
                    (key, state)
                })
                .collect();
            rendered.replace_service(&name(service), ports);
        }
        apply(&mut kernel, &rendered.take_ops());
        assert_eq!(kernel, kernel_of(rendered.ruleset()), "step {step}: kernel matches the content");
        assert!(rendered.is_consistent(), "step {step}: content matches a full render");
    }
}

/// Node ports, external and LB IPs and source ranges from small pools, so
/// that frontends collide across services and between the two IP kinds.
fn random_external(rng: &mut Rng) -> ExternalAccess {
    let ips = |picked: Vec<u8>| picked.into_iter().map(|i| Ipv4Addr::new(198, 51, 100, i)).collect();
    let ranges = ["10.0.0.0/8", "192.0.2.0/24", "203.0.113.7/32"];
    ExternalAccess {
        node_port: (rng.below(2) == 0).then(|| 30_000 + rng.below(3) as u16),
        external_ips: ips(rng.pick(3, 2)),
        load_balancer_ips: ips(rng.pick(3, 2)),
        source_ranges: rng.pick(3, 3).into_iter().map(|i| ranges[usize::from(i) - 1].parse().expect("cidr")).collect(),
        local: rng.below(4) == 0,
    }
}

#[test]
fn lb_ips_get_the_source_ranges_and_every_external_frontend_is_marked() {
    let mut rendered = Rendered::new();
    let (key, mut state) = port("a", "", 1, &[1], &[]);
    let range: Ipv4Cidr = "192.0.2.0/24".parse().expect("cidr");
    state.external = ExternalAccess {
        node_port: Some(30080),
        external_ips: vec![Ipv4Addr::new(198, 51, 100, 1)],
        load_balancer_ips: vec![Ipv4Addr::new(198, 51, 100, 2)],
        source_ranges: vec![range],
        local: false,
    };
    rendered.replace_service(&name("a"), vec![(key, state)]);
    let ops = rendered.take_ops();
    let lb = ServiceAddr { ip: Ipv4Addr::new(198, 51, 100, 2), protocol: Protocol::Tcp, port: 80 };
    let external = ServiceAddr { ip: Ipv4Addr::new(198, 51, 100, 1), ..lb };
    let node_port = Frontend::NodePort { protocol: Protocol::Tcp, port: 30080 };
    for element in [
        Element::Masquerade(node_port),
        Element::Masquerade(external.into()),
        Element::Masquerade(lb.into()),
        Element::Firewalled(lb),
        Element::SourceRange(lb, range),
        Element::Dispatch { addr: node_port, buckets: 16 },
    ] {
        assert!(ops.contains(&Op::Add(element)), "missing {element:?}");
    }
    assert!(!ops.contains(&Op::Add(Element::Firewalled(external))), "only LB IPs are firewalled");
    assert_eq!(ops.iter().filter(|op| matches!(op, Op::Add(Element::Backend { .. }))).count(), 4 * 16);
    let mut kernel = Kernel::new();
    apply(&mut kernel, &ops);
    rendered.replace_service(&name("a"), vec![]);
    apply(&mut kernel, &rendered.take_ops());
    assert!(kernel.is_empty(), "removal deletes every element it added: {kernel:?}");
}
