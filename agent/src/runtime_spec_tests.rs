//! Tests of the Pod to CRI translation: command and args expansion, resources math, paths, labels.

use super::*;
use crate::test_fixtures::{sources, web_pod};
use serde_json::json;

#[test]
fn container_config_has_paths_labels_command_and_resources() {
    let pod = web_pod();
    let container = &pod.spec.as_ref().expect("spec").containers[0];
    let config = container_config(&pod, container, 3, &sources()).expect("config");
    assert_eq!(config.log_path, "main/3.log");
    assert_eq!(config.metadata, Some(api::ContainerMetadata { name: "main".into(), attempt: 3 }));
    assert_eq!(config.args, vec!["echo hello $HOME $(UNKNOWN)".to_string()]);
    assert_eq!(config.labels.get(labels::CONTAINER_NAME).map(String::as_str), Some("main"));
    assert_eq!(config.labels.get(labels::POD_UID).map(String::as_str), Some("u-1"));
    let resources = config.linux.and_then(|l| l.resources).expect("resources");
    assert_eq!(resources.cpu_shares, 256);
    assert_eq!(resources.cpu_period, 100_000);
    assert_eq!(resources.cpu_quota, 50_000);
    assert_eq!(resources.memory_limit_in_bytes, 64 * 1024 * 1024);
    assert_eq!(resources.oom_score_adj, 0);
}

#[test]
fn resources_math_table() {
    let req = |value: serde_json::Value| -> ResourceRequirements { serde_json::from_value(value).expect("resources") };
    // (requirements, shares, quota, period, memory)
    let cases = [
        (req(json!({})), 2, 0, 0, 0),
        (req(json!({"requests": {"cpu": "1m"}})), 2, 0, 0, 0),
        (req(json!({"requests": {"cpu": "1"}})), 1024, 0, 0, 0),
        (req(json!({"limits": {"cpu": "2", "memory": "1Gi"}})), 2048, 200_000, 100_000, 1 << 30),
        (req(json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "1500m"}})), 102, 150_000, 100_000, 0),
        // Users' numbers at the edges saturate and clamp instead of overflowing.
        (
            req(
                json!({"requests": {"cpu": "9223372036854775807m"}, "limits": {"cpu": "9223372036854775807m", "memory": "-1"}}),
            ),
            MAX_SHARES,
            MAX_QUOTA_US,
            100_000,
            0,
        ),
        (req(json!({"requests": {"cpu": "-5"}, "limits": {"cpu": "-5"}})), 2, 1000, 100_000, 0),
        (req(json!({"limits": {"cpu": "100000"}})), MAX_SHARES, 10_000_000_000, 100_000, 0),
    ];
    for (r, shares, quota, period, memory) in cases {
        let got = linux_resources(Some(&r)).expect("valid");
        assert_eq!(
            (got.cpu_shares, got.cpu_quota, got.cpu_period, got.memory_limit_in_bytes),
            (shares, quota, period, memory),
            "{r:?}"
        );
    }
}

#[test]
fn sandbox_config_carries_identity_log_dir_and_host_ports() {
    let pod = web_pod();
    let config = sandbox_config(&pod, 2, Path::new("/var/lib/bosun/agent"), &Default::default());
    assert_eq!(
        config.metadata,
        Some(api::PodSandboxMetadata { name: "web".into(), uid: "u-1".into(), namespace: "shop".into(), attempt: 2 })
    );
    assert_eq!(config.log_directory, "/var/lib/bosun/agent/pods/shop_web_u-1");
    assert_eq!(config.hostname, "web");
    assert_eq!(config.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(config.labels.get(labels::POD_NAMESPACE).map(String::as_str), Some("shop"));
    assert_eq!(config.port_mappings.len(), 1);
    assert_eq!(config.port_mappings[0].host_port, 8080);
    assert_eq!(config.port_mappings[0].container_port, 80);
}

#[test]
fn finds_only_the_log_dirs_of_one_pod_uid() {
    let entries = ["default_web-1_u1".to_string(), "default_web-2_u12".to_string(), "kube_x_u1".to_string()];
    assert_eq!(
        pod_log_dirs_of(std::path::Path::new("/r"), "u1", &entries),
        vec![std::path::PathBuf::from("/r/pods/default_web-1_u1"), std::path::PathBuf::from("/r/pods/kube_x_u1")]
    );
}

#[test]
fn init_containers_env_references_are_collected() {
    let mut pod = web_pod();
    let spec = pod.spec.as_mut().expect("spec");
    let init: Container = serde_json::from_value(serde_json::json!({
        "name": "init", "image": "busybox",
        "envFrom": [{"configMapRef": {"name": "init-cfg"}}, {"secretRef": {"name": "init-secret"}}]
    }))
    .expect("container");
    spec.init_containers = Some(vec![init]);
    let refs = env_references(&pod);
    assert!(refs.config_maps.contains(&"init-cfg".to_string()), "{refs:?}");
    assert!(refs.secrets.contains(&"init-secret".to_string()), "{refs:?}");
}
