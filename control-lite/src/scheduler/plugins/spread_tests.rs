//! Table tests of topology spread over many fake nodes.

use super::*;
use serde_json::{json, Value};
use std::sync::Arc;

/// Nodes: n0, n1 in zone a; n2 in zone b; n3 in zone c (tainted);
/// n4 without a zone label. `placed[i]` = number of `app: web` pods on node i.
fn snapshot(placed: [usize; 5]) -> Snapshot {
    let nodes = placed
        .iter()
        .enumerate()
        .map(|(i, &count)| {
            let mut labels = json!({"kubernetes.io/hostname": format!("n{i}")});
            if let Some(zone) = ["a", "a", "b", "c"].get(i) {
                labels["zone"] = json!(zone);
            }
            let taints = if i == 3 { json!([{"key": "gpu", "effect": "NoSchedule"}]) } else { json!([]) };
            let node = serde_json::from_value(
                json!({"metadata": {"name": format!("n{i}"), "labels": labels}, "spec": {"taints": taints}}),
            )
            .expect("node");
            let pods = (0..count).map(|_| Arc::new(pod(json!({}), json!({"app": "web"})))).collect();
            NodeInfo::new(Arc::new(node), pods)
        })
        .collect();
    Snapshot { nodes, ..Snapshot::default() }
}

fn pod(spec: Value, labels: Value) -> Pod {
    let mut spec = spec;
    spec["containers"] = json!([]);
    serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "default", "labels": labels}, "spec": spec}))
        .expect("pod")
}

fn constraint(extra: Value) -> Value {
    let mut c = json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        c[k] = v;
    }
    c
}

fn passing(constraints: Value, spec_extra: Value, placed: [usize; 5]) -> Vec<String> {
    let mut spec = json!({"topologySpreadConstraints": constraints});
    for (k, v) in spec_extra.as_object().cloned().unwrap_or_default() {
        spec[k] = v;
    }
    let p = pod(spec, json!({"app": "web"}));
    let snap = snapshot(placed);
    let state = prepare(&p, &snap);
    snap.nodes.iter().filter(|i| filter(&state, i).is_ok()).map(|i| i.name().to_string()).collect()
}

/// (name, constraints, extra spec, web pods per node, nodes that pass).
type SpreadCase = (&'static str, Value, Value, [usize; 5], Vec<String>);

#[test]
fn do_not_schedule_keeps_skew_within_max() {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases: Vec<SpreadCase> = vec![
        (
            "balanced: any labelled node",
            json!([constraint(json!({}))]),
            json!({}),
            [0, 0, 0, 0, 0],
            names(&["n0", "n1", "n2", "n3"]),
        ),
        (
            "zone a ahead by one: b and c",
            json!([constraint(json!({}))]),
            json!({}),
            [1, 0, 0, 0, 0],
            names(&["n2", "n3"]),
        ),
        (
            "maxSkew 2 allows a again",
            json!([constraint(json!({"maxSkew": 2}))]),
            json!({}),
            [1, 0, 0, 0, 0],
            names(&["n0", "n1", "n2", "n3"]),
        ),
        (
            "nodeTaintsPolicy Honor drops the tainted zone from the domains",
            json!([constraint(json!({"nodeTaintsPolicy": "Honor"}))]),
            json!({}),
            [1, 0, 1, 0, 0],
            names(&["n0", "n1", "n2", "n3"]),
        ),
        (
            "nodeTaintsPolicy Ignore (default) counts the empty tainted zone",
            json!([constraint(json!({}))]),
            json!({}),
            [1, 0, 1, 0, 0],
            names(&["n3"]),
        ),
        (
            "nodeAffinityPolicy Honor (default): zones the pod cannot use do not count",
            json!([constraint(json!({}))]),
            json!({"nodeSelector": {"kubernetes.io/hostname": "n0"}}),
            [1, 0, 0, 0, 0],
            names(&["n0", "n1", "n2", "n3"]),
        ),
        (
            "minDomains above the domain count makes the minimum 0",
            json!([constraint(json!({"minDomains": 5}))]),
            json!({}),
            [1, 0, 1, 1, 0],
            names(&[]),
        ),
        (
            "by hostname",
            json!([constraint(json!({"topologyKey": "kubernetes.io/hostname"}))]),
            json!({}),
            [1, 1, 0, 1, 1],
            names(&["n2"]),
        ),
        (
            "ScheduleAnyway never filters",
            json!([constraint(json!({"whenUnsatisfiable": "ScheduleAnyway"}))]),
            json!({}),
            [5, 0, 0, 0, 0],
            names(&["n0", "n1", "n2", "n3", "n4"]),
        ),
    ];
    for (name, constraints, extra, placed, want) in cases {
        assert_eq!(passing(constraints, extra, placed), want, "{name}");
    }
}

#[test]
fn rejections_and_soft_scores() {
    let p = pod(json!({"topologySpreadConstraints": [constraint(json!({}))]}), json!({"app": "web"}));
    let snap = snapshot([2, 0, 0, 0, 0]);
    let state = prepare(&p, &snap);
    assert_eq!(filter(&state, &snap.nodes[0]), Err(Rejection::resolvable(REASON)));
    assert_eq!(filter(&state, &snap.nodes[4]), Err(Rejection::unresolvable(MISSING_LABEL_REASON)));

    let soft = pod(
        json!({"topologySpreadConstraints": [constraint(json!({"whenUnsatisfiable": "ScheduleAnyway"}))]}),
        json!({"app": "web"}),
    );
    let snap = snapshot([2, 1, 1, 0, 0]);
    let state = prepare(&soft, &snap);
    assert!(scores(&state));
    let raw: Vec<i64> = snap.nodes.iter().map(|i| score(&state, i)).collect();
    assert_eq!(raw, [3, 3, 1, 0, 5], "zone a holds 3; n4 has no zone and scores worst");
}
