use super::*;
use crate::controllers::daemonset::pods::{daemon_pod, REVISION_LABEL};
use serde_json::{json, Value};

type Pods = Vec<Arc<Pod>>;
type Names = Vec<&'static str>;
type Nodes = Vec<Arc<Node>>;
/// (daemonset, nodes, pods, nodes to create on, pods to delete)
type PlacementCase = (DaemonSet, Nodes, Pods, Names, Names);

const NEW: &str = "new";
const OLD: &str = "old";

fn ds(extra: Value) -> DaemonSet {
    let mut v = json!({"metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid", "generation": 2},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    merge(&mut v, extra);
    serde_json::from_value(v).expect("daemonset")
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn node(name: &str, extra: Value) -> Arc<Node> {
    let mut v = json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    merge(&mut v, extra);
    Arc::new(serde_json::from_value(v).expect("node"))
}

/// A daemon pod named `name` on `node` made from template `rev`, ready or not.
fn pod(name: &str, node: &str, rev: &str, ready: bool) -> Arc<Pod> {
    let mut p = daemon_pod(&ds(json!({})), node, rev);
    p.metadata.name = Some(name.into());
    p.metadata.uid = Some(format!("uid-{name}"));
    let mut v = serde_json::to_value(&p).expect("pod");
    let status = if ready { "True" } else { "False" };
    merge(
        &mut v,
        json!({"spec": {"nodeName": node}, "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": status}]}}),
    );
    Arc::new(serde_json::from_value(v).expect("pod"))
}

fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
    let mut out: Vec<&str> = pods.iter().filter_map(|p| p.metadata.name.as_deref()).collect();
    out.sort_unstable();
    out
}

fn now() -> jiff::Timestamp {
    "2026-01-01T00:10:00Z".parse().expect("time")
}

#[test]
fn places_one_pod_per_eligible_node() {
    let tainted = json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}});
    let cordoned = json!({"spec": {"unschedulable": true}});
    let not_ready_taint = json!({"spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]}});
    let ssd = json!({"metadata": {"labels": {"disk": "ssd"}}});
    // (daemonset, nodes, existing pods, nodes to create on, pods to delete)
    let cases: Vec<PlacementCase> = vec![
        (ds(json!({})), vec![node("a", json!({})), node("b", json!({}))], vec![], vec!["a", "b"], vec![]),
        (ds(json!({})), vec![node("a", json!({}))], vec![pod("p", "a", NEW, true)], vec![], vec![]),
        // Untolerated NoSchedule taint: not eligible; automatic tolerations cover cordons and not-ready.
        (
            ds(json!({})),
            vec![node("a", tainted.clone()), node("b", cordoned), node("c", not_ready_taint)],
            vec![],
            vec!["b", "c"],
            vec![],
        ),
        // A toleration in the template makes the tainted node eligible.
        (
            ds(json!({"spec": {"template": {"spec": {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}}}})),
            vec![node("a", tainted)],
            vec![],
            vec!["a"],
            vec![],
        ),
        // nodeSelector: only the matching node; a pod on a node that no longer matches goes.
        (
            ds(json!({"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}})),
            vec![node("a", ssd), node("b", json!({}))],
            vec![pod("on-b", "b", NEW, true)],
            vec!["a"],
            vec!["on-b"],
        ),
        // Duplicates keep one; failed pods and pods on vanished nodes go.
        (
            ds(json!({})),
            vec![node("a", json!({}))],
            vec![pod("a1", "a", NEW, true), pod("a2", "a", NEW, true), pod("gone", "zz", NEW, true)],
            vec![],
            vec!["a2", "gone"],
        ),
    ];
    for (i, (ds, nodes, pods, create, delete)) in cases.into_iter().enumerate() {
        let plan = plan(&ds, &nodes, &pods, NEW, now());
        assert_eq!(plan.create, create, "case {i}");
        assert_eq!(names(&plan.delete), delete, "case {i}");
    }
}

#[test]
fn failed_pod_is_replaced() {
    let mut failed = (*pod("a1", "a", NEW, false)).clone();
    failed.status.as_mut().expect("status").phase = Some("Failed".into());
    let plan = plan(&ds(json!({})), &[node("a", json!({}))], &[Arc::new(failed)], NEW, now());
    assert_eq!(names(&plan.delete), ["a1"]);
    assert_eq!(plan.create, ["a"]);
}

#[test]
fn rolling_update_respects_max_unavailable_and_max_surge() {
    let nodes: Vec<Arc<Node>> = ["a", "b", "c"].iter().map(|n| node(n, json!({}))).collect();
    let ru = |v: Value| ds(json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": v}}}));
    let on_delete = ds(json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}));
    let old_all = vec![pod("a", "a", OLD, true), pod("b", "b", OLD, true), pod("c", "c", OLD, true)];
    // (daemonset, pods, create, delete)
    let cases: Vec<(DaemonSet, Pods, Names, Names)> = vec![
        // maxUnavailable 1: one old pod at a time.
        (ru(json!({"maxUnavailable": 1, "maxSurge": 0})), old_all.clone(), vec![], vec!["a"]),
        // An unavailable old pod goes for free, beside the one the budget allows.
        (
            ru(json!({"maxUnavailable": 1, "maxSurge": 0})),
            vec![pod("a", "a", OLD, false), pod("b", "b", OLD, true), pod("c", "c", OLD, true)],
            vec![],
            vec!["a"],
        ),
        // Node a is replacing (new pod not ready): budget used up.
        (
            ru(json!({"maxUnavailable": 1, "maxSurge": 0})),
            vec![pod("a2", "a", NEW, false), pod("b", "b", OLD, true), pod("c", "c", OLD, true)],
            vec![],
            vec![],
        ),
        // 100%: every old pod at once.
        (ru(json!({"maxUnavailable": "100%", "maxSurge": 0})), old_all.clone(), vec![], vec!["a", "b", "c"]),
        // 34% of 3 rounds up to 2.
        (ru(json!({"maxUnavailable": "34%", "maxSurge": 0})), old_all.clone(), vec![], vec!["a", "b"]),
        // maxSurge 1: start a new pod beside the old one first.
        (ru(json!({"maxUnavailable": 0, "maxSurge": 1})), old_all.clone(), vec!["a"], vec![]),
        // ... then delete the old one once the new one is available, and surge on the next node.
        (
            ru(json!({"maxUnavailable": 0, "maxSurge": 1})),
            vec![
                pod("a", "a", OLD, true),
                pod("a2", "a", NEW, true),
                pod("b", "b", OLD, true),
                pod("c", "c", OLD, true),
            ],
            vec!["b"],
            vec!["a"],
        ),
        // OnDelete: nothing rolls.
        (on_delete, old_all, vec![], vec![]),
    ];
    for (i, (ds, pods, create, delete)) in cases.into_iter().enumerate() {
        let plan = plan(&ds, &nodes, &pods, NEW, now());
        assert_eq!(plan.create, create, "case {i}");
        assert_eq!(names(&plan.delete), delete, "case {i}");
    }
}

#[test]
fn status_counts_nodes() {
    let nodes: Vec<Arc<Node>> = ["a", "b", "c"].iter().map(|n| node(n, json!({}))).collect();
    let pods = vec![pod("a", "a", NEW, true), pod("b", "b", OLD, false)];
    let status = plan(&ds(json!({})), &nodes, &pods, NEW, now()).status;
    assert_eq!(status.desired_number_scheduled, 3);
    assert_eq!(status.current_number_scheduled, 2);
    assert_eq!(status.number_ready, 1);
    assert_eq!(status.number_available, Some(1));
    assert_eq!(status.updated_number_scheduled, Some(1));
    assert_eq!(status.number_unavailable, Some(2));
    assert_eq!(status.number_misscheduled, 0);
    assert_eq!(status.observed_generation, Some(2));
}

#[test]
fn daemon_pod_is_pinned_and_tolerates_node_conditions() {
    let pod = daemon_pod(&ds(json!({})), "n1", "h1");
    assert_eq!(node_of(&pod), Some("n1"));
    assert_eq!(pod.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL)).map(String::as_str), Some("h1"));
    let tolerations: Vec<(String, String)> = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.effect.unwrap_or_default()))
        .collect();
    for key in ["not-ready", "unreachable"] {
        assert!(tolerations.contains(&(format!("node.kubernetes.io/{key}"), "NoExecute".into())), "{key}");
    }
    for key in ["disk-pressure", "memory-pressure", "pid-pressure", "unschedulable"] {
        assert!(tolerations.contains(&(format!("node.kubernetes.io/{key}"), "NoSchedule".into())), "{key}");
    }
    let owner = &pod.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("DaemonSet", Some(true)));
    // The scheduler's own filter accepts exactly that node.
    let pinned = node("n1", json!({}));
    let other = node("n2", json!({}));
    assert!(crate::scheduler::plugins::node_affinity::matches_required(&pod, &pinned));
    assert!(!crate::scheduler::plugins::node_affinity::matches_required(&pod, &other));
}

#[test]
fn scaled_values_are_bounded() {
    assert_eq!(scaled(Some(&IntOrString::String("34%".into())), 3), 2);
    assert_eq!(scaled(Some(&IntOrString::String("999%".into())), 3), 3);
    assert_eq!(scaled(Some(&IntOrString::String("x%".into())), 3), 0);
    assert_eq!(scaled(Some(&IntOrString::Int(-4)), 3), 0);
    assert_eq!(scaled(Some(&IntOrString::String("100%".into())), usize::MAX), usize::MAX);
}
