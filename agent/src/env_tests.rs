//! Tests of env resolution: downward API, resource fields, ConfigMap/Secret references, envFrom, expansion.

use super::*;
use crate::test_fixtures::{pod, sources, web_pod};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::json;

#[test]
fn resolves_downward_api_and_references() {
    let pod = web_pod();
    let container = &pod.spec.as_ref().expect("spec").containers[0];
    let env = resolve_env(&pod, container, &sources()).expect("env");
    let got: Vec<(&str, &str)> = env.iter().map(|kv| (kv.key.as_str(), kv.value.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("GREETING", "hello"),
            ("POD_NAME", "web"),
            ("POD_NS", "shop"),
            ("POD_UID", "u-1"),
            ("APP", "web"),
            ("NODE", "node-a"),
            ("SA", "sa"),
            ("POD_IP", "10.244.0.7"),
            ("HOST_IP", "192.0.2.10"),
            ("MSG", "hello world"),
            ("COLOR", "blue"),
            ("PASS", "s3cr3t"),
        ]
    );
}

#[test]
fn missing_references_are_errors_unless_optional() {
    let pod = web_pod();
    let container = &pod.spec.as_ref().expect("spec").containers[0];
    let mut srcs = sources();
    srcs.secrets.clear();
    assert_eq!(resolve_env(&pod, container, &srcs), Err(Error::SecretMissing { name: "creds".into() }));
    assert_eq!(
        env_references(&pod),
        EnvReferences { config_maps: vec!["cfg".into(), "nope".into()], secrets: vec!["creds".into()] }
    );
}

#[test]
fn expands_variables_like_kubernetes() {
    let vars = BTreeMap::from([("A", "1"), ("B", "two")]);
    let cases = [
        ("$(A)", "1"),
        ("x$(A)y$(B)", "x1ytwo"),
        ("$$(A)", "$(A)"),
        ("$(C)", "$(C)"),
        ("cost $5", "cost $5"),
        ("$(A", "$(A"),
    ];
    for (input, want) in cases {
        assert_eq!(expand(input, &vars), want, "{input}");
    }
}

#[test]
fn expansion_follows_upstream_edge_cases() {
    let vars = BTreeMap::from([("A", "1"), ("", "empty")]);
    let cases = [
        ("$$$(A)", "$1"),
        ("$$$$(A)", "$$(A)"),
        ("$", "$"),
        ("a$", "a$"),
        ("$()", "empty"),
        ("$(A)$(A", "1$(A"),
        ("é$(A)ü", "é1ü"),
        ("$é", "$é"),
        ("$(A)(B)", "1(B)"),
    ];
    for (input, want) in cases {
        assert_eq!(expand(input, &vars), want, "{input}");
    }
}

fn single(container: serde_json::Value) -> Pod {
    pod(json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"containers": [container], "hostNetwork": false}}))
}

fn env_of(pod: &Pod, srcs: &EnvSources) -> Vec<(String, String)> {
    let c = &pod.spec.as_ref().expect("spec").containers[0];
    resolve_env(pod, c, srcs).expect("env").into_iter().map(|kv| (kv.key, kv.value)).collect()
}

#[test]
fn env_from_prefixes_skips_invalid_keys_and_env_wins() {
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cfg"},
        "data": {"color": "blue", "1bad": "x", "size": "L"}}))
    .expect("cm");
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "data": {"token": "dG9r"}})).expect("secret");
    let srcs = EnvSources {
        config_maps: BTreeMap::from([("cfg".into(), cm)]),
        secrets: BTreeMap::from([("s".into(), secret)]),
        ..Default::default()
    };
    let p = single(json!({"name": "c", "envFrom": [
            {"configMapRef": {"name": "cfg"}, "prefix": "P_"},
            {"configMapRef": {"name": "cfg"}},
            {"secretRef": {"name": "s"}},
            {"secretRef": {"name": "gone", "optional": true}}],
        "env": [{"name": "size", "value": "$(P_size)-$(token)"}]}));
    let got = env_of(&p, &srcs);
    let want: Vec<(String, String)> =
        [("P_1bad", "x"), ("P_color", "blue"), ("P_size", "L"), ("color", "blue"), ("size", "L-tok"), ("token", "tok")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, want);
    let c = &p.spec.as_ref().expect("spec").containers[0];
    assert_eq!(
        invalid_env_from_keys("ns", c, &srcs),
        vec!["Keys [1bad] from the EnvFrom configMap ns/cfg were skipped since they are considered invalid environment variable names."]
    );
    let missing = single(json!({"name": "c", "envFrom": [{"secretRef": {"name": "gone"}}]}));
    let c = &missing.spec.as_ref().expect("spec").containers[0];
    assert_eq!(resolve_env(&missing, c, &srcs), Err(Error::SecretMissing { name: "gone".into() }));
}

#[test]
fn optional_keys_leave_the_variable_unset() {
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}})).expect("cm");
    let srcs = EnvSources { config_maps: BTreeMap::from([("cfg".into(), cm)]), ..Default::default() };
    let p = single(json!({"name": "c", "env": [
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a"}}},
        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "b", "optional": true}}},
        {"name": "C", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "b", "optional": true}}}]}));
    assert_eq!(env_of(&p, &srcs), vec![("A".to_string(), "1".to_string())]);
    let strict = single(
        json!({"name": "c", "env": [{"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "b"}}}]}),
    );
    let c = &strict.spec.as_ref().expect("spec").containers[0];
    assert_eq!(
        resolve_env(&strict, c, &srcs).map_err(|e| e.to_string()),
        Err("couldn't find key b in ConfigMap \"cfg\"".to_string())
    );
}

#[test]
fn resource_fields_with_divisors_and_allocatable_defaults() {
    let r = |name: &str, resource: &str, divisor: Option<&str>| {
        let mut sel = json!({"resource": resource});
        if let Some(d) = divisor {
            sel["divisor"] = json!(d);
        }
        json!({"name": name, "valueFrom": {"resourceFieldRef": sel}})
    };
    let p = single(json!({"name": "c",
        "resources": {"requests": {"cpu": "250m", "memory": "32Mi"}, "limits": {"cpu": "1500m", "memory": "64Mi"}},
        "env": [
            r("CPU_LIMIT", "limits.cpu", None),
            r("CPU_LIMIT_M", "limits.cpu", Some("1m")),
            r("CPU_REQ", "requests.cpu", None),
            r("MEM_LIMIT_MI", "limits.memory", Some("1Mi")),
            r("MEM_REQ", "requests.memory", None),
            r("EPH_LIMIT", "limits.ephemeral-storage", Some("1Ki")),
            r("EPH_REQ", "requests.ephemeral-storage", None)]}));
    let srcs = EnvSources {
        allocatable: Allocatable { cpu_milli: 2000, memory: 1 << 30, ephemeral_storage: 10 * 1024 },
        ..Default::default()
    };
    let got: BTreeMap<String, String> = env_of(&p, &srcs).into_iter().collect();
    let want = [
        ("CPU_LIMIT", "2"),
        ("CPU_LIMIT_M", "1500"),
        ("CPU_REQ", "1"),
        ("MEM_LIMIT_MI", "64"),
        ("MEM_REQ", "33554432"),
        ("EPH_LIMIT", "10"),
        ("EPH_REQ", "0"),
    ];
    for (k, v) in want {
        assert_eq!(got.get(k).map(String::as_str), Some(v), "{k}");
    }
    let unlimited =
        single(json!({"name": "c", "env": [r("CPU", "limits.cpu", None), r("MEM", "limits.memory", None)]}));
    let got: BTreeMap<String, String> = env_of(&unlimited, &srcs).into_iter().collect();
    assert_eq!((got["CPU"].as_str(), got["MEM"].as_str()), ("2", "1073741824"));
    let bad = single(json!({"name": "c", "env": [r("X", "limits.gpu", None)]}));
    let c = &bad.spec.as_ref().expect("spec").containers[0];
    assert!(matches!(resolve_env(&bad, c, &srcs), Err(Error::Resource { .. })));
}

#[test]
fn host_network_pods_see_the_node_ip_as_pod_ip() {
    let p = pod(json!({"metadata": {"name": "p"}, "spec": {"hostNetwork": true, "containers": [{"name": "c", "env": [
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
        {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIPs"}}}]}]}}));
    let srcs = EnvSources { host_ip: "192.0.2.9".into(), ..Default::default() };
    let got: Vec<String> = env_of(&p, &srcs).into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, vec!["192.0.2.9"; 3]);
}

#[test]
fn service_variables_expand_and_never_replace_the_containers_own() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [{"name": "c", "env": [
            {"name": "URL", "value": "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)"},
            {"name": "WEB_SERVICE_PORT", "value": "mine"}
        ]}]}
    }))
    .expect("pod");
    let mut srcs = sources();
    srcs.services = vec![("WEB_SERVICE_HOST".into(), "10.96.0.3".into()), ("WEB_SERVICE_PORT".into(), "80".into())];
    let env = resolve_env(&pod, &pod.spec.as_ref().expect("spec").containers[0], &srcs).expect("env");
    let got: Vec<(&str, &str)> = env.iter().map(|kv| (kv.key.as_str(), kv.value.as_str())).collect();
    assert_eq!(got, [("URL", "http://10.96.0.3:80"), ("WEB_SERVICE_PORT", "mine"), ("WEB_SERVICE_HOST", "10.96.0.3")]);
}
