//! The scheduler's view of the cluster: nodes with their pods, including pods
//! it has bound but whose binding the watch has not delivered yet.
//!
//! Owns: the assumed-binding cache (so two pods created together do not both
//! see the same free capacity) and building `NodeInfo`s from informer state.
//! Pure data; no I/O.

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::decision::{NodeInfo, Snapshot};
use super::plugins::{priority, Labels};

/// How long an assumed binding is trusted without the watch confirming it.
pub const ASSUME_TTL: Duration = Duration::from_secs(30);

/// Scheduler name a pod must carry (or leave unset) for us to place it.
pub const SCHEDULER_NAME: &str = "default-scheduler";

struct Assumed {
    /// The pod as bound (its `spec.nodeName` set).
    pod: Arc<Pod>,
    at: Instant,
}

/// Pods bound by us, keyed by uid, until the watch shows them bound.
#[derive(Default)]
pub struct AssumedCache {
    entries: HashMap<String, Assumed>,
}

impl AssumedCache {
    /// Records that `pod` was bound to `node` at `now`.
    pub fn assume(&mut self, pod: &Pod, node: &str, now: Instant) -> Arc<Pod> {
        let mut bound = pod.clone();
        if let Some(spec) = bound.spec.as_mut() {
            spec.node_name = Some(node.to_string());
        }
        let bound = Arc::new(bound);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.entries.insert(uid, Assumed { pod: bound.clone(), at: now });
        bound
    }

    /// Drops entries the watch has confirmed (pod bound or gone) or that
    /// expired. `current` finds the informer's copy of an assumed pod.
    pub fn prune(&mut self, current: impl Fn(&Pod) -> Option<Arc<Pod>>, now: Instant) {
        self.entries.retain(|uid, assumed| {
            let unbound = current(&assumed.pod)
                .is_some_and(|p| node_name(&p).is_none() && p.metadata.uid.as_deref() == Some(uid.as_str()));
            unbound && now.duration_since(assumed.at) < ASSUME_TTL
        });
    }

    /// Drops the assumption for `uid` (its binding failed).
    pub fn forget(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    /// True if the pod with `uid` was bound by us and the watch has not
    /// shown it yet: it is not pending, whatever the informer still says.
    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    /// Number of assumed bindings (for logs and tests).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is assumed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The node a pod is bound to, if any.
pub fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
}

/// True for pods this scheduler must place: ours, unbound, alive.
pub fn needs_scheduling(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let ours = spec.scheduler_name.as_deref().is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME);
    // A pod with scheduling gates waits until every gate is removed.
    let gated = spec.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    ours && !gated
        && node_name(pod).is_none()
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Builds one `NodeInfo` per node (sorted by name) from the informer's pods
/// plus the assumed bindings.
pub fn node_infos(nodes: &[Arc<Node>], pods: &[Arc<Pod>], assumed: &AssumedCache) -> Vec<NodeInfo> {
    let mut by_node: BTreeMap<&str, NodeInfo> = nodes
        .iter()
        .map(|n| {
            let name = n.metadata.name.as_deref().unwrap_or_default();
            (name, NodeInfo::new(n.clone(), Vec::new()))
        })
        .collect();
    let bound = pods.iter().filter_map(|p| node_name(p).map(|n| (n, p)));
    let assumed = assumed.entries.values().filter_map(|a| node_name(&a.pod).map(|n| (n, &a.pod)));
    for (node, pod) in bound.chain(assumed) {
        if let Some(info) = by_node.get_mut(node) {
            info.add_pod(pod.clone());
        }
    }
    by_node.into_values().collect()
}

/// Unbound pods of ours, most important first (upstream's active queue:
/// higher priority, then older, then by namespace/name).
pub fn pending_pods(pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    let mut pending: Vec<Arc<Pod>> = pods.iter().filter(|p| needs_scheduling(p)).cloned().collect();
    pending.sort_by(|a, b| {
        let key = |p: &Pod| {
            (
                std::cmp::Reverse(priority(p)),
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.metadata.namespace.clone(),
                p.metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    pending
}

/// Labels of every namespace, by name.
pub fn namespace_labels(namespaces: &[Arc<Namespace>]) -> HashMap<String, Labels> {
    namespaces
        .iter()
        .map(|n| (n.metadata.name.clone().unwrap_or_default(), n.metadata.labels.clone().unwrap_or_default()))
        .collect()
}

/// The node preemption nominated the pod to, if any.
pub fn nominated_node(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.nominated_node_name.as_deref()).filter(|n| !n.is_empty())
}

/// `snapshot` with the pending pods nominated to a node counted on it, when
/// they are at least as important as `pod` (upstream's nominated-pods
/// accounting: the room preemption freed is theirs). `None` when none apply.
pub fn with_nominated(snapshot: &Snapshot, nominated: &[Arc<Pod>], pod: &Pod) -> Option<Snapshot> {
    let own = priority(pod);
    let mut applicable =
        nominated.iter().filter(|n| priority(n) >= own && n.metadata.uid != pod.metadata.uid).peekable();
    applicable.peek()?;
    let mut view = snapshot.clone();
    for other in applicable {
        if let Some(info) = view.nodes.iter_mut().find(|i| Some(i.name()) == nominated_node(other)) {
            info.add_pod(other.clone());
        }
    }
    Some(view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, uid: &str, spec: serde_json::Value) -> Arc<Pod> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name, "uid": uid}, "spec": spec})).expect("pod"))
    }

    fn node(name: &str) -> Arc<Node> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name}})).expect("node"))
    }

    #[test]
    fn assumed_pods_count_until_the_watch_confirms_them() {
        let now = Instant::now();
        let unbound = pod("a", "u1", json!({"containers": []}));
        let mut cache = AssumedCache::default();
        cache.assume(&unbound, "n1", now);
        assert!(cache.contains("u1"));
        let infos = node_infos(&[node("n1"), node("n2")], std::slice::from_ref(&unbound), &cache);
        assert_eq!(infos[0].pods().len(), 1);
        assert!(infos[1].pods().is_empty());

        let confirmed = pod("a", "u1", json!({"containers": [], "nodeName": "n1"}));
        cache.prune(|_| Some(confirmed.clone()), now);
        assert!(cache.is_empty());
        let infos = node_infos(&[node("n1")], &[confirmed], &cache);
        assert_eq!(infos[0].pods().len(), 1, "counted once, from the store");
    }

    #[test]
    fn a_failed_binding_is_forgotten_so_the_pod_is_pending_again() {
        let now = Instant::now();
        let unbound = pod("a", "u1", json!({"containers": []}));
        let mut cache = AssumedCache::default();
        cache.assume(&unbound, "n1", now);
        cache.forget("u1");
        assert!(!cache.contains("u1"));
        let infos = node_infos(&[node("n1")], std::slice::from_ref(&unbound), &cache);
        assert!(infos[0].pods().is_empty(), "no room held for it");
    }

    #[test]
    fn assumed_pods_expire_and_vanish_with_their_pod() {
        let now = Instant::now();
        let unbound = pod("a", "u1", json!({"containers": []}));
        let mut cache = AssumedCache::default();
        cache.assume(&unbound, "n1", now);
        cache.prune(|_| Some(unbound.clone()), now);
        assert_eq!(cache.len(), 1, "still unbound, still assumed");
        cache.prune(|_| Some(unbound.clone()), now + ASSUME_TTL);
        assert!(cache.is_empty(), "expired");
        cache.assume(&unbound, "n1", now);
        cache.prune(|_| None, now);
        assert!(cache.is_empty(), "pod deleted");
        cache.assume(&unbound, "n1", now);
        cache.prune(|_| Some(pod("a", "u2", json!({"containers": []}))), now);
        assert!(cache.is_empty(), "a new pod of the same name");
    }

    #[test]
    fn pending_pods_by_priority_then_age() {
        let p = |name: &str, priority: i32, created: &str| {
            Arc::new(
                serde_json::from_value::<Pod>(json!({"metadata": {"name": name, "creationTimestamp": created},
                "spec": {"containers": [], "priority": priority}}))
                .expect("pod"),
            )
        };
        let pods = [
            p("old-low", 0, "2026-01-01T00:00:00Z"),
            p("new-high", 10, "2026-01-02T00:00:00Z"),
            p("old-high", 10, "2026-01-01T00:00:00Z"),
            p("new-low", 0, "2026-01-02T00:00:00Z"),
        ];
        let order: Vec<String> =
            pending_pods(&pods).iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect();
        assert_eq!(order, ["old-high", "new-high", "old-low", "new-low"]);
    }

    #[test]
    fn nominated_pods_hold_room_for_less_important_pods_only() {
        let nominated = Arc::new(
            serde_json::from_value::<Pod>(json!({"metadata": {"name": "n", "uid": "n"},
            "spec": {"containers": [], "priority": 10}, "status": {"nominatedNodeName": "n1"}}))
            .expect("pod"),
        );
        let snapshot =
            Snapshot { nodes: node_infos(&[node("n1")], &[], &AssumedCache::default()), ..Snapshot::default() };
        let low = pod("low", "low", json!({"containers": [], "priority": 5}));
        let view = with_nominated(&snapshot, std::slice::from_ref(&nominated), &low).expect("applies");
        assert_eq!(view.nodes[0].pods().len(), 1);
        let high = pod("high", "high", json!({"containers": [], "priority": 20}));
        assert!(with_nominated(&snapshot, std::slice::from_ref(&nominated), &high).is_none());
        assert!(with_nominated(&snapshot, std::slice::from_ref(&nominated), &nominated).is_none(), "not itself");
    }

    #[test]
    fn only_our_unbound_live_pods_need_scheduling() {
        let cases = [
            (json!({"spec": {"containers": []}}), true),
            (json!({"spec": {"containers": [], "schedulerName": "default-scheduler"}}), true),
            (json!({"spec": {"containers": [], "schedulerName": "other"}}), false),
            (json!({"spec": {"containers": [], "schedulingGates": [{"name": "wait"}]}}), false),
            (json!({"spec": {"containers": [], "schedulingGates": []}}), true),
            (json!({"spec": {"containers": [], "nodeName": "n1"}}), false),
            (
                json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"},
                       "spec": {"containers": []}}),
                false,
            ),
            (json!({"spec": {"containers": []}, "status": {"phase": "Failed"}}), false),
        ];
        for (value, want) in cases {
            let pod: Pod = serde_json::from_value(value.clone()).expect("pod");
            assert_eq!(needs_scheduling(&pod), want, "{value}");
        }
    }
}
