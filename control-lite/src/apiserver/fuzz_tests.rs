//! Property tests ("fuzz targets") of the apiserver's pure input handling:
//! body decoders (JSON, YAML, protobuf), validation and defaulting of random
//! objects, the three patch types, server-side apply and managed fields, the label and field selector parsers, and
//! the Service address planner. None may panic; patches stay bounded; long
//! adversarial inputs are handled in one pass. Case counts keep the whole
//! set near a minute in a debug `cargo test` on the 2-core CI machine.

use axum::http::{header, HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::apply;
use super::clusterip;
use super::defaults;
use super::http::body::parse as parse_body;
use super::http::limits::ApiConfig;
use super::objects::{prepare, FieldValidation};
use super::patch::{self, PatchType};
use super::registry::{by_kind, Kind, RESOURCES};
use super::selectors::{FieldSelector, LabelSelector};
use super::validation::{self, UpdateKind};

/// Field names that steer random objects into the paths validation reads.
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "generateName",
    "labels",
    "annotations",
    "finalizers",
    "spec",
    "containers",
    "initContainers",
    "image",
    "resources",
    "requests",
    "limits",
    "cpu",
    "memory",
    "ports",
    "port",
    "containerPort",
    "hostPort",
    "protocol",
    "targetPort",
    "nodePort",
    "type",
    "clusterIP",
    "clusterIPs",
    "externalName",
    "selector",
    "matchLabels",
    "matchExpressions",
    "operator",
    "values",
    "key",
    "template",
    "replicas",
    "strategy",
    "rollingUpdate",
    "maxSurge",
    "maxUnavailable",
    "volumes",
    "volumeMounts",
    "mountPath",
    "emptyDir",
    "sizeLimit",
    "hostPath",
    "path",
    "livenessProbe",
    "readinessProbe",
    "httpGet",
    "tcpSocket",
    "exec",
    "command",
    "periodSeconds",
    "successThreshold",
    "env",
    "value",
    "valueFrom",
    "restartPolicy",
    "dnsPolicy",
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "tolerations",
    "overhead",
    "nodeName",
    "data",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$deleteFromPrimitiveList/finalizers",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![0i64, 1, -1, 80, 65535, 65536, 30000, i64::from(i32::MAX), i64::MIN])
            .prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "a",
            "web",
            "None",
            "ExternalName",
            "ClusterIP",
            "NodePort",
            "TCP",
            "UDP",
            "1.1.1.1",
            "10.96.0.9",
            "abc",
            "0e2147483644",
            "1e99",
            "100m",
            "1Gi",
            "-1",
            "25%",
            "101%",
            "Always",
            "Never",
            "merge",
            "delete",
            "replace",
            "In",
            "Exists",
            "x/y",
            "9223372036854775807m",
        ])
        .prop_map(Value::from),
        "[a-z0-9./%-]{0,12}".prop_map(Value::from),
    ]
}

/// Random JSON with Kubernetes-looking keys, depth and width bounded.
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6)
                .prop_map(|kvs| Value::Object(kvs.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>())),
        ]
    })
}

/// A random object that often type-checks as some served kind.
fn object() -> impl Strategy<Value = (usize, Value)> {
    (0..RESOURCES.len(), value(), value(), value()).prop_map(|(i, meta, spec, extra)| {
        let mut obj = json!({"metadata": {"name": "x", "namespace": "default"}});
        if let Value::Object(m) = meta {
            if let Some(o) = obj["metadata"].as_object_mut() {
                o.extend(m);
            }
        }
        obj["spec"] = spec;
        if let Value::Object(m) = extra {
            if let Some(o) = obj.as_object_mut() {
                o.extend(m.into_iter().filter(|(k, _)| k != "apiVersion" && k != "kind"));
            }
        }
        (i, obj)
    })
}

/// Valid objects of the kinds with the most validation, to mutate.
fn bases() -> Vec<(Kind, Value)> {
    let container = json!({"name": "c", "image": "i", "ports": [{"containerPort": 80, "name": "http"}],
        "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": "64Mi"}},
        "livenessProbe": {"httpGet": {"port": "http"}}, "volumeMounts": [{"name": "v", "mountPath": "/v"}]});
    let pod_spec = json!({"containers": [container], "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}}]});
    let template = json!({"metadata": {"labels": {"app": "a"}}, "spec": pod_spec});
    let meta = json!({"name": "x", "namespace": "default", "uid": "u", "labels": {"app": "a"}});
    vec![
        (Kind::Pod, json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec})),
        (
            Kind::Deployment,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "a"}}, "template": template}}),
        ),
        (
            Kind::ReplicaSet,
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "a"}}, "template": template}}),
        ),
        (
            Kind::Service,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.9", "ports": [{"name": "a", "port": 80, "nodePort": 30080}]}}),
        ),
    ]
}

fn headers(content_type: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("x")));
    h
}

fn limits() -> patch::Limits {
    ApiConfig::default().patch_limits()
}

fn size(v: &Value) -> usize {
    v.to_string().len()
}

/// Cases per target (each target runs ~1-5 s in a debug build at this count).
const CASES: u32 = 5000;

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic_on_random_bytes(i in 0..RESOURCES.len(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let info = &RESOURCES[i];
        for ct in ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"] {
            if let Ok(v) = parse_body(info, &headers(ct), &bytes) {
                let _ = prepare(info, v, FieldValidation::Strict);
            }
        }
        // A protobuf envelope with a random payload reaches the message decoder.
        let mut envelope = b"k8s\0".to_vec();
        envelope.extend_from_slice(&bytes);
        let _ = parse_body(info, &headers("application/vnd.kubernetes.protobuf"), &envelope);
    }

    #[test]
    fn decoders_round_trip_random_documents(i in 0..RESOURCES.len(), doc in value()) {
        let info = &RESOURCES[i];
        let text = doc.to_string();
        let decoded = parse_body(info, &headers("application/json"), text.as_bytes());
        prop_assert_eq!(decoded.ok(), Some(doc.clone()));
        if let Ok(yaml) = serde_yaml_ng::to_string(&doc) {
            let _ = parse_body(info, &headers("application/yaml"), yaml.as_bytes());
        }
    }

    #[test]
    fn validation_and_defaults_never_panic((i, obj) in object(), (_, other) in object()) {
        let info = &RESOURCES[i];
        for candidate in [obj, other.clone()] {
            let _ = validation::validate(info, &candidate);
            if let Ok((mut typed, _)) = prepare(info, candidate, FieldValidation::Ignore) {
                defaults::apply(info.kind, &mut typed);
                defaults::on_create(info.kind, &mut typed);
                let _ = validation::validate(info, &typed);
                for how in [UpdateKind::Main, UpdateKind::Status, UpdateKind::Binding] {
                    let _ = validation::validate_update(info, &other, &typed, how);
                }
                if info.kind == Kind::Service {
                    let cidr: clusterip::Cidr = "10.96.0.0/16".parse().expect("cidr");
                    let mut next = typed.clone();
                    clusterip::drop_type_dependent_fields(Some(&other), &mut next);
                    let _ = clusterip::plan(cidr, Some(&other), &next);
                    let _ = clusterip::plan(cidr, None, &typed);
                }
            }
        }
    }

    #[test]
    fn mutated_valid_objects_validate_without_panic(which in 0..4usize, old_patch in value(), new_patch in value()) {
        let (kind, base) = bases().swap_remove(which);
        let info = by_kind(kind);
        let mut old = base.clone();
        defaults::apply(kind, &mut old);
        prop_assert!(validation::validate(info, &old).is_empty(), "base must be valid");
        let mut new = old.clone();
        json_patch::merge(&mut new, &json!({"spec": new_patch}));
        json_patch::merge(&mut old, &json!({"metadata": {"labels": old_patch}}));
        if let Ok((mut typed, _)) = prepare(info, new, FieldValidation::Ignore) {
            defaults::apply(kind, &mut typed);
            let _ = validation::validate(info, &typed);
            let _ = validation::validate_update(info, &old, &typed, UpdateKind::Main);
            if kind == Kind::Service {
                let cidr: clusterip::Cidr = "10.96.0.0/16".parse().expect("cidr");
                clusterip::drop_type_dependent_fields(Some(&old), &mut typed);
                let _ = clusterip::plan(cidr, Some(&old), &typed);
            }
        }
    }

    #[test]
    fn merge_patches_are_bounded(doc in value(), p in value()) {
        let body = p.to_string();
        if let Ok(out) = patch::apply(PatchType::Merge, &doc, body.as_bytes(), limits()) {
            prop_assert!(size(&out) <= size(&doc) + body.len(), "{} from {} + {}", out, doc, body);
        }
        if let Ok(out) = patch::apply(PatchType::Strategic, &doc, body.as_bytes(), limits()) {
            prop_assert!(size(&out) <= size(&doc) + body.len(), "{} from {} + {}", out, doc, body);
        }
    }

    #[test]
    fn json_patches_never_panic(doc in value(), ops in prop::collection::vec((
        prop::sample::select(vec!["add", "remove", "replace", "move", "copy", "test", "bogus"]),
        "(/(metadata|spec|labels|containers|0|1|-|name|~0|~1)){0,4}",
        "(/(metadata|spec|labels|containers|0|1|-|name)){0,4}",
        value(),
    ), 0..6)) {
        let patch: Vec<Value> = ops
            .into_iter()
            .map(|(op, path, from, v)| json!({"op": op, "path": path, "from": from, "value": v}))
            .collect();
        let body = Value::Array(patch).to_string();
        let _ = patch::apply(PatchType::Json, &doc, body.as_bytes(), limits());
        // Random bytes as any patch type are errors, never panics.
        let _ = patch::apply(PatchType::Strategic, &doc, &body.as_bytes()[..body.len() / 2], limits());
    }

    #[test]
    fn selector_parsers_never_panic(s in "[a-z=!,() .\\-/]{0,60}", raw in "\\PC{0,40}") {
        for input in [&s, &raw] {
            if let Ok(sel) = LabelSelector::parse(input) {
                let _ = sel.render();
            }
            let _ = FieldSelector::parse(input);
        }
    }
}

proptest! {
    // Fewer cases: each runs three field set walks over the object.
    #![proptest_config(ProptestConfig { cases: CASES / 2, ..ProptestConfig::default() })]

    #[test]
    fn field_management_never_panics_and_reapplies_cleanly((_, live) in object(), config in value(), (_, put) in object()) {
        let w = |manager| apply::Writer { manager, subresource: "", api_version: "v1", part: apply::Part::Main, now: "2026-01-01T00:00:00Z" };
        let _ = apply::Set::from_fields_v1(&config);
        let mut next = put.clone();
        let _ = apply::record_update(Some(&live), &mut next, &w("put"));
        if let Ok(out) = apply::apply(Some(&live), &config, &w("a"), false) {
            // Its own entries read back, and the same apply again conflicts with nobody.
            prop_assert!(apply::managed::read(&out).is_ok(), "{}", out);
            prop_assert!(apply::apply(Some(&out), &config, &w("a"), false).is_ok(), "{} then {}", out, config);
        }
    }
}

#[test]
fn long_adversarial_inputs_are_handled_in_one_pass() {
    // Each of these is 100k+ characters; the parsers are single passes with no
    // backtracking, so they finish with an answer (not asserted by wall time).
    let n = 100_000;
    let selector = "a=b,".repeat(n / 4) + "c";
    assert_eq!(LabelSelector::parse(&selector).map(|s| s.0.len()).ok(), Some(n / 4 + 1));
    let nested = "(".repeat(n);
    assert!(LabelSelector::parse(&format!("a in {nested}")).is_err());
    let field = "metadata.name=x,".repeat(n / 16) + "spec.nodeName=";
    assert_eq!(FieldSelector::parse(&field).map(|s| s.0.len()).ok(), Some(n / 16 + 1));
    // A pod whose cpu request is a 100k-digit exponent is rejected with the field.
    let cpu = format!("1e{}", "9".repeat(n));
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu}}}]}});
    let causes = validation::validate(by_kind(Kind::Pod), &pod);
    assert_eq!(
        causes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(),
        vec!["spec.containers[0].resources.requests[cpu]"]
    );
    // 100k labels cost one pass each.
    let labels: Map<String, Value> = (0..n / 10).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default", "labels": labels}});
    assert!(validation::validate(by_kind(Kind::ConfigMap), &cm).is_empty());
}

#[test]
fn a_failed_move_after_a_successful_one_is_an_error_not_a_panic() {
    // json-patch 4.2's transactional `patch` panics undoing this (fuzz finding).
    // Undoing "move /0/x to /0" would move /0 into its own child.
    let doc = json!([{"x": {"y": 1}}]);
    let body = json!([{"op": "move", "from": "/0/x", "path": "/0"}, {"op": "remove", "path": "/9"}]);
    assert!(patch::apply(PatchType::Json, &doc, body.to_string().as_bytes(), limits()).is_err());
}
