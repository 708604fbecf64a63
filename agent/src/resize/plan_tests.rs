use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use super::*;
use crate::observed::{ObservedContainer, ObservedSandbox};

const NODE: NodeCapacity = NodeCapacity { cpu_millis: 2000, memory_bytes: 4 << 30 };

fn pod(resources: serde_json::Value, policy: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "d", "uid": "u1", "generation": 2},
        "spec": {"containers": [{"name": "app", "image": "busybox", "resources": resources, "resizePolicy": policy}]}
    }))
    .expect("pod")
}

fn cpu(request: &str, limit: &str) -> serde_json::Value {
    json!({"requests": {"cpu": request, "memory": "64Mi"}, "limits": {"cpu": limit, "memory": "64Mi"}})
}

fn running(state: RunState) -> ObservedPod {
    ObservedPod {
        sandboxes: vec![ObservedSandbox { id: "s0".into(), attempt: 0, ready: true, created_at: 0, ips: vec![] }],
        containers: vec![ObservedContainer {
            id: "c1".into(),
            sandbox_id: "s0".into(),
            name: "app".into(),
            attempt: 0,
            state,
            created_at: None,
            started_at: None,
            finished_at: None,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image: "busybox".into(),
            image_ref: String::new(),
            log_path: String::new(),
            spec_hash: None,
            termination: None,
        }],
        images: BTreeMap::new(),
    }
}

fn have(p: &Pod) -> HashMap<String, CgroupResources> {
    let c = &p.spec.as_ref().expect("spec").containers[0];
    HashMap::from([("c1".to_string(), CgroupResources::wanted(c).expect("parses"))])
}

#[test]
fn resize_decisions_table() {
    let before = pod(cpu("100m", "100m"), json!(null));
    let actual = have(&before);
    let restart_cpu = json!([{"resourceName": "cpu", "restartPolicy": "RestartContainer"}]);
    let restart_mem = json!([{"resourceName": "memory", "restartPolicy": "RestartContainer"}]);
    let more_mem =
        json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}});
    // (case, pod now, container state, updates, restarts, infeasible)
    let cases: Vec<(&str, Pod, RunState, usize, usize, bool)> = vec![
        ("unchanged", before.clone(), RunState::Running, 0, 0, false),
        ("cpu up, default policy: in place", pod(cpu("300m", "300m"), json!(null)), RunState::Running, 1, 0, false),
        ("cpu up, cpu RestartContainer", pod(cpu("300m", "300m"), restart_cpu.clone()), RunState::Running, 0, 1, false),
        (
            "memory up, cpu RestartContainer: in place",
            pod(more_mem.clone(), restart_cpu),
            RunState::Running,
            1,
            0,
            false,
        ),
        ("memory up, memory RestartContainer", pod(more_mem, restart_mem), RunState::Running, 0, 1, false),
        ("more cpu than the node", pod(cpu("3", "3"), json!(null)), RunState::Running, 0, 0, true),
        ("not running", pod(cpu("300m", "300m"), json!(null)), RunState::Exited, 0, 0, false),
    ];
    for (name, p, state, updates, restarts, infeasible) in cases {
        let got = plan(&p, &running(state), &actual, NODE);
        assert_eq!(got.updates.len(), updates, "{name}: updates");
        assert_eq!(got.restarts.len(), restarts, "{name}: restarts");
        assert_eq!(got.infeasible.is_some(), infeasible, "{name}: infeasible");
    }
}

#[test]
fn in_place_update_carries_the_new_quota_and_shares() {
    let before = pod(cpu("100m", "100m"), json!(null));
    let after = pod(cpu("300m", "300m"), json!(null));
    let got = plan(&after, &running(RunState::Running), &have(&before), NODE);
    let target = got.updates[0].target;
    assert_eq!((target.cpu_quota, target.cpu_period, target.cpu_shares), (30_000, 100_000, 307));
    assert_eq!(target.memory_limit, 64 << 20);
}

#[test]
fn infeasible_names_the_resource_as_upstream() {
    let got = plan(
        &pod(cpu("3", "3"), json!(null)),
        &running(RunState::Running),
        &have(&pod(cpu("1", "1"), json!(null))),
        NODE,
    );
    assert_eq!(
        got.infeasible.as_deref(),
        Some("Node didn't have enough capacity: cpu, requested: 3000, capacity: 2000")
    );
}

#[test]
fn unknown_containers_and_terminating_pods_are_left_alone() {
    let after = pod(cpu("300m", "300m"), json!(null));
    assert!(plan(&after, &running(RunState::Running), &HashMap::new(), NODE).is_empty());
    let mut deleting = after.clone();
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH));
    assert!(
        plan(&deleting, &running(RunState::Running), &have(&pod(cpu("100m", "100m"), json!(null))), NODE).is_empty()
    );
}

#[test]
fn runtime_info_gives_the_current_oci_resources() {
    let doc = json!({"runtimeSpec": {"linux": {"resources": {
        "cpu": {"shares": 307, "quota": 30000, "period": 100000}, "memory": {"limit": 67108864}}}}});
    let info = HashMap::from([("info".to_string(), doc.to_string())]);
    let got = CgroupResources::from_runtime_info(&info).expect("parsed");
    assert_eq!(
        got,
        CgroupResources { cpu_shares: 307, cpu_quota: 30_000, cpu_period: 100_000, memory_limit: 64 << 20 }
    );
    assert_eq!(CgroupResources::from_runtime_info(&HashMap::new()), None);
    let bare = HashMap::from([("info".to_string(), json!({"runtimeSpec": {"linux": {"resources": {}}}}).to_string())]);
    assert_eq!(CgroupResources::from_runtime_info(&bare), Some(CgroupResources::default()));
}
