//! The scheduling decision: filter nodes, score the survivors, pick one.
//!
//! Owns: `schedule(pod, nodes)`, a pure function with no I/O, and the
//! upstream-worded `Unschedulable` message ("0/3 nodes are available: ...").
//! Must not: talk to the API (that is `binder`).

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::resources::{self, Allocatable, Resources};

/// Taint the scheduler treats like `spec.unschedulable`.
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// A node and the pods already placed on it (bound or assumed).
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node object.
    pub node: Arc<Node>,
    /// Pods bound (or assumed bound) to the node; terminal pods are ignored.
    pub pods: Vec<Arc<Pod>>,
}

/// Why a pod fits on no node: per-reason node counts, upstream wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    /// Number of nodes considered.
    pub nodes: usize,
    /// Reason -> number of nodes that failed for that reason.
    pub reasons: BTreeMap<String, usize>,
}

impl fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nodes == 0 {
            return write!(f, "no nodes available to schedule pods");
        }
        let mut parts: Vec<String> = self.reasons.iter().map(|(reason, count)| format!("{count} {reason}")).collect();
        parts.sort();
        write!(f, "0/{} nodes are available: {}.", self.nodes, parts.join(", "))
    }
}

/// Picks a node for `pod`, or explains why none fits.
pub fn schedule(pod: &Pod, nodes: &[NodeInfo]) -> Result<String, Unschedulable> {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(i64, &str)> = None;
    for info in nodes {
        match filter(pod, info) {
            Ok(score) => {
                let name = info.node.metadata.name.as_deref().unwrap_or_default();
                let better = match best {
                    None => true,
                    Some((best_score, best_name)) => score > best_score || (score == best_score && name < best_name),
                };
                if better {
                    best = Some((score, name));
                }
            }
            Err(failures) => {
                for reason in failures {
                    *reasons.entry(reason).or_default() += 1;
                }
            }
        }
    }
    match best {
        Some((_, name)) => Ok(name.to_string()),
        None => Err(Unschedulable { nodes: nodes.len(), reasons }),
    }
}

/// Runs every filter against one node; on success returns the node's score.
fn filter(pod: &Pod, info: &NodeInfo) -> Result<i64, Vec<String>> {
    let node = &info.node;
    if !is_ready(node) {
        return Err(vec!["node(s) were not ready".to_string()]);
    }
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable).unwrap_or(false) {
        let taint =
            Taint { key: UNSCHEDULABLE_TAINT.to_string(), effect: "NoSchedule".to_string(), ..Taint::default() };
        if !tolerated(&taint, tolerations) {
            return Err(vec!["node(s) were unschedulable".to_string()]);
        }
    }
    for taint in spec.and_then(|s| s.taints.as_deref()).unwrap_or_default() {
        let blocking = matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute");
        if blocking && !tolerated(taint, tolerations) {
            return Err(vec![format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or_default()
            )]);
        }
    }
    if !selector_matches(pod, node) {
        return Err(vec!["node(s) didn't match Pod's node affinity/selector".to_string()]);
    }
    fit_and_score(pod, info)
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// Upstream `Toleration.ToleratesTaint`.
pub fn tolerated(taint: &Taint, tolerations: &[Toleration]) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t.effect.as_deref().is_none_or(|e| e.is_empty() || e == taint.effect);
        let key = t.key.as_deref().unwrap_or_default();
        let operator = t.operator.as_deref().unwrap_or("Equal");
        let key_ok = if key.is_empty() { operator == "Exists" } else { key == taint.key };
        let value_ok = match operator {
            "Exists" => true,
            "Equal" | "" => t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default(),
            _ => false,
        };
        effect_ok && key_ok && value_ok
    })
}

fn selector_matches(pod: &Pod, node: &Node) -> bool {
    let Some(selector) = pod.spec.as_ref().and_then(|s| s.node_selector.as_ref()) else {
        return true;
    };
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Resource fit filter plus the least-requested score (0..=100). Usage of
/// placed pods saturates (a node cannot be fuller than full); the new pod's
/// request is added with a check, so nothing overflows.
fn fit_and_score(pod: &Pod, info: &NodeInfo) -> Result<i64, Vec<String>> {
    let alloc: Allocatable =
        resources::node_allocatable(&info.node).map_err(|e| vec![format!("node(s) had invalid resources: {e}")])?;
    let request = resources::pod_requests(pod).map_err(|e| vec![format!("pod has invalid resources: {e}")])?;
    let mut used = Resources::default();
    let mut used_for_score = Resources::default();
    let mut count: i64 = 0;
    for other in info.pods.iter().filter(|p| !resources::is_terminal(p)) {
        // A placed pod with unparsable requests counts as zero, as it already
        // passed validation once; it must not block the whole node.
        let r = resources::pod_requests(other).unwrap_or_default();
        used = used.saturating_plus(r);
        used_for_score = used_for_score.saturating_plus(r.non_zero());
        count = count.saturating_add(1);
    }
    let mut failures = Vec::new();
    if count.saturating_add(1) > alloc.pods {
        failures.push("Too many pods".to_string());
    }
    let exceeds = |used: i64, request: i64, total: i64| used.checked_add(request).is_none_or(|sum| sum > total);
    if request.milli_cpu > 0 && exceeds(used.milli_cpu, request.milli_cpu, alloc.resources.milli_cpu) {
        failures.push("Insufficient cpu".to_string());
    }
    if request.memory > 0 && exceeds(used.memory, request.memory, alloc.resources.memory) {
        failures.push("Insufficient memory".to_string());
    }
    if !failures.is_empty() {
        return Err(failures);
    }
    let after = used_for_score.saturating_plus(request.non_zero());
    Ok((free_share(after.milli_cpu, alloc.resources.milli_cpu) + free_share(after.memory, alloc.resources.memory)) / 2)
}

/// Percent of `total` left free after `used` (0..=100), in i128 so huge
/// allocatable values cannot overflow the multiplication.
fn free_share(used: i64, total: i64) -> i64 {
    if total <= 0 || used > total {
        return 0;
    }
    let share = (i128::from(total) - i128::from(used)) * 100 / i128::from(total);
    i64::try_from(share).unwrap_or(0)
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
