//! Table tests for building the model from Service and EndpointSlice objects.

use super::*;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

fn service(value: serde_json::Value) -> Service {
    serde_json::from_value(value).expect("valid Service json")
}

fn slice(value: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(value).expect("valid EndpointSlice json")
}

fn web_service() -> Service {
    service(json!({
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "dns", "port": 53, "protocol": "UDP"}
        ]}
    }))
}

fn endpoint(ip: &str, ready: Option<bool>, serving: Option<bool>, terminating: Option<bool>) -> serde_json::Value {
    json!({"addresses": [ip], "conditions": {"ready": ready, "serving": serving, "terminating": terminating}})
}

fn web_slice(name: &str, endpoints: Vec<serde_json::Value>) -> EndpointSlice {
    slice(json!({
        "metadata": {"namespace": "default", "name": name, "labels": {SERVICE_NAME_LABEL: "web"}},
        "addressType": "IPv4",
        "ports": [
            {"name": "http", "port": 8080, "protocol": "TCP"},
            {"name": "dns", "port": 5353, "protocol": "UDP"}
        ],
        "endpoints": endpoints
    }))
}

fn ep(ip: &str, port: u16) -> Endpoint {
    Endpoint { ip: ip.parse().expect("ipv4"), port }
}

/// Builds the web service's ports from the given slices.
fn web_ports(slices: &[EndpointSlice]) -> BTreeMap<String, ServicePortState> {
    let info = service_info(&web_service()).expect("web is proxied");
    let infos: Vec<SliceInfo> = slices.iter().map(|s| slice_info(s).expect("slice is usable").1).collect();
    service_ports(&ServiceName::new("default", "web"), &info, infos.iter(), "")
        .into_iter()
        .map(|(key, state)| (key.port_name, state))
        .collect()
}

#[test]
fn service_info_skips_services_the_proxy_must_not_handle() {
    let cases = [
        ("headless", json!({"clusterIP": "None", "ports": [{"port": 80}]})),
        ("external name", json!({"type": "ExternalName", "externalName": "example.org"})),
        ("ipv6 only", json!({"clusterIP": "fd00::1", "ports": [{"port": 80}]})),
        ("no cluster ip yet", json!({"ports": [{"port": 80}]})),
    ];
    for (what, spec) in cases {
        let svc = service(json!({"metadata": {"name": "s", "namespace": "n"}, "spec": spec}));
        assert_eq!(service_info(&svc), None, "{what}");
    }
    let foreign = service(json!({
        "metadata": {"name": "s", "namespace": "n", "labels": {SERVICE_PROXY_NAME_LABEL: "other"}},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 80}]}
    }));
    assert_eq!(service_info(&foreign), None, "owned by another proxy");
}

#[test]
fn service_info_keeps_cluster_ip_of_nodeport_and_dual_stack_services() {
    let svc = service(json!({
        "metadata": {"name": "s", "namespace": "n"},
        "spec": {"type": "NodePort", "clusterIP": "fd00::1", "clusterIPs": ["fd00::1", "10.96.3.4"],
                 "ports": [{"port": 443, "nodePort": 30443, "protocol": "SCTP"}, {"port": 1, "protocol": "ICMP"}]}
    }));
    let info = service_info(&svc).expect("proxied");
    assert_eq!(info.cluster_ip, Ipv4Addr::new(10, 96, 3, 4));
    assert_eq!(
        info.ports,
        vec![ServicePortSpec { name: String::new(), port: 443, protocol: Protocol::Sctp, node_port: Some(30443) }],
        "unknown protocols are dropped"
    );
}

#[test]
fn slice_info_requires_ipv4_and_service_label() {
    let unlabelled =
        slice(json!({"metadata": {"name": "x", "namespace": "n"}, "addressType": "IPv4", "endpoints": []}));
    assert_eq!(slice_info(&unlabelled), None);
    let ipv6 = slice(json!({
        "metadata": {"name": "x", "namespace": "n", "labels": {SERVICE_NAME_LABEL: "s"}},
        "addressType": "IPv6", "endpoints": []
    }));
    assert_eq!(slice_info(&ipv6), None);
}

#[test]
fn merges_multiple_slices_and_maps_named_ports_to_target_ports() {
    let ports = web_ports(&[
        web_slice("web-a", vec![endpoint("10.244.0.2", Some(true), None, None)]),
        web_slice("web-b", vec![endpoint("10.244.0.3", None, None, None)]),
    ]);
    assert_eq!(ports["http"].endpoints, vec![ep("10.244.0.2", 8080), ep("10.244.0.3", 8080)]);
    assert_eq!(ports["dns"].endpoints, vec![ep("10.244.0.2", 5353), ep("10.244.0.3", 5353)]);
    assert_eq!(
        ports["dns"].port,
        ServicePort { cluster_ip: Ipv4Addr::new(10, 96, 0, 10), port: 53, protocol: Protocol::Udp }
    );
}

#[test]
fn endpoint_selection_follows_readiness_rules() {
    struct Case {
        what: &'static str,
        endpoints: Vec<serde_json::Value>,
        want: Vec<&'static str>,
    }
    let cases = [
        Case {
            what: "not ready endpoints are excluded",
            endpoints: vec![
                endpoint("10.244.0.2", Some(true), Some(true), Some(false)),
                endpoint("10.244.0.3", Some(false), Some(false), Some(false)),
            ],
            want: vec!["10.244.0.2"],
        },
        Case {
            what: "terminating endpoints are excluded while any is ready",
            endpoints: vec![
                endpoint("10.244.0.2", Some(true), Some(true), Some(false)),
                endpoint("10.244.0.4", Some(false), Some(true), Some(true)),
            ],
            want: vec!["10.244.0.2"],
        },
        Case {
            what: "serving terminating endpoints are used when none is ready",
            endpoints: vec![
                endpoint("10.244.0.4", Some(false), Some(true), Some(true)),
                endpoint("10.244.0.5", Some(false), Some(false), Some(true)),
                endpoint("10.244.0.6", Some(false), Some(false), Some(false)),
            ],
            want: vec!["10.244.0.4"],
        },
        Case { what: "no endpoints at all", endpoints: vec![], want: vec![] },
        Case {
            what: "unparseable addresses are ignored",
            endpoints: vec![endpoint("not-an-ip", Some(true), None, None)],
            want: vec![],
        },
    ];
    for case in cases {
        let ports = web_ports(&[web_slice("web-a", case.endpoints)]);
        let got: Vec<String> = ports["http"].endpoints.iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(got, case.want, "{}", case.what);
    }
}

#[test]
fn endpoint_listed_in_two_slices_is_used_once_and_ready_if_any_copy_is() {
    let ports = web_ports(&[
        web_slice("web-a", vec![endpoint("10.244.0.2", Some(false), Some(false), Some(false))]),
        web_slice("web-b", vec![endpoint("10.244.0.2", Some(true), None, None)]),
    ]);
    assert_eq!(ports["http"].endpoints, vec![ep("10.244.0.2", 8080)]);
}

#[test]
fn slice_ports_must_match_name_and_protocol() {
    let wrong = slice(json!({
        "metadata": {"namespace": "default", "name": "w", "labels": {SERVICE_NAME_LABEL: "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "UDP"}, {"name": "other", "port": 9, "protocol": "UDP"}],
        "endpoints": [endpoint("10.244.0.2", Some(true), None, None)]
    }));
    let ports = web_ports(&[wrong]);
    assert!(ports["http"].endpoints.is_empty(), "protocol differs");
    assert!(ports["dns"].endpoints.is_empty(), "name differs");
}

#[test]
fn selectorless_service_without_slices_has_ports_with_no_endpoints() {
    let ports = web_ports(&[]);
    assert_eq!(ports.len(), 2);
    assert!(ports.values().all(|state| state.endpoints.is_empty()));
}

#[test]
fn replace_service_swaps_only_that_services_ports() {
    let mut state = ProxyState::default();
    let state_for = |port| ServicePortState {
        port: ServicePort { cluster_ip: Ipv4Addr::new(10, 96, 0, 1), port, protocol: Protocol::Tcp },
        endpoints: vec![],
        local_ips: vec![],
        ..Default::default()
    };
    let key = |name: &str, port_name: &str| ServiceKey {
        namespace: "ns".into(),
        name: name.into(),
        port_name: port_name.into(),
    };
    state.replace_service(
        &ServiceName::new("ns", "a"),
        vec![(key("a", "x"), state_for(1)), (key("a", "y"), state_for(2))],
    );
    state.replace_service(&ServiceName::new("ns", "ab"), vec![(key("ab", ""), state_for(3))]);
    state.replace_service(&ServiceName::new("ns", "a"), vec![(key("a", "z"), state_for(4))]);
    let keys: Vec<ServiceKey> = state.services.keys().cloned().collect();
    assert_eq!(keys, vec![key("a", "z"), key("ab", "")]);
    state.replace_service(&ServiceName::new("ns", "a"), vec![]);
    assert_eq!(state.services.len(), 1);
}

#[test]
fn only_endpoints_on_this_node_or_of_unknown_node_may_hairpin() {
    let info = service_info(&web_service()).expect("web is proxied");
    let (_, slice) = slice_info(&web_slice(
        "web-a",
        vec![
            json!({"addresses": ["10.244.0.2"], "nodeName": "node-1"}),
            json!({"addresses": ["10.244.0.3"], "nodeName": "node-2"}),
            json!({"addresses": ["10.244.0.4"]}),
        ],
    ))
    .expect("slice is usable");
    let local = |node: &str| -> Vec<String> {
        let ports = service_ports(&ServiceName::new("default", "web"), &info, [&slice].into_iter(), node);
        ports[0].1.local_ips.iter().map(|ip| ip.to_string()).collect()
    };
    assert_eq!(local("node-1"), vec!["10.244.0.2", "10.244.0.4"]);
    assert_eq!(local(""), vec!["10.244.0.2", "10.244.0.3", "10.244.0.4"], "unknown node: all");
}

fn external_of(spec: serde_json::Value, status: serde_json::Value) -> ExternalAccess {
    let object = service(json!({"metadata": {"namespace": "default", "name": "web"}, "spec": spec, "status": status}));
    let info = service_info(&object).expect("proxied");
    let ports = service_ports(&ServiceName::new("default", "web"), &info, std::iter::empty(), "");
    ports.into_iter().next().expect("one port").1.external
}

#[test]
fn node_ports_external_and_lb_ips_follow_the_service_type() {
    let ingress = json!({"loadBalancer": {"ingress": [
        {"ip": "198.51.100.9"}, {"ip": "198.51.100.2"}, {"hostname": "lb.example"},
        {"ip": "198.51.100.3", "ipMode": "Proxy"}, {"ip": "2001:db8::1"}
    ]}});
    let spec = |type_: &str| {
        json!({"type": type_, "clusterIP": "10.96.0.10", "externalIPs": ["203.0.113.5", "203.0.113.1", "203.0.113.5"],
               "ports": [{"port": 80, "nodePort": 30080}]})
    };
    let ip = |s: &str| s.parse::<Ipv4Addr>().expect("ipv4");
    let lb = external_of(spec("LoadBalancer"), ingress.clone());
    assert_eq!(lb.node_port, Some(30080));
    assert_eq!(lb.external_ips, vec![ip("203.0.113.1"), ip("203.0.113.5")], "sorted, unique");
    assert_eq!(lb.load_balancer_ips, vec![ip("198.51.100.2"), ip("198.51.100.9")], "IPv4, not ipMode Proxy");
    let node_port = external_of(spec("NodePort"), ingress.clone());
    assert_eq!((node_port.node_port, node_port.load_balancer_ips.len()), (Some(30080), 0));
    let cluster_ip = external_of(spec("ClusterIP"), ingress);
    assert_eq!(cluster_ip.node_port, None, "a stale nodePort on a ClusterIP service is not served");
    assert_eq!(cluster_ip.external_ips.len(), 2, "externalIPs apply to every type");
}

#[test]
fn source_ranges_are_merged_and_garbage_keeps_the_firewall_closed() {
    let with_ranges = |ranges: serde_json::Value| {
        let spec = json!({"type": "LoadBalancer", "clusterIP": "10.96.0.10", "ports": [{"port": 80}],
                          "loadBalancerSourceRanges": ranges});
        let text: Vec<String> = external_of(spec, json!({})).source_ranges.iter().map(ToString::to_string).collect();
        text
    };
    assert_eq!(
        with_ranges(json!(["10.1.0.0/16", "192.0.2.0/24", "10.0.0.0/8", " 10.2.3.4/32 ", "192.0.2.0/24"])),
        vec!["10.0.0.0/8", "192.0.2.0/24"]
    );
    assert_eq!(with_ranges(json!(["10.0.0.0/8", "bogus"])), vec!["10.0.0.0/8"]);
    assert_eq!(with_ranges(json!(["bogus"])), vec![NO_SOURCE.to_string()], "closed, not open");
    assert!(with_ranges(json!([])).is_empty());
}

#[test]
fn node_endpoints_are_those_on_this_node_with_their_own_terminating_fallback() {
    let info = service_info(&web_service()).expect("web is proxied");
    let (_, slice) = slice_info(&web_slice(
        "web-a",
        vec![
            json!({"addresses": ["10.244.0.2"], "nodeName": "node-2"}),
            json!({"addresses": ["10.244.0.3"], "nodeName": "node-1",
                   "conditions": {"ready": false, "serving": true, "terminating": true}}),
            json!({"addresses": ["10.244.0.4"]}),
        ],
    ))
    .expect("slice is usable");
    let ports = service_ports(&ServiceName::new("default", "web"), &info, [&slice].into_iter(), "node-1");
    let http = &ports[0].1;
    assert_eq!(http.endpoints, vec![ep("10.244.0.2", 8080), ep("10.244.0.4", 8080)], "cluster-wide: ready");
    assert_eq!(http.node_endpoints, vec![ep("10.244.0.3", 8080)], "on node-1: only a terminating one, used");
    let ports = service_ports(&ServiceName::new("default", "web"), &info, [&slice].into_iter(), "");
    assert!(ports[0].1.node_endpoints.is_empty(), "unknown node: nothing is known to be local");
}

#[test]
fn traffic_policies_and_health_check_port_are_read() {
    let object = service(json!({"metadata": {"namespace": "default", "name": "web"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "externalTrafficPolicy": "Local",
                 "internalTrafficPolicy": "Local", "healthCheckNodePort": 32000, "ports": [{"port": 80}]}}));
    let info = service_info(&object).expect("proxied");
    assert!(info.external_local && info.internal_local);
    assert_eq!(info.health_check_node_port, Some(32000));
    let ports = service_ports(&ServiceName::new("default", "web"), &info, std::iter::empty(), "n");
    assert!(ports[0].1.external.local && ports[0].1.internal_local);
}
