//! Table tests of the ReplicaSet plan: scaling, adoption, release, status
//! and the scale-down order.

use super::*;
use serde_json::{json, Value};

const RS_UID: &str = "rs-uid";

fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": "web-abc", "namespace": "default", "uid": RS_UID, "generation": 3},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "front"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    }))
    .expect("rs")
}

/// A pod; `owner` is "ours", "other" or "none"; `state` is
/// "pending", "running", "ready" (Running + Ready since `ready_at`).
fn pod(name: &str, owner: &str, labels: Value, state: &str, node: Option<&str>, created: &str) -> Arc<Pod> {
    let owners = match owner {
        "ours" => json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                          "uid": RS_UID, "controller": true}]),
        "other" => json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x",
                           "uid": "other", "controller": true}]),
        _ => json!([]),
    };
    let status = match state {
        "pending" => json!({"phase": "Pending"}),
        "running" => json!({"phase": "Running"}),
        "ready" => json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}),
        "failed" => json!({"phase": "Failed"}),
        other => panic!("unknown state {other}"),
    };
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"),
                         "labels": labels, "ownerReferences": owners,
                         "creationTimestamp": created},
            "spec": {"containers": [{"name": "c"}], "nodeName": node},
            "status": status
        }))
        .expect("pod"),
    )
}

fn web() -> Value {
    json!({"app": "web", "tier": "front"})
}

const T0: &str = "2024-01-01T00:00:00Z";
const T1: &str = "2024-01-01T00:01:00Z";

fn now() -> jiff::Timestamp {
    "2024-01-01T00:10:00Z".parse().expect("now")
}

fn names(pods: &[Arc<Pod>]) -> Vec<String> {
    pods.iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect()
}

#[test]
fn plans_creates_deletes_adoptions_and_releases() {
    struct Case {
        name: &'static str,
        replicas: i32,
        pods: Vec<Arc<Pod>>,
        create: usize,
        delete: Vec<&'static str>,
        adopt: Vec<&'static str>,
        release: Vec<&'static str>,
    }
    let cases = vec![
        Case {
            name: "creates missing replicas",
            replicas: 3,
            pods: vec![pod("a", "ours", web(), "ready", Some("n"), T0)],
            create: 2,
            delete: vec![],
            adopt: vec![],
            release: vec![],
        },
        Case {
            name: "terminal and foreign pods do not count",
            replicas: 2,
            pods: vec![
                pod("a", "ours", web(), "failed", Some("n"), T0),
                pod("b", "other", web(), "ready", Some("n"), T0),
                pod("c", "ours", web(), "running", Some("n"), T0),
            ],
            create: 1,
            delete: vec![],
            adopt: vec![],
            release: vec![],
        },
        Case {
            name: "adopts matching orphans and releases mismatched pods",
            replicas: 1,
            pods: vec![
                pod("orphan", "none", web(), "ready", Some("n"), T0),
                pod("moved", "ours", json!({"app": "db"}), "ready", Some("n"), T0),
                pod("stranger", "none", json!({"app": "db"}), "ready", Some("n"), T0),
            ],
            create: 0,
            delete: vec![],
            adopt: vec!["orphan"],
            release: vec!["moved"],
        },
        Case {
            name: "scale down prefers unassigned, pending, not ready, newer",
            replicas: 1,
            pods: vec![
                pod("ready-old", "ours", web(), "ready", Some("n"), T0),
                pod("ready-new", "ours", web(), "ready", Some("n"), T1),
                pod("running", "ours", web(), "running", Some("n"), T0),
                pod("pending", "ours", web(), "pending", Some("n"), T0),
                pod("unassigned", "ours", web(), "pending", None, T0),
            ],
            create: 0,
            delete: vec!["unassigned", "pending", "running", "ready-new"],
            adopt: vec![],
            release: vec![],
        },
    ];
    for case in cases {
        let got = plan(&rs(case.replicas, 0), &case.pods, now());
        assert_eq!(got.create, case.create, "{}: create", case.name);
        assert_eq!(names(&got.delete), case.delete, "{}: delete", case.name);
        assert_eq!(names(&got.adopt), case.adopt, "{}: adopt", case.name);
        assert_eq!(names(&got.release), case.release, "{}: release", case.name);
    }
}

#[test]
fn status_counts_labels_readiness_and_availability() {
    let pods = vec![
        pod("a", "ours", web(), "ready", Some("n"), T0),
        pod("b", "ours", json!({"app": "web"}), "ready", Some("n"), T0),
        pod("c", "ours", web(), "running", Some("n"), T0),
    ];
    let got = plan(&rs(3, 0), &pods, now()).status;
    assert_eq!(
        (got.replicas, got.fully_labeled_replicas, got.ready_replicas, got.available_replicas),
        (3, Some(2), Some(2), Some(2))
    );
    assert_eq!(got.observed_generation, Some(3));

    let soon: jiff::Timestamp = "2024-01-01T00:00:05Z".parse().expect("time");
    let waiting = plan(&rs(3, 30), &pods, soon);
    assert_eq!(waiting.status.available_replicas, Some(0));
    assert_eq!(waiting.requeue_after, Some(Duration::from_secs(25)));
}

#[test]
fn deleting_replicaset_neither_creates_nor_adopts() {
    let mut set = rs(3, 0);
    set.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    let got = plan(&set, &[pod("orphan", "none", web(), "ready", Some("n"), T0)], now());
    assert_eq!((got.create, got.adopt.len()), (0, 0));
}

#[test]
fn pods_from_template_carry_labels_owner_and_generate_name() {
    let pod = pod_from_template(&rs(1, 0));
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-abc-"));
    assert_eq!(pod.metadata.labels, Some(serde_json::from_value(web()).expect("labels")));
    let owner = selector::controller_of(&pod.metadata).expect("controller ref");
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("ReplicaSet", RS_UID));
    assert_eq!(owner.block_owner_deletion, Some(true));
}
