//! Snapshot tests of the rendered nft text for a small case.

use super::*;
use crate::model::{Endpoint, Protocol};
use crate::ruleset::{ServiceAddr, Target};
use std::net::Ipv4Addr;

fn spec() -> TableSpec {
    TableSpec::new("bosun_t", "10.96.0.0/16", "10.244.0.0/16").expect("valid spec")
}

fn addr(last: u8, protocol: Protocol, port: u16) -> ServiceAddr {
    ServiceAddr { ip: Ipv4Addr::new(10, 96, 0, last), protocol, port }
}

fn ep(last: u8, port: u16) -> Endpoint {
    Endpoint { ip: Ipv4Addr::new(10, 244, 1, last), port }
}

#[test]
fn full_script_snapshot() {
    let mut ruleset = Ruleset::default();
    let buckets: Vec<Endpoint> = (0..16).map(|i| if i % 2 == 0 { ep(2, 8080) } else { ep(3, 8080) }).collect();
    let source_ranges = vec!["10.0.0.0/8".parse().expect("cidr")];
    let lb = Target { buckets: buckets.clone(), masquerade: true, source_ranges, ..Target::default() };
    let web = Target { buckets: buckets.clone(), affinity: Some(10_800), ..Target::default() };
    ruleset.services.insert(addr(1, Protocol::Tcp, 80).into(), web);
    ruleset.services.insert(addr(2, Protocol::Udp, 53).into(), Target::default());
    ruleset.services.insert(
        Frontend::NodePort { protocol: Protocol::Tcp, port: 30080 },
        Target { masquerade: true, ..Target::default() },
    );
    let lb_addr = ServiceAddr { ip: Ipv4Addr::new(198, 51, 100, 1), protocol: Protocol::Tcp, port: 80 };
    ruleset.services.insert(lb_addr.into(), lb);
    ruleset.hairpin.extend([ep(2, 0).ip, ep(3, 0).ip]);
    let spec = spec().with_node_port_addresses(&["192.168.0.0/16", "192.168.1.0/24", "172.16.0.1/32"]).expect("valid");
    let script = full_script(&spec, &ruleset);
    let want = SNAPSHOT;
    assert_eq!(script, want, "full script:\n{script}");
}

#[test]
fn masquerade_all_masquerades_cluster_ip_traffic_from_pods_too() {
    let rule = "ct status dnat ct original ip daddr 10.96.0.0/16 masquerade\n";
    let default = full_script(&spec(), &Ruleset::default());
    assert!(!default.contains(rule) && default.contains("ip daddr 10.96.0.0/16 ip saddr != 10.244.0.0/16 masquerade"));
    let all = full_script(&spec().with_masquerade_all(true), &Ruleset::default());
    assert!(all.contains(rule), "{all}");
    assert!(!all.contains("ip saddr != 10.244.0.0/16 masquerade"));
}

#[test]
fn ops_script_deletes_before_adds_grouped_per_set() {
    let web: Frontend = addr(1, Protocol::Tcp, 80).into();
    let dns: Frontend = addr(2, Protocol::Udp, 53).into();
    let ops = [
        Op::Add(Element::Hairpin(ep(4, 0).ip)),
        Op::Delete(Element::Backend { addr: web, bucket: 3, endpoint: ep(3, 8080) }),
        Op::Add(Element::Backend { addr: web, bucket: 3, endpoint: ep(4, 8080) }),
        Op::Delete(Element::NoEndpoints(dns)),
        Op::Add(Element::Dispatch { addr: dns, buckets: 16 }),
        Op::Delete(Element::Hairpin(ep(3, 0).ip)),
        Op::Delete(Element::Backend { addr: web, bucket: 5, endpoint: ep(3, 8080) }),
    ];
    let want = "\
delete element ip bosun_t backends { 10.96.0.1 . tcp . 80 . 3, 10.96.0.1 . tcp . 80 . 5 }
delete element ip bosun_t no_endpoints { 10.96.0.2 . udp . 53 }
delete element ip bosun_t hairpin { 10.244.1.3 . 10.244.1.3 }
add element ip bosun_t service_ports { 10.96.0.2 . udp . 53 : goto buckets_16 }
add element ip bosun_t backends { 10.96.0.1 . tcp . 80 . 3 : 10.244.1.4 . 8080 }
add element ip bosun_t hairpin { 10.244.1.4 . 10.244.1.4 }
";
    assert_eq!(ops_script("bosun_t", &ops), want);
    assert_eq!(ops_script("bosun_t", &[]), "");
}

#[test]
fn delete_script_tolerates_a_missing_table() {
    assert_eq!(delete_script("bosun_t"), "table ip bosun_t\ndelete table ip bosun_t\n");
}

const SNAPSHOT: &str = r"table ip bosun_t
delete table ip bosun_t
table ip bosun_t {
  map aff_0a600001_tcp_80_10800 {
    typeof ip saddr : ip daddr . th dport; size 65536; flags dynamic,timeout; timeout 10800s;
  }
  chain aff_0a600001_tcp_80_10800 {
    meta l4proto { tcp, udp, sctp } dnat ip to ip saddr map @aff_0a600001_tcp_80_10800
  }
  chain recaff_0a600001_tcp_80_10800 {
    update @aff_0a600001_tcp_80_10800 { ip saddr : ip daddr . th dport }
  }
  map service_ports {
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = {
      10.96.0.1 . tcp . 80 : goto buckets_16,
      198.51.100.1 . tcp . 80 : goto buckets_16
    }
  }
  map backends {
    typeof ip daddr . meta l4proto . th dport . numgen random mod 16 : ip daddr . th dport
    elements = {
      10.96.0.1 . tcp . 80 . 0 : 10.244.1.2 . 8080,
      10.96.0.1 . tcp . 80 . 1 : 10.244.1.3 . 8080,
      10.96.0.1 . tcp . 80 . 2 : 10.244.1.2 . 8080,
      10.96.0.1 . tcp . 80 . 3 : 10.244.1.3 . 8080,
      10.96.0.1 . tcp . 80 . 4 : 10.244.1.2 . 8080,
      10.96.0.1 . tcp . 80 . 5 : 10.244.1.3 . 8080,
      10.96.0.1 . tcp . 80 . 6 : 10.244.1.2 . 8080,
      10.96.0.1 . tcp . 80 . 7 : 10.244.1.3 . 8080,
      10.96.0.1 . tcp . 80 . 8 : 10.244.1.2 . 8080,
      10.96.0.1 . tcp . 80 . 9 : 10.244.1.3 . 8080,
      10.96.0.1 . tcp . 80 . 10 : 10.244.1.2 . 8080,
      10.96.0.1 . tcp . 80 . 11 : 10.244.1.3 . 8080,
      10.96.0.1 . tcp . 80 . 12 : 10.244.1.2 . 8080,
      10.96.0.1 . tcp . 80 . 13 : 10.244.1.3 . 8080,
      10.96.0.1 . tcp . 80 . 14 : 10.244.1.2 . 8080,
      10.96.0.1 . tcp . 80 . 15 : 10.244.1.3 . 8080,
      198.51.100.1 . tcp . 80 . 0 : 10.244.1.2 . 8080,
      198.51.100.1 . tcp . 80 . 1 : 10.244.1.3 . 8080,
      198.51.100.1 . tcp . 80 . 2 : 10.244.1.2 . 8080,
      198.51.100.1 . tcp . 80 . 3 : 10.244.1.3 . 8080,
      198.51.100.1 . tcp . 80 . 4 : 10.244.1.2 . 8080,
      198.51.100.1 . tcp . 80 . 5 : 10.244.1.3 . 8080,
      198.51.100.1 . tcp . 80 . 6 : 10.244.1.2 . 8080,
      198.51.100.1 . tcp . 80 . 7 : 10.244.1.3 . 8080,
      198.51.100.1 . tcp . 80 . 8 : 10.244.1.2 . 8080,
      198.51.100.1 . tcp . 80 . 9 : 10.244.1.3 . 8080,
      198.51.100.1 . tcp . 80 . 10 : 10.244.1.2 . 8080,
      198.51.100.1 . tcp . 80 . 11 : 10.244.1.3 . 8080,
      198.51.100.1 . tcp . 80 . 12 : 10.244.1.2 . 8080,
      198.51.100.1 . tcp . 80 . 13 : 10.244.1.3 . 8080,
      198.51.100.1 . tcp . 80 . 14 : 10.244.1.2 . 8080,
      198.51.100.1 . tcp . 80 . 15 : 10.244.1.3 . 8080
    }
  }
  set no_endpoints {
    type ipv4_addr . inet_proto . inet_service
    elements = {
      10.96.0.2 . udp . 53
    }
  }
  set no_local_endpoints {
    type ipv4_addr . inet_proto . inet_service
  }
  map node_ports {
    type inet_proto . inet_service : verdict
  }
  map node_port_backends {
    typeof meta l4proto . th dport . numgen random mod 16 : ip daddr . th dport
  }
  set node_port_no_endpoints {
    type inet_proto . inet_service
    elements = {
      tcp . 30080
    }
  }
  set node_port_no_local_endpoints {
    type inet_proto . inet_service
  }
  set masquerade_addrs {
    type ipv4_addr . inet_proto . inet_service
    elements = {
      198.51.100.1 . tcp . 80
    }
  }
  set masquerade_node_ports {
    type inet_proto . inet_service
    elements = {
      tcp . 30080
    }
  }
  set lb_firewalled {
    type ipv4_addr . inet_proto . inet_service
    elements = {
      198.51.100.1 . tcp . 80
    }
  }
  set lb_source_ranges {
    type ipv4_addr . inet_proto . inet_service . ipv4_addr; flags interval
    elements = {
      198.51.100.1 . tcp . 80 . 10.0.0.0/8
    }
  }
  map affinity_ports {
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = {
      10.96.0.1 . tcp . 80 : jump aff_0a600001_tcp_80_10800
    }
  }
  map affinity_node_ports {
    type inet_proto . inet_service : verdict
  }
  map affinity_record {
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = {
      10.96.0.1 . tcp . 80 : jump recaff_0a600001_tcp_80_10800
    }
  }
  map affinity_record_node_ports {
    type inet_proto . inet_service : verdict
  }
  set hairpin {
    type ipv4_addr . ipv4_addr
    elements = {
      10.244.1.2 . 10.244.1.2,
      10.244.1.3 . 10.244.1.3
    }
  }
  set node_port_addresses {
    type ipv4_addr; flags interval
    elements = { 172.16.0.1/32, 192.168.0.0/16 }
  }
  chain buckets_16 {
    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 16 map @backends
  }
  chain node_port_buckets_16 {
    dnat ip to meta l4proto . th dport . numgen random mod 16 map @node_port_backends
  }
  chain buckets_32 {
    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 32 map @backends
  }
  chain node_port_buckets_32 {
    dnat ip to meta l4proto . th dport . numgen random mod 32 map @node_port_backends
  }
  chain buckets_64 {
    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 64 map @backends
  }
  chain node_port_buckets_64 {
    dnat ip to meta l4proto . th dport . numgen random mod 64 map @node_port_backends
  }
  chain buckets_128 {
    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 128 map @backends
  }
  chain node_port_buckets_128 {
    dnat ip to meta l4proto . th dport . numgen random mod 128 map @node_port_backends
  }
  chain buckets_256 {
    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 256 map @backends
  }
  chain node_port_buckets_256 {
    dnat ip to meta l4proto . th dport . numgen random mod 256 map @node_port_backends
  }
  chain buckets_512 {
    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 512 map @backends
  }
  chain node_port_buckets_512 {
    dnat ip to meta l4proto . th dport . numgen random mod 512 map @node_port_backends
  }
  chain buckets_1024 {
    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 1024 map @backends
  }
  chain node_port_buckets_1024 {
    dnat ip to meta l4proto . th dport . numgen random mod 1024 map @node_port_backends
  }
  chain buckets_2048 {
    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2048 map @backends
  }
  chain node_port_buckets_2048 {
    dnat ip to meta l4proto . th dport . numgen random mod 2048 map @node_port_backends
  }
  chain buckets_4096 {
    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 4096 map @backends
  }
  chain node_port_buckets_4096 {
    dnat ip to meta l4proto . th dport . numgen random mod 4096 map @node_port_backends
  }
  chain buckets_8192 {
    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 8192 map @backends
  }
  chain node_port_buckets_8192 {
    dnat ip to meta l4proto . th dport . numgen random mod 8192 map @node_port_backends
  }
  chain buckets_16384 {
    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 16384 map @backends
  }
  chain node_port_buckets_16384 {
    dnat ip to meta l4proto . th dport . numgen random mod 16384 map @node_port_backends
  }
  chain buckets_32768 {
    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 32768 map @backends
  }
  chain node_port_buckets_32768 {
    dnat ip to meta l4proto . th dport . numgen random mod 32768 map @node_port_backends
  }
  chain buckets_65536 {
    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 65536 map @backends
  }
  chain node_port_buckets_65536 {
    dnat ip to meta l4proto . th dport . numgen random mod 65536 map @node_port_backends
  }
  chain node_port_dispatch {
    meta l4proto . th dport @masquerade_node_ports meta mark set meta mark or 0x4000
    meta l4proto . th dport vmap @affinity_node_ports
    meta l4proto . th dport vmap @node_ports
  }
  chain services {
    ip daddr . meta l4proto . th dport @masquerade_addrs meta mark set meta mark or 0x4000
    ip daddr . meta l4proto . th dport vmap @affinity_ports
    ip daddr . meta l4proto . th dport vmap @service_ports
    ip daddr != 127.0.0.0/8 ip daddr @node_port_addresses fib daddr type local jump node_port_dispatch
  }
  chain nat_prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump services
  }
  chain nat_output {
    type nat hook output priority -100; policy accept;
    jump services
  }
  chain affinity_record_new {
    meta l4proto tcp ct status dnat ct original ip daddr . meta l4proto . ct original proto-dst vmap @affinity_record
    meta l4proto tcp ct status dnat ct original ip daddr != 10.96.0.0/16 ct original ip daddr @node_port_addresses meta l4proto . ct original proto-dst vmap @affinity_record_node_ports
    meta l4proto udp ct status dnat ct original ip daddr . meta l4proto . ct original proto-dst vmap @affinity_record
    meta l4proto udp ct status dnat ct original ip daddr != 10.96.0.0/16 ct original ip daddr @node_port_addresses meta l4proto . ct original proto-dst vmap @affinity_record_node_ports
    meta l4proto sctp ct status dnat ct original ip daddr . meta l4proto . ct original proto-dst vmap @affinity_record
    meta l4proto sctp ct status dnat ct original ip daddr != 10.96.0.0/16 ct original ip daddr @node_port_addresses meta l4proto . ct original proto-dst vmap @affinity_record_node_ports
  }
  chain nat_postrouting {
    type nat hook postrouting priority srcnat; policy accept;
jump affinity_record_new
meta mark & 0x4000 == 0x4000 masquerade
ct status dnat ct original ip daddr 10.96.0.0/16 ip saddr != 10.244.0.0/16 masquerade
ct status dnat ct original ip daddr 10.96.0.0/16 ip saddr . ip daddr @hairpin masquerade
  }
  chain lb_firewall {
    type filter hook prerouting priority dstnat - 10; policy accept;
ip daddr . meta l4proto . th dport @lb_firewalled ip daddr . meta l4proto . th dport . ip saddr != @lb_source_ranges drop
  }
  chain reject_unserved {
ip daddr . meta l4proto . th dport @no_local_endpoints drop
ip daddr != 127.0.0.0/8 ip daddr @node_port_addresses fib daddr type local meta l4proto . th dport @node_port_no_local_endpoints drop
ip daddr . meta l4proto . th dport @no_endpoints meta l4proto tcp reject with tcp reset
ip daddr . meta l4proto . th dport @no_endpoints reject
ip daddr != 127.0.0.0/8 ip daddr @node_port_addresses fib daddr type local meta l4proto . th dport @node_port_no_endpoints meta l4proto tcp reject with tcp reset
ip daddr != 127.0.0.0/8 ip daddr @node_port_addresses fib daddr type local meta l4proto . th dport @node_port_no_endpoints reject
ip daddr 10.96.0.0/16 meta l4proto tcp reject with tcp reset
ip daddr 10.96.0.0/16 reject
  }
  chain filter_input {
    type filter hook input priority filter; policy accept;
    jump reject_unserved
  }
  chain filter_forward {
    type filter hook forward priority filter; policy accept;
    jump reject_unserved
  }
  chain filter_output {
    type filter hook output priority filter; policy accept;
    jump reject_unserved
  }
}
";
