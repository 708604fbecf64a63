use super::*;
use crate::model::Endpoint;
use crate::ruleset::ServiceAddr;

fn udp(ip: [u8; 4], port: u16) -> Frontend {
    Frontend::Ip(ServiceAddr { ip: Ipv4Addr::from(ip), protocol: Protocol::Udp, port })
}

fn target(ips: &[[u8; 4]]) -> Target {
    Target {
        buckets: ips.iter().map(|ip| Endpoint { ip: Ipv4Addr::from(*ip), port: 5353 }).collect(),
        ..Default::default()
    }
}

fn after(entries: &[(Frontend, Target)]) -> Ruleset {
    let mut ruleset = Ruleset::default();
    for (frontend, target) in entries {
        ruleset.services.insert(*frontend, target.clone());
    }
    ruleset
}

#[test]
fn a_removed_endpoint_of_a_udp_port_is_flushed_by_its_nat() {
    let dns = udp([10, 96, 0, 10], 53);
    let before = BTreeMap::from([(dns, Some(target(&[[10, 244, 0, 2], [10, 244, 0, 3]])))]);
    let stale = stale_flows(&before, &after(&[(dns, target(&[[10, 244, 0, 3], [10, 244, 0, 4]]))]));
    assert_eq!(stale, vec![StaleFlows { frontend: dns, endpoint: Some(Ipv4Addr::new(10, 244, 0, 2)) }]);
}

#[test]
fn a_udp_port_getting_its_first_endpoints_is_flushed_whole() {
    let dns = udp([10, 96, 0, 10], 53);
    let node_port = Frontend::NodePort { protocol: Protocol::Udp, port: 30053 };
    let before = BTreeMap::from([(dns, None), (node_port, Some(target(&[])))]);
    let ruleset = after(&[(dns, target(&[[10, 244, 0, 2]])), (node_port, target(&[[10, 244, 0, 2]]))]);
    let stale = stale_flows(&before, &ruleset);
    assert_eq!(
        stale,
        vec![StaleFlows { frontend: dns, endpoint: None }, StaleFlows { frontend: node_port, endpoint: None }]
    );
}

#[test]
fn a_removed_udp_port_flushes_each_endpoint_and_tcp_is_left_alone() {
    let dns = udp([10, 96, 0, 10], 53);
    let web = Frontend::Ip(ServiceAddr { ip: Ipv4Addr::new(10, 96, 0, 11), protocol: Protocol::Tcp, port: 80 });
    let before = BTreeMap::from([(dns, Some(target(&[[10, 244, 0, 2]]))), (web, Some(target(&[[10, 244, 0, 5]])))]);
    let stale = stale_flows(&before, &Ruleset::default());
    assert_eq!(stale, vec![StaleFlows { frontend: dns, endpoint: Some(Ipv4Addr::new(10, 244, 0, 2)) }]);
}

#[test]
fn unchanged_and_emptied_ports_need_nothing_beyond_their_left_endpoints() {
    let dns = udp([10, 96, 0, 10], 53);
    let same = BTreeMap::from([(dns, Some(target(&[[10, 244, 0, 2]])))]);
    assert!(stale_flows(&same, &after(&[(dns, target(&[[10, 244, 0, 2]]))])).is_empty());
    // Rejected before and after: no NAT involved.
    let rejected = BTreeMap::from([(dns, Some(target(&[])))]);
    assert!(stale_flows(&rejected, &after(&[(dns, target(&[]))])).is_empty());
}

#[test]
fn delete_arguments_name_the_frontend_and_the_nat() {
    let flows = StaleFlows { frontend: udp([10, 96, 0, 10], 53), endpoint: Some(Ipv4Addr::new(10, 244, 0, 2)) };
    assert_eq!(
        delete_args(&flows),
        ["-D", "-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53", "--dst-nat", "10.244.0.2"]
    );
    let node_port =
        StaleFlows { frontend: Frontend::NodePort { protocol: Protocol::Sctp, port: 30053 }, endpoint: None };
    assert_eq!(delete_args(&node_port), ["-D", "-p", "sctp", "--orig-port-dst", "30053"]);
}

#[test]
fn the_deleted_count_is_read_from_the_summary_line() {
    let none = "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n";
    assert_eq!(deleted_count(none), Some(0));
    let some = "udp 17 29 src=10.0.0.1 dst=10.96.0.10 ...\nconntrack v1.4.7 (conntrack-tools): 3 flow entries have been deleted.\n";
    assert_eq!(deleted_count(some), Some(3));
    assert_eq!(deleted_count("conntrack v1.4.7 (conntrack-tools): Operation not permitted\n"), None);
    assert_eq!(deleted_count(""), None);
}
