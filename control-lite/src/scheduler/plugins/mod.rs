//! The scheduling plugins of kube-scheduler's default profile, each a pure
//! filter and/or score over one node.
//!
//! Owns: the per-plugin rules ([`node_affinity`], [`taints`], [`fit`],
//! [`inter_pod`], [`spread`]) and the shared vocabulary: [`Snapshot`] (the
//! cluster as one decision sees it), [`Rejection`] (why a node fails and
//! whether evicting pods could help), and the score normalisation.
//! Must not: do I/O or keep state between decisions.

pub mod fit;
pub mod inter_pod;
pub mod node_affinity;
pub mod spread;
pub mod taints;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::resources::Allocatable;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Highest score a plugin gives a node after normalisation (upstream `MaxNodeScore`).
pub const MAX_SCORE: i64 = 100;

/// Labels of an object (empty if none).
pub type Labels = BTreeMap<String, String>;

/// A node and the pods already placed on it (bound or assumed), with the
/// node's allocatable and its live pods' requests summed once, as pods are
/// added: a decision then costs O(nodes), not O(placed pods), and does not
/// re-parse every placed pod's quantities for every new pod.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    node: Arc<Node>,
    /// Pods bound (or assumed bound) to the node; terminal pods are ignored.
    pods: Vec<Arc<Pod>>,
    allocatable: Result<Allocatable, String>,
    used: fit::Used,
    /// Live pods with pod (anti-)affinity terms (indexes into `pods`).
    with_affinity: Vec<usize>,
}

impl NodeInfo {
    /// `node` with `pods` placed on it.
    pub fn new(node: Arc<Node>, pods: Vec<Arc<Pod>>) -> Self {
        let allocatable = super::resources::node_allocatable(&node).map_err(|e| e.to_string());
        let mut info = NodeInfo {
            node,
            pods: Vec::with_capacity(pods.len()),
            allocatable,
            used: fit::Used::default(),
            with_affinity: Vec::new(),
        };
        for pod in pods {
            info.add_pod(pod);
        }
        info
    }

    /// Counts `pod` as placed on the node.
    pub fn add_pod(&mut self, pod: Arc<Pod>) {
        if !super::resources::is_terminal(&pod) {
            self.used.add(&pod);
            if inter_pod::has_affinity(&pod) {
                self.with_affinity.push(self.pods.len());
            }
        }
        self.pods.push(pod);
    }

    /// The node object.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Every pod placed on the node, terminal ones included.
    pub fn pods(&self) -> &[Arc<Pod>] {
        &self.pods
    }

    /// The node's allocatable, or why it cannot be read.
    pub fn allocatable(&self) -> Result<&Allocatable, &str> {
        self.allocatable.as_ref().map_err(String::as_str)
    }

    /// What the live pods request.
    pub fn used(&self) -> &fit::Used {
        &self.used
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or_default()
    }

    /// The node's label `key`, if set.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.node.metadata.labels.as_ref().and_then(|l| l.get(key)).map(String::as_str)
    }

    /// Pods that still hold the node's resources (not Succeeded or Failed).
    pub fn live_pods(&self) -> impl Iterator<Item = &Arc<Pod>> {
        self.pods.iter().filter(|p| !super::resources::is_terminal(p))
    }

    /// The live pods that carry pod affinity or anti-affinity terms.
    pub fn live_pods_with_affinity(&self) -> impl Iterator<Item = &Arc<Pod>> {
        self.with_affinity.iter().filter_map(|&i| self.pods.get(i))
    }
}

/// The cluster as one scheduling decision sees it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every node with its pods, sorted by name.
    pub nodes: Vec<NodeInfo>,
    /// Labels of each namespace (for pod affinity's `namespaceSelector`).
    pub namespaces: HashMap<String, Labels>,
}

/// Why one node cannot take the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Upstream-worded reasons ("Insufficient cpu").
    pub reasons: Vec<String>,
    /// True if removing pods from the node could make it fit (upstream
    /// `Unschedulable`, as opposed to `UnschedulableAndUnresolvable`).
    pub resolvable: bool,
}

impl Rejection {
    /// A failure no preemption can fix (labels, taints, readiness).
    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Rejection { reasons: vec![reason.into()], resolvable: false }
    }

    /// A failure that evicting pods from the node may fix.
    pub fn resolvable(reason: impl Into<String>) -> Self {
        Rejection { reasons: vec![reason.into()], resolvable: true }
    }
}

/// The pod's labels.
pub fn pod_labels(pod: &Pod) -> &Labels {
    static EMPTY: Labels = BTreeMap::new();
    pod.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

/// The pod's namespace ("" if unset).
pub fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or_default()
}

/// The pod's priority (`spec.priority`, 0 when unset), as upstream's `PodPriority`.
pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// Scales raw scores to `0..=MAX_SCORE`, highest raw score highest
/// (upstream `DefaultNormalizeScore`, reversed when `reverse`). All equal
/// raw scores give every node the same score.
pub fn normalize(raw: &[i64], reverse: bool) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    if max <= 0 {
        let full = if reverse { MAX_SCORE } else { 0 };
        return vec![full; raw.len()];
    }
    raw.iter()
        .map(|&s| {
            let scaled = i128::from(s.max(0)) * i128::from(MAX_SCORE) / i128::from(max);
            let scaled = i64::try_from(scaled).unwrap_or(MAX_SCORE);
            if reverse {
                MAX_SCORE - scaled
            } else {
                scaled
            }
        })
        .collect()
}

/// Scales raw scores that may be negative to `0..=MAX_SCORE` by min-max
/// (upstream inter-pod affinity's normalisation).
pub fn normalize_min_max(raw: &[i64]) -> Vec<i64> {
    let (min, max) = (raw.iter().copied().min().unwrap_or(0), raw.iter().copied().max().unwrap_or(0));
    let span = i128::from(max) - i128::from(min);
    raw.iter()
        .map(|&s| {
            if span == 0 {
                return 0;
            }
            let scaled = (i128::from(s) - i128::from(min)) * i128::from(MAX_SCORE) / span;
            i64::try_from(scaled).unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_scales_to_the_maximum() {
        let cases: Vec<(Vec<i64>, bool, Vec<i64>)> = vec![
            (vec![0, 5, 10], false, vec![0, 50, 100]),
            (vec![0, 5, 10], true, vec![100, 50, 0]),
            (vec![0, 0], false, vec![0, 0]),
            (vec![0, 0], true, vec![100, 100]),
            (vec![i64::MAX, 1], false, vec![100, 0]),
        ];
        for (raw, reverse, want) in cases {
            assert_eq!(normalize(&raw, reverse), want, "{raw:?} reverse={reverse}");
        }
        assert_eq!(normalize_min_max(&[-10, 0, 10]), vec![0, 50, 100]);
        assert_eq!(normalize_min_max(&[3, 3]), vec![0, 0]);
        assert_eq!(normalize_min_max(&[i64::MIN, i64::MAX]), vec![0, 100]);
    }
}
