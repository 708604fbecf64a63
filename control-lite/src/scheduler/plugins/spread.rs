//! PodTopologySpread: `topologySpreadConstraints` with `maxSkew`,
//! `whenUnsatisfiable` (DoNotSchedule filters, ScheduleAnyway scores),
//! `labelSelector`, `matchLabelKeys`, `minDomains`, `nodeAffinityPolicy`
//! (default Honor) and `nodeTaintsPolicy` (default Ignore), as upstream.
//!
//! Owns: counting matching pods per topology domain over the eligible nodes
//! (`prepare`) and the skew check. Pure.

use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use std::collections::HashMap;

use super::{node_affinity, pod_labels, pod_namespace, taints, NodeInfo, Rejection, Snapshot};
use crate::controllers::selector;

/// The placement would make some constraint's skew exceed `maxSkew`.
pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
/// The node lacks a constraint's topology key.
pub const MISSING_LABEL_REASON: &str = "node(s) didn't match pod topology spread constraints (missing required label)";

struct Constraint {
    max_skew: i64,
    key: String,
    hard: bool,
    /// The pod itself matches the selector (it counts where it lands).
    self_match: bool,
    /// Matching pods per domain value, over eligible nodes.
    counts: HashMap<String, i64>,
    /// The lowest count over all domains (0 with fewer than `minDomains`).
    min: i64,
}

/// What the filter and score need, computed once per pod.
#[derive(Default)]
pub struct State {
    constraints: Vec<Constraint>,
}

fn selector_of(c: &TopologySpreadConstraint, pod: &Pod) -> Option<LabelSelector> {
    let mut selector = c.label_selector.clone()?;
    let labels = pod_labels(pod);
    let extra = c.match_label_keys.iter().flatten().filter_map(|k| {
        labels.get(k).map(|v| LabelSelectorRequirement {
            key: k.clone(),
            operator: "In".to_string(),
            values: Some(vec![v.clone()]),
        })
    });
    let extra: Vec<_> = extra.collect();
    if !extra.is_empty() {
        selector.match_expressions.get_or_insert_with(Vec::new).extend(extra);
    }
    Some(selector)
}

/// Counts matching pods per domain for each of the pod's constraints.
pub fn prepare(pod: &Pod, snapshot: &Snapshot) -> State {
    let spec_constraints = pod.spec.as_ref().and_then(|s| s.topology_spread_constraints.as_deref()).unwrap_or_default();
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
    let keys: Vec<&str> = spec_constraints.iter().map(|c| c.topology_key.as_str()).collect();
    let ns = pod_namespace(pod);
    let constraints = spec_constraints
        .iter()
        .map(|c| {
            // No selector: matches no pod, so only the skew of the pod itself counts.
            let selector = selector_of(c, pod);
            let matches = |p: &Pod| {
                selector.as_ref().is_some_and(|s| pod_namespace(p) == ns && selector::matches(s, pod_labels(p)))
            };
            let honor_affinity = c.node_affinity_policy.as_deref() != Some("Ignore");
            let honor_taints = c.node_taints_policy.as_deref() == Some("Honor");
            let mut counts: HashMap<String, i64> = HashMap::new();
            for info in &snapshot.nodes {
                let eligible = keys.iter().all(|k| info.label(k).is_some())
                    && (!honor_affinity || node_affinity::matches_required(pod, info.node()))
                    && (!honor_taints || taints::untolerated_blocking(info.node(), tolerations).is_none());
                let Some(domain) = info.label(&c.topology_key).filter(|_| eligible) else { continue };
                let here = info.live_pods().filter(|p| p.metadata.deletion_timestamp.is_none() && matches(p)).count();
                let entry = counts.entry(domain.to_string()).or_default();
                *entry = entry.saturating_add(i64::try_from(here).unwrap_or(i64::MAX));
            }
            let min_domains = usize::try_from(c.min_domains.unwrap_or(1).max(1)).unwrap_or(1);
            let hard = c.when_unsatisfiable == "DoNotSchedule";
            let min = if hard && counts.len() < min_domains { 0 } else { counts.values().copied().min().unwrap_or(0) };
            Constraint {
                max_skew: i64::from(c.max_skew.max(1)),
                key: c.topology_key.clone(),
                hard,
                self_match: matches(pod),
                counts,
                min,
            }
        })
        .collect();
    State { constraints }
}

/// The filter over `DoNotSchedule` constraints: the node has every
/// topology key (else unresolvable), and placing the pod keeps each skew
/// (count in the node's domain + the pod - the global minimum) within `maxSkew`.
pub fn filter(state: &State, info: &NodeInfo) -> Result<(), Rejection> {
    for c in state.constraints.iter().filter(|c| c.hard) {
        let Some(domain) = info.label(&c.key) else {
            return Err(Rejection::unresolvable(MISSING_LABEL_REASON));
        };
        let here = c.counts.get(domain).copied().unwrap_or(0);
        let skew = here.saturating_add(i64::from(c.self_match)).saturating_sub(c.min);
        if skew > c.max_skew {
            return Err(Rejection::resolvable(REASON));
        }
    }
    Ok(())
}

/// Raw score over `ScheduleAnyway` constraints: matching pods already in the
/// node's domains (fewer is better; normalised in reverse). A node without a
/// constraint's key scores worse than any node with it.
pub fn score(state: &State, info: &NodeInfo) -> i64 {
    state.constraints.iter().filter(|c| !c.hard).fold(0i64, |sum, c| {
        let here = match info.label(&c.key) {
            Some(domain) => c.counts.get(domain).copied().unwrap_or(0),
            None => c.counts.values().fold(1i64, |a, b| a.saturating_add(*b)),
        };
        sum.saturating_add(here)
    })
}

/// True if the pod has soft constraints (so the score plugin runs).
pub fn scores(state: &State) -> bool {
    state.constraints.iter().any(|c| !c.hard)
}

#[cfg(test)]
#[path = "spread_tests.rs"]
mod tests;
