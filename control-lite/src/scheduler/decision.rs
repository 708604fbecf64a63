//! The scheduling decision: filter nodes, score the survivors, pick one.
//!
//! Owns: `schedule(pod, snapshot)`, a pure function with no I/O that runs the
//! default profile's plugins (`plugins`) in upstream's order, weighs their
//! normalised scores as upstream does, and words `Unschedulable` as upstream
//! ("0/3 nodes are available: ..."). Must not: talk to the API (that is
//! `binder`).

use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;
use std::fmt;

use super::plugins::{fit, inter_pod, node_affinity, normalize, normalize_min_max, spread, taints};
pub use super::plugins::{NodeInfo, Rejection, Snapshot};

/// Upstream default-profile score weights.
const TAINT_WEIGHT: i64 = 3;
const NODE_AFFINITY_WEIGHT: i64 = 2;
const SPREAD_WEIGHT: i64 = 2;
const INTER_POD_WEIGHT: i64 = 2;
const FIT_WEIGHT: i64 = 1;
const BALANCED_WEIGHT: i64 = 1;

/// Why a pod fits on no node: per-reason node counts, upstream wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    /// Number of nodes considered.
    pub nodes: usize,
    /// Reason -> number of nodes that failed for that reason.
    pub reasons: BTreeMap<String, usize>,
    /// Each rejected node's name and rejection (for preemption).
    pub rejections: Vec<(String, Rejection)>,
    /// What preemption found (upstream's post-filter message), if it ran.
    pub post_filter: Option<String>,
}

impl Unschedulable {
    fn from_rejections(nodes: usize, rejections: Vec<(String, Rejection)>) -> Self {
        Unschedulable {
            nodes,
            reasons: count_reasons(rejections.iter().map(|(_, r)| r)),
            rejections,
            post_filter: None,
        }
    }
}

/// Counts nodes per reason.
pub fn count_reasons<'a>(rejections: impl Iterator<Item = &'a Rejection>) -> BTreeMap<String, usize> {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for reason in rejections.flat_map(|r| r.reasons.iter()) {
        *reasons.entry(reason.clone()).or_default() += 1;
    }
    reasons
}

/// `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) ....`, as upstream's FitError.
pub fn nodes_available(nodes: usize, reasons: &BTreeMap<String, usize>) -> String {
    let mut parts: Vec<String> = reasons.iter().map(|(reason, count)| format!("{count} {reason}")).collect();
    parts.sort();
    format!("0/{nodes} nodes are available: {}.", parts.join(", "))
}

impl fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nodes == 0 {
            return write!(f, "no nodes available to schedule pods");
        }
        write!(f, "{}", nodes_available(self.nodes, &self.reasons))?;
        if let Some(post) = &self.post_filter {
            write!(f, " {post}")?;
        }
        Ok(())
    }
}

/// Per-pod state the cluster-wide plugins compute once.
pub struct Prepared {
    fit: fit::Request,
    inter_pod: inter_pod::State,
    spread: spread::State,
}

/// Computes the cluster-wide plugin state for `pod`.
pub fn prepare(pod: &Pod, snapshot: &Snapshot) -> Prepared {
    Prepared {
        fit: fit::Request::of(pod),
        inter_pod: inter_pod::prepare(pod, snapshot),
        spread: spread::prepare(pod, snapshot),
    }
}

/// Every filter against one node, in upstream's order; the first failing
/// plugin decides (as upstream).
pub fn filter_node(pod: &Pod, prepared: &Prepared, info: &NodeInfo) -> Result<(), Rejection> {
    taints::filter(pod, info)?;
    node_affinity::filter(pod, info)?;
    fit::filter(&prepared.fit, info)?;
    spread::filter(&prepared.spread, info)?;
    inter_pod::filter(&prepared.inter_pod, info)
}

/// Picks a node for `pod`, or explains why none fits.
pub fn schedule(pod: &Pod, snapshot: &Snapshot) -> Result<String, Unschedulable> {
    let prepared = prepare(pod, snapshot);
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    let mut rejections = Vec::new();
    for info in &snapshot.nodes {
        match filter_node(pod, &prepared, info) {
            Ok(()) => feasible.push(info),
            Err(rejection) => rejections.push((info.name().to_string(), rejection)),
        }
    }
    if feasible.is_empty() {
        return Err(Unschedulable::from_rejections(snapshot.nodes.len(), rejections));
    }
    let scores = score(pod, &prepared, &feasible);
    let best = feasible
        .iter()
        .zip(&scores)
        .max_by(|(a, sa), (b, sb)| sa.cmp(sb).then_with(|| b.name().cmp(a.name())))
        .map(|(info, _)| info.name().to_string());
    Ok(best.unwrap_or_default())
}

/// Weighted sum of every score plugin, each normalised over `feasible`.
fn score(pod: &Pod, prepared: &Prepared, feasible: &[&NodeInfo]) -> Vec<i64> {
    let raw = |f: &dyn Fn(&NodeInfo) -> i64| feasible.iter().map(|i| f(i)).collect::<Vec<i64>>();
    let mut total = vec![0i64; feasible.len()];
    let mut add = |weight: i64, scores: Vec<i64>| {
        for (t, s) in total.iter_mut().zip(scores) {
            *t = t.saturating_add(weight.saturating_mul(s));
        }
    };
    add(TAINT_WEIGHT, normalize(&raw(&|i| taints::score(pod, i)), true));
    add(NODE_AFFINITY_WEIGHT, normalize(&raw(&|i| node_affinity::score(pod, i)), false));
    if spread::scores(&prepared.spread) {
        add(SPREAD_WEIGHT, normalize(&raw(&|i| spread::score(&prepared.spread, i)), true));
    }
    add(INTER_POD_WEIGHT, normalize_min_max(&raw(&|i| inter_pod::score(&prepared.inter_pod, i))));
    add(FIT_WEIGHT, raw(&|i| fit::least_allocated(&prepared.fit, i)));
    add(BALANCED_WEIGHT, raw(&|i| fit::balanced(&prepared.fit, i)));
    total
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
