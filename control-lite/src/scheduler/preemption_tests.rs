//! Table tests of victim selection over several fake nodes.

use super::*;
use crate::scheduler::decision::schedule;
use serde_json::{json, Value};

fn node(name: &str, cpu: &str) -> Arc<k8s_openapi::api::core::v1::Node> {
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}))
        .expect("node"),
    )
}

fn pod(name: &str, cpu: &str, priority: i32, extra: Value) -> Arc<Pod> {
    let mut v = json!({"metadata": {"name": name, "namespace": "default", "uid": name},
        "spec": {"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}});
    for (k, val) in extra.as_object().cloned().unwrap_or_default() {
        match k.as_str() {
            "metadata" | "status" => v[k] = val,
            _ => v["spec"][k] = val,
        }
    }
    Arc::new(serde_json::from_value(v).expect("pod"))
}

fn snapshot(nodes: Vec<(&str, &str, Vec<Arc<Pod>>)>) -> Snapshot {
    Snapshot {
        nodes: nodes.into_iter().map(|(n, cpu, pods)| NodeInfo::new(node(n, cpu), pods)).collect(),
        ..Snapshot::default()
    }
}

/// The chosen node and victim names, or the message.
fn run(incoming: &Pod, snap: &Snapshot) -> Result<(String, Vec<String>), String> {
    let unschedulable = schedule(incoming, snap).expect_err("must not fit");
    match select(incoming, snap, &unschedulable) {
        Outcome::Preempt(plan) => {
            Ok((plan.node, plan.victims.iter().map(|v| v.metadata.name.clone().unwrap_or_default()).collect()))
        }
        Outcome::NotPossible(message) | Outcome::Ineligible(message) => Err(message),
    }
}

#[test]
fn a_stale_nomination_is_cleared_only_when_no_node_can_be_freed() {
    let nominated = json!({"status": {"nominatedNodeName": "n1"}});
    let full = |victim_priority: i32| snapshot(vec![("n1", "2", vec![pod("a", "2", victim_priority, json!({}))])]);
    let terminating = snapshot(vec![(
        "n1",
        "2",
        vec![pod(
            "a",
            "2",
            0,
            json!({"metadata": {"name": "a", "namespace": "default",
            "deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        )],
    )]);
    // (case, incoming pod, cluster, nomination cleared)
    let cases = [
        (
            "nominated, only more important pods left: stale",
            pod("high", "2", 1000, nominated.clone()),
            full(5000),
            true,
        ),
        ("not nominated: nothing to clear", pod("high", "2", 1000, json!({})), full(5000), false),
        (
            "an earlier preemption still frees the node: kept",
            pod("high", "2", 1000, nominated.clone()),
            terminating,
            false,
        ),
        (
            "preemptionPolicy Never: kept",
            pod("high", "2", 1000, json!({"preemptionPolicy": "Never", "status": {"nominatedNodeName": "n1"}})),
            full(0),
            false,
        ),
        ("preempting again: nominated anew, not cleared", pod("high", "2", 1000, nominated), full(0), false),
    ];
    for (name, incoming, snap, want) in cases {
        let unschedulable = schedule(&incoming, &snap).expect_err("must not fit");
        let outcome = select(&incoming, &snap, &unschedulable);
        assert_eq!(outcome.clears_nomination(&incoming), want, "{name}: {outcome:?}");
    }
}

/// (name, incoming pod, cluster, chosen node and victims or the message).
type PreemptCase = (&'static str, Pod, Snapshot, Result<(String, Vec<String>), String>);

#[test]
fn preemption_picks_the_cheapest_node_and_fewest_victims() {
    let high = pod("high", "2", 1000, json!({}));
    let ok = |node: &str, victims: &[&str]| Ok((node.to_string(), victims.iter().map(|s| s.to_string()).collect()));
    let cases: Vec<PreemptCase> = vec![
        (
            "one victim is enough; the other low pod is reprieved",
            (*high).clone(),
            snapshot(vec![("n1", "3", vec![pod("a", "1", 0, json!({})), pod("b", "1500m", 0, json!({}))])]),
            ok("n1", &["b"]),
        ),
        (
            "the node whose victims have the lowest priority wins",
            (*high).clone(),
            snapshot(vec![
                ("n1", "2", vec![pod("a", "2", 500, json!({}))]),
                ("n2", "2", vec![pod("b", "2", 100, json!({}))]),
                ("n3", "2", vec![pod("c", "2", 900, json!({}))]),
            ]),
            ok("n2", &["b"]),
        ),
        (
            "equal priorities: fewer victims win",
            (*high).clone(),
            snapshot(vec![
                ("n1", "2", vec![pod("a", "1", 0, json!({})), pod("b", "1", 0, json!({}))]),
                ("n2", "2", vec![pod("c", "2", 0, json!({}))]),
            ]),
            ok("n2", &["c"]),
        ),
        (
            "equal or higher priorities are never victims",
            (*high).clone(),
            snapshot(vec![("n1", "2", vec![pod("a", "2", 1000, json!({}))]), ("n2", "2", vec![pod("b", "2", 2000, json!({}))])]),
            Err("preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.".to_string()),
        ),
        (
            "evicting every lower pod is not enough",
            (*high).clone(),
            snapshot(vec![("n1", "2", vec![pod("a", "1", 0, json!({})), pod("b", "1", 2000, json!({}))])]),
            Err("preemption: 0/1 nodes are available: 1 Insufficient cpu.".to_string()),
        ),
        (
            "preemptionPolicy Never",
            (*pod("high", "2", 1000, json!({"preemptionPolicy": "Never"}))).clone(),
            snapshot(vec![("n1", "2", vec![pod("a", "2", 0, json!({}))])]),
            Err("preemption: not eligible due to preemptionPolicy=Never.".to_string()),
        ),
        (
            "unresolvable nodes are not helped",
            (*pod("high", "2", 1000, json!({"nodeSelector": {"kubernetes.io/hostname": "n2"}}))).clone(),
            snapshot(vec![("n1", "2", vec![pod("a", "2", 0, json!({}))]), ("n2", "2", vec![pod("b", "2", 0, json!({}))])]),
            ok("n2", &["b"]),
        ),
        (
            "a terminating victim on the nominated node: wait",
            (*pod("high", "2", 1000, json!({"status": {"nominatedNodeName": "n1"}}))).clone(),
            snapshot(vec![(
                "n1",
                "2",
                vec![pod("a", "2", 0, json!({"metadata": {"name": "a", "namespace": "default",
                    "deletionTimestamp": "2026-01-01T00:00:00Z"}}))],
            )]),
            Err("preemption: not eligible due to a terminating pod on the nominated node.".to_string()),
        ),
        (
            "anti-affinity to a lower-priority pod is resolved by evicting it",
            (*pod("high", "100m", 1000, json!({"metadata": {"name": "high", "namespace": "default", "uid": "high",
                "labels": {"app": "x"}}, "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "y"}}, "topologyKey": "kubernetes.io/hostname"}]}}})))
            .clone(),
            snapshot(vec![(
                "n1",
                "4",
                vec![
                    pod("y", "100m", 0, json!({"metadata": {"name": "y", "namespace": "default", "labels": {"app": "y"}}})),
                    pod("z", "100m", 0, json!({})),
                ],
            )]),
            ok("n1", &["y"]),
        ),
    ];
    for (name, incoming, snap, want) in cases {
        assert_eq!(run(&incoming, &snap), want, "{name}");
    }
}

#[test]
fn many_nodes_one_cheap_victim() {
    let nodes: Vec<(String, Vec<Arc<Pod>>)> = (0..50)
        .map(|i| {
            let priority = if i == 37 { 1 } else { 100 };
            (format!("n{i:02}"), vec![pod(&format!("p{i}"), "2", priority, json!({}))])
        })
        .collect();
    let snap = snapshot(nodes.iter().map(|(n, pods)| (n.as_str(), "2", pods.clone())).collect());
    assert_eq!(run(&pod("high", "1", 1000, json!({})), &snap), Ok(("n37".to_string(), vec!["p37".to_string()])));
}
