//! Table tests of EndpointSlice rendering.

use super::*;
use serde_json::{json, Value};

fn service(spec: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"team": "a"}},
        "spec": spec
    }))
    .expect("service")
}

fn pod(name: &str, ip: Option<&str>, ready: bool, extra: Value) -> Arc<Pod> {
    let mut value = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"),
                     "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c",
            "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    });
    if let (Value::Object(base), Value::Object(more)) = (&mut value, extra) {
        for (k, v) in more {
            if let (Some(Value::Object(inner)), Value::Object(v)) = (base.get_mut(&k), v.clone()) {
                inner.extend(v);
            } else {
                base.insert(k, v);
            }
        }
    }
    Arc::new(serde_json::from_value(value).expect("pod"))
}

/// (address, ready, serving, terminating) per endpoint.
fn summary(slice: &EndpointSlice) -> Vec<(String, bool, bool, bool)> {
    slice
        .endpoints
        .iter()
        .map(|e| {
            let c = e.conditions.clone().unwrap_or_default();
            (
                e.addresses.join(","),
                c.ready.unwrap_or_default(),
                c.serving.unwrap_or_default(),
                c.terminating.unwrap_or_default(),
            )
        })
        .collect()
}

fn ports(slice: &EndpointSlice) -> Vec<(String, i32, String)> {
    slice
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (p.name.clone().unwrap_or_default(), p.port.unwrap_or_default(), p.protocol.clone().unwrap_or_default())
        })
        .collect()
}

#[test]
fn endpoints_reflect_pod_readiness_and_termination() {
    let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}));
    let pods = vec![
        pod("b-ready", Some("10.244.0.3"), true, json!({})),
        pod("a-not-ready", Some("10.244.0.2"), false, json!({})),
        pod("c-no-ip", None, true, json!({})),
        pod(
            "d-terminating",
            Some("10.244.0.5"),
            true,
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
        ),
        pod("e-other-app", Some("10.244.0.6"), true, json!({"metadata": {"labels": {"app": "db"}}})),
        pod("f-failed", Some("10.244.0.7"), true, json!({"status": {"phase": "Failed"}})),
    ];
    let slice = render(&svc, &pods).expect("slice");
    assert_eq!(
        summary(&slice),
        [
            ("10.244.0.2".to_string(), false, false, false),
            ("10.244.0.3".to_string(), true, true, false),
            ("10.244.0.5".to_string(), false, true, true),
        ]
    );
    let first = &slice.endpoints[1];
    assert_eq!(first.node_name.as_deref(), Some("n1"));
    let target = first.target_ref.clone().unwrap_or_default();
    assert_eq!((target.kind.as_deref(), target.name.as_deref()), (Some("Pod"), Some("b-ready")));
    assert_eq!(slice.address_type, "IPv4");
}

#[test]
fn ports_resolve_numbers_names_and_defaults() {
    let cases = [
        (json!([{"name": "web", "port": 80, "targetPort": 8080}]), vec![("web", 8080, "TCP")]),
        (json!([{"port": 80}]), vec![("", 80, "TCP")]),
        (json!([{"name": "h", "port": 80, "targetPort": "http", "protocol": "TCP"}]), vec![("h", 8080, "TCP")]),
        (json!([{"name": "u", "port": 53, "targetPort": 5353, "protocol": "UDP"}]), vec![("u", 5353, "UDP")]),
        (json!([{"name": "x", "port": 80, "targetPort": "missing"}]), vec![]),
        (json!([{"name": "big", "port": 80, "targetPort": 2_147_483_647}]), vec![]),
        (json!([{"name": "neg", "port": 80, "targetPort": "-1"}]), vec![]),
        (json!([{"name": "zero", "port": 80, "targetPort": 0}, {"name": "ok", "port": 81}]), vec![("ok", 81, "TCP")]),
    ];
    let pods = vec![pod("a", Some("10.244.0.2"), true, json!({}))];
    for (svc_ports, want) in cases {
        let svc = service(json!({"selector": {"app": "web"}, "ports": svc_ports}));
        let slice = render(&svc, &pods).expect("slice");
        let want: Vec<(String, i32, String)> =
            want.into_iter().map(|(n, p, proto)| (n.to_string(), p, proto.to_string())).collect();
        assert_eq!(ports(&slice), want, "{svc_ports}");
    }
}

#[test]
fn slices_are_labelled_and_owned_by_their_service() {
    let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
    let slice = render(&svc, &[]).expect("slice");
    let labels = slice.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get(SERVICE_NAME_LABEL).map(String::as_str), Some("web"));
    assert_eq!(labels.get(MANAGED_BY_LABEL).map(String::as_str), Some(MANAGED_BY));
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
    let owner = selector::controller_of(&slice.metadata).expect("owner");
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Service", "svc-uid"));
    assert!(slice.endpoints.is_empty());
}

#[test]
fn services_without_selector_or_external_names_get_no_slice() {
    assert!(render(&service(json!({"ports": [{"port": 80}]})), &[]).is_none());
    assert!(render(&service(json!({"selector": {}})), &[]).is_none());
    assert!(render(
        &service(json!({"type": "ExternalName", "externalName": "x.example",
        "selector": {"app": "web"}})),
        &[]
    )
    .is_none());
}

#[test]
fn publish_not_ready_addresses_marks_everything_ready() {
    let svc = service(json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true}));
    let slice = render(&svc, &[pod("a", Some("10.244.0.2"), false, json!({}))]).expect("slice");
    assert_eq!(summary(&slice), [("10.244.0.2".to_string(), true, true, false)]);
}

#[test]
fn same_content_ignores_metadata_other_than_labels() {
    let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
    let pods = vec![pod("a", Some("10.244.0.2"), true, json!({}))];
    let desired = render(&svc, &pods).expect("slice");
    let mut existing = desired.clone();
    existing.metadata.name = Some("web-abcde".to_string());
    existing.metadata.resource_version = Some("7".to_string());
    assert!(same_content(&existing, &desired));
    existing.endpoints.clear();
    assert!(!same_content(&existing, &desired));
}
