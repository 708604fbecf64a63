use serde_json::json;

use super::*;

pub(crate) fn service(v: serde_json::Value) -> Service {
    serde_json::from_value(v).expect("service")
}

pub(crate) fn slice(v: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(v).expect("slice")
}

#[test]
fn reduces_services_to_what_dns_needs() {
    let cases = [
        (
            json!({"metadata": {"name": "a"}, "spec": {"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5", "fd00::5"],
            "ports": [{"name": "HTTP", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
            Some(ServiceInfo {
                kind: ServiceKind::ClusterIp(vec!["10.96.0.5".parse().unwrap(), "fd00::5".parse().unwrap()]),
                ports: vec![
                    PortInfo { name: "http".into(), protocol: "tcp".into(), port: 80 },
                    PortInfo { name: "dns".into(), protocol: "udp".into(), port: 53 },
                ],
            }),
        ),
        (
            json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}}),
            Some(ServiceInfo { kind: ServiceKind::Headless, ports: vec![] }),
        ),
        (
            json!({"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "DB.Example.com."}}),
            Some(ServiceInfo { kind: ServiceKind::ExternalName("db.example.com".into()), ports: vec![] }),
        ),
        // Not allocated yet: no name.
        (json!({"metadata": {"name": "p"}, "spec": {}}), None),
    ];
    for (object, want) in cases {
        assert_eq!(service_info(&service(object.clone())), want, "{object}");
    }
}

#[test]
fn slices_need_their_service_label_and_unset_ready_counts_as_ready() {
    let s = slice(json!({"metadata": {"name": "a-1", "namespace": "ns", "labels": {SERVICE_NAME_LABEL: "a"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": ["10.0.0.1"], "hostname": "Web-0"},
                      {"addresses": ["10.0.0.2"], "conditions": {"ready": false}}]}));
    let (owner, info) = slice_info(&s).expect("owned");
    assert_eq!(owner, ("ns".to_string(), "a".to_string()));
    assert_eq!(info.ports, vec![PortInfo { name: "http".into(), protocol: "tcp".into(), port: 8080 }]);
    assert_eq!(
        info.endpoints[0],
        EndpointInfo { addresses: vec!["10.0.0.1".parse().unwrap()], hostname: Some("web-0".into()), ready: true }
    );
    assert!(!info.endpoints[1].ready);
    assert_eq!(slice_info(&slice(json!({"metadata": {"name": "x"}, "addressType": "IPv4", "endpoints": []}))), None);
}

#[test]
fn a_relist_is_swapped_in_whole_and_deletes_what_it_no_longer_lists() {
    let web = service(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.5"}}));
    let old = service(json!({"metadata": {"name": "old", "namespace": "gone"}, "spec": {"clusterIP": "10.96.0.6"}}));
    let mut zone = Zone::default();
    zone.service_event(Event::Apply(old.clone()));
    assert!(zone.has_namespace("gone"));
    zone.service_event(Event::Init);
    zone.service_event(Event::InitApply(web.clone()));
    // Mid-relist, the old view still answers.
    assert!(zone.service("gone", "old").is_some());
    assert!(zone.service("default", "web").is_none());
    zone.service_event(Event::InitDone);
    assert!(zone.service("gone", "old").is_none());
    assert!(!zone.has_namespace("gone"));
    assert!(zone.service("default", "web").is_some());
    zone.service_event(Event::Delete(web));
    assert_eq!(zone.service_count(), 0);
    assert!(!zone.has_namespace("default"));
}

#[test]
fn slices_follow_their_service_across_updates_and_deletes() {
    let mut zone = Zone::default();
    let one = |ip: &str| {
        slice(json!({"metadata": {"name": "db-1", "namespace": "ns", "labels": {SERVICE_NAME_LABEL: "db"}},
        "addressType": "IPv4", "endpoints": [{"addresses": [ip]}]}))
    };
    zone.slice_event(Event::Apply(one("10.0.0.1")));
    zone.slice_event(Event::Apply(one("10.0.0.2")));
    let ips: Vec<_> = zone.slices_of("ns", "db").flat_map(|s| s.endpoints.clone()).collect();
    assert_eq!(ips.len(), 1);
    assert_eq!(ips[0].addresses, vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
    zone.slice_event(Event::Delete(one("10.0.0.2")));
    assert_eq!(zone.slices_of("ns", "db").count(), 0);
}
