//! Table tests of `schedule()`: every filter, the score and the message.

use super::*;
use k8s_openapi::api::core::v1::Node;
use serde_json::{json, Value};
use std::sync::Arc;

fn node(name: &str, extra: Value) -> Node {
    let mut base = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    });
    merge(&mut base, extra);
    serde_json::from_value(base).expect("node")
}

fn pod(name: &str, extra: Value) -> Pod {
    let mut base = json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    });
    merge(&mut base, extra);
    serde_json::from_value(base).expect("pod")
}

fn requesting(name: &str, cpu: &str, memory: &str) -> Pod {
    pod(
        name,
        json!({"spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}),
    )
}

/// JSON merge (RFC 7386 style) for building fixtures.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

fn snap(nodes: Vec<NodeInfo>) -> Snapshot {
    Snapshot { nodes, ..Snapshot::default() }
}

fn info(node: Node, pods: Vec<Pod>) -> NodeInfo {
    NodeInfo::new(Arc::new(node), pods.into_iter().map(Arc::new).collect())
}

struct Case {
    name: &'static str,
    pod: Pod,
    nodes: Vec<NodeInfo>,
    want: Result<&'static str, &'static str>,
}

#[test]
fn schedule_filters_scores_and_explains() {
    let cases = vec![
        Case {
            name: "fits on the only ready node",
            pod: requesting("p", "500m", "1Gi"),
            nodes: vec![info(node("n1", json!({})), vec![])],
            want: Ok("n1"),
        },
        Case {
            name: "insufficient cpu",
            pod: requesting("p", "3", "1Mi"),
            nodes: vec![info(node("n1", json!({})), vec![])],
            want: Err("0/1 nodes are available: 1 Insufficient cpu."),
        },
        Case {
            name: "insufficient cpu counting pods already placed",
            pod: requesting("p", "1500m", "1Mi"),
            nodes: vec![info(node("n1", json!({})), vec![requesting("a", "1", "1Mi")])],
            want: Err("0/1 nodes are available: 1 Insufficient cpu."),
        },
        Case {
            name: "terminal pods free their resources",
            pod: requesting("p", "1500m", "1Mi"),
            nodes: vec![info(
                node("n1", json!({})),
                vec![pod(
                    "done",
                    json!({"spec": {"containers": [{"name": "c",
                        "resources": {"requests": {"cpu": "1"}}}]},
                        "status": {"phase": "Succeeded"}}),
                )],
            )],
            want: Ok("n1"),
        },
        Case {
            name: "insufficient cpu and memory on one node, sorted",
            pod: requesting("p", "3", "8Gi"),
            nodes: vec![info(node("n1", json!({})), vec![]), info(node("n2", json!({})), vec![])],
            want: Err("0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory."),
        },
        Case {
            name: "too many pods",
            pod: pod("p", json!({})),
            nodes: vec![info(node("n1", json!({"status": {"allocatable": {"pods": "1"}}})), vec![pod("a", json!({}))])],
            want: Err("0/1 nodes are available: 1 Too many pods."),
        },
        Case {
            name: "not ready and cordoned nodes are skipped",
            pod: pod("p", json!({})),
            nodes: vec![
                info(node("n1", json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})), vec![]),
                info(node("n2", json!({"spec": {"unschedulable": true}})), vec![]),
                info(node("n3", json!({})), vec![]),
            ],
            want: Ok("n3"),
        },
        Case {
            name: "mixed reasons are counted and sorted",
            pod: pod("p", json!({"spec": {"nodeSelector": {"disk": "ssd"}}})),
            nodes: vec![
                info(node("n1", json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})), vec![]),
                info(node("n2", json!({"spec": {"unschedulable": true}})), vec![]),
                info(node("n3", json!({})), vec![]),
                info(
                    node(
                        "n4",
                        json!({"spec": {"taints": [
                        {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]}}),
                    ),
                    vec![],
                ),
            ],
            want: Err("0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
                1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, \
                1 node(s) were not ready, 1 node(s) were unschedulable."),
        },
        Case {
            name: "node selector matches labels",
            pod: pod("p", json!({"spec": {"nodeSelector": {"disk": "ssd"}}})),
            nodes: vec![
                info(node("n1", json!({})), vec![]),
                info(node("n2", json!({"metadata": {"labels": {"disk": "ssd"}}})), vec![]),
            ],
            want: Ok("n2"),
        },
        Case {
            name: "NoExecute taint tolerated with Equal",
            pod: pod(
                "p",
                json!({"spec": {"tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoExecute"}]}}),
            ),
            nodes: vec![info(
                node(
                    "n1",
                    json!({"spec": {"taints": [
                    {"key": "dedicated", "value": "db", "effect": "NoExecute"}]}}),
                ),
                vec![],
            )],
            want: Ok("n1"),
        },
        Case {
            name: "Equal toleration with the wrong value does not tolerate",
            pod: pod(
                "p",
                json!({"spec": {"tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "web"}]}}),
            ),
            nodes: vec![info(
                node(
                    "n1",
                    json!({"spec": {"taints": [
                    {"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}),
                ),
                vec![],
            )],
            want: Err("0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}."),
        },
        Case {
            name: "empty key with Exists tolerates everything, even cordon",
            pod: pod("p", json!({"spec": {"tolerations": [{"operator": "Exists"}]}})),
            nodes: vec![info(
                node(
                    "n1",
                    json!({"spec": {"unschedulable": true, "taints": [
                    {"key": "a", "value": "b", "effect": "NoSchedule"}]}}),
                ),
                vec![],
            )],
            want: Ok("n1"),
        },
        Case {
            name: "PreferNoSchedule taints do not filter",
            pod: pod("p", json!({})),
            nodes: vec![info(
                node("n1", json!({"spec": {"taints": [{"key": "a", "effect": "PreferNoSchedule"}]}})),
                vec![],
            )],
            want: Ok("n1"),
        },
        Case {
            name: "least requested node wins",
            pod: requesting("p", "100m", "100Mi"),
            nodes: vec![
                info(node("n1", json!({})), vec![requesting("a", "1", "1Gi")]),
                info(node("n2", json!({})), vec![requesting("b", "100m", "100Mi")]),
            ],
            want: Ok("n2"),
        },
        Case {
            name: "ties break by node name",
            pod: pod("p", json!({})),
            nodes: vec![info(node("n2", json!({})), vec![]), info(node("n1", json!({})), vec![])],
            want: Ok("n1"),
        },
        Case {
            name: "no nodes",
            pod: pod("p", json!({})),
            nodes: vec![],
            want: Err("no nodes available to schedule pods"),
        },
    ];
    for case in cases {
        let got = schedule(&case.pod, &snap(case.nodes)).map_err(|e| e.to_string());
        let want = case.want.map(str::to_string).map_err(str::to_string);
        assert_eq!(got, want, "{}", case.name);
    }
}

#[test]
fn huge_requests_and_capacities_never_overflow() {
    const MAX_CPU: &str = "9223372036854775807m";
    const MAX_MEMORY: &str = "9223372036854775807";
    let huge_node = |name: &str| {
        node(name, json!({"status": {"allocatable": {"cpu": MAX_CPU, "memory": MAX_MEMORY, "pods": MAX_MEMORY}}}))
    };
    let placed = |name: &str| {
        let mut p = requesting(name, MAX_CPU, MAX_MEMORY);
        if let Some(spec) = p.spec.as_mut() {
            spec.node_name = Some("n1".to_string());
        }
        p
    };
    let two_huge = pod(
        "sum",
        json!({"spec": {"containers": [
            {"name": "a", "image": "busybox", "resources": {"requests": {"cpu": MAX_CPU}}},
            {"name": "b", "image": "busybox", "resources": {"requests": {"cpu": MAX_CPU}}}
        ]}}),
    );
    let cases = [
        ("max request on a used node", requesting("p", MAX_CPU, "1"), vec![info(node("n1", json!({})), vec![
            requesting("used", "100m", "1"),
        ])], Err("0/1 nodes are available: 1 Insufficient cpu.")),
        ("max request on a full huge node", requesting("p", MAX_CPU, MAX_MEMORY), vec![info(huge_node("n1"), vec![
            placed("a"),
            placed("b"),
        ])], Err("0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.")),
        ("small pod scores on a huge node", requesting("p", "1", "1"), vec![info(huge_node("n1"), vec![])], Ok("n1")),
        ("requests that overflow when summed", two_huge, vec![info(node("n1", json!({})), vec![])], Err(
            "0/1 nodes are available: 1 pod has invalid resources: its cpu requests add up to more than can be counted.",
        )),
    ];
    for (name, pod, nodes, want) in cases {
        let got = schedule(&pod, &snap(nodes)).map_err(|u| u.to_string());
        assert_eq!(got, want.map(str::to_string).map_err(str::to_string), "{name}");
    }
}
