//! Preemption (upstream's DefaultPreemption post-filter): when a pod fits
//! nowhere, find the node where evicting the fewest, least important
//! lower-priority pods makes it fit.
//!
//! Owns: `select`, a pure function from the pod, the snapshot and the
//! filter's rejections to a `Plan` (node + victims) or upstream's
//! "preemption: ..." explanation. Must not: delete anything (that is
//! `binder::Binder::preempt`).

use k8s_openapi::api::core::v1::Pod;
use std::cmp::Reverse;
use std::sync::Arc;

use super::decision::{count_reasons, filter_node, nodes_available, prepare, Unschedulable};
use super::plugins::{priority, NodeInfo, Rejection, Snapshot};

/// Upstream's reason for a node where even evicting every lower-priority pod cannot help.
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Upstream's reason for a node without lower-priority pods.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// Evict `victims` from `node`, then nominate the pod there.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The node the pod is nominated to.
    pub node: String,
    /// Pods to evict, most important first.
    pub victims: Vec<Arc<Pod>>,
}

/// What preemption decided.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Evict and nominate.
    Preempt(Plan),
    /// No node can be freed: the message completes the FailedScheduling
    /// one ("preemption: ..."), and a nomination from an earlier
    /// preemption is stale (upstream overrides it with "").
    NotPossible(String),
    /// The pod may not preempt now (`preemptionPolicy: Never`, or an
    /// earlier preemption still freeing its nominated node); its nomination stays.
    Ineligible(String),
}

impl Outcome {
    /// Whether `pod`'s `status.nominatedNodeName` must be cleared after this outcome.
    pub fn clears_nomination(&self, pod: &Pod) -> bool {
        let nominated =
            pod.status.as_ref().and_then(|s| s.nominated_node_name.as_deref()).is_some_and(|n| !n.is_empty());
        nominated && matches!(self, Outcome::NotPossible(_))
    }
}

/// Chooses victims for `pod`, which `unschedulable` says fits nowhere.
pub fn select(pod: &Pod, snapshot: &Snapshot, unschedulable: &Unschedulable) -> Outcome {
    if let Some(message) = ineligible(pod, snapshot) {
        return Outcome::Ineligible(format!("preemption: {message}"));
    }
    let mut statuses: Vec<Rejection> = Vec::new();
    let mut best: Option<(Rank, Plan)> = None;
    for (node, rejection) in &unschedulable.rejections {
        if !rejection.resolvable {
            statuses.push(Rejection::unresolvable(NOT_HELPFUL));
            continue;
        }
        let Some(index) = snapshot.nodes.iter().position(|i| i.name() == node.as_str()) else { continue };
        match victims_on(pod, snapshot, index) {
            Ok(victims) => {
                let rank = Rank::of(&victims, node);
                if best.as_ref().is_none_or(|(b, _)| rank < *b) {
                    best = Some((rank, Plan { node: node.clone(), victims }));
                }
            }
            Err(rejection) => statuses.push(rejection),
        }
    }
    match best {
        Some((_, plan)) => Outcome::Preempt(plan),
        None => Outcome::NotPossible(format!(
            "preemption: {}",
            nodes_available(unschedulable.nodes, &count_reasons(statuses.iter()))
        )),
    }
}

/// Upstream `PodEligibleToPreemptOthers`: `preemptionPolicy: Never`, or a
/// lower-priority pod still terminating on the node the pod is nominated to
/// (an earlier preemption is still freeing room).
fn ineligible(pod: &Pod, snapshot: &Snapshot) -> Option<&'static str> {
    if pod.spec.as_ref().and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Some("not eligible due to preemptionPolicy=Never.");
    }
    let nominated = pod.status.as_ref().and_then(|s| s.nominated_node_name.as_deref()).filter(|n| !n.is_empty())?;
    let own = priority(pod);
    let info = snapshot.nodes.iter().find(|i| i.name() == nominated)?;
    info.live_pods()
        .any(|p| p.metadata.deletion_timestamp.is_some() && priority(p) < own)
        .then_some("not eligible due to a terminating pod on the nominated node.")
}

/// The fewest, least important victims on node `index`: remove every
/// lower-priority pod; if the pod fits, give back as many as possible, most
/// important first (upstream `selectVictimsOnNode`).
fn victims_on(pod: &Pod, snapshot: &Snapshot, index: usize) -> Result<Vec<Arc<Pod>>, Rejection> {
    let own = priority(pod);
    let info = &snapshot.nodes[index];
    let (mut candidates, kept): (Vec<Arc<Pod>>, Vec<Arc<Pod>>) =
        info.pods().iter().cloned().partition(|p| priority(p) < own && !super::resources::is_terminal(p));
    if candidates.is_empty() {
        return Err(Rejection::unresolvable(NO_VICTIMS));
    }
    let fits = |pods: Vec<Arc<Pod>>| -> Result<(), Rejection> {
        let mut trial = snapshot.clone();
        trial.nodes[index] = NodeInfo::new(info.node().clone(), pods);
        let prepared = prepare(pod, &trial);
        filter_node(pod, &prepared, &trial.nodes[index])
    };
    fits(kept.clone())?;
    // Most important first: higher priority, then the longer running.
    candidates.sort_by_key(|p| (Reverse(priority(p)), start_time(p)));
    let mut staying = kept;
    let mut victims = Vec::new();
    for candidate in candidates {
        staying.push(candidate.clone());
        if fits(staying.clone()).is_err() {
            staying.pop();
            victims.push(candidate);
        }
    }
    Ok(victims)
}

fn start_time(pod: &Pod) -> Option<jiff::Timestamp> {
    pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0)
}

/// Upstream `pickOneNodeForPreemption`, lower is better: the lowest highest
/// victim priority, then the lowest sum of priorities, then the fewest
/// victims, then the node name.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    highest: i32,
    sum: i64,
    count: usize,
    node: String,
}

impl Rank {
    fn of(victims: &[Arc<Pod>], node: &str) -> Rank {
        Rank {
            highest: victims.iter().map(|p| priority(p)).max().unwrap_or(i32::MIN),
            // Shifted like upstream so negative priorities still add up as costs.
            sum: victims.iter().map(|p| i64::from(priority(p)) + i64::from(i32::MAX) + 1).sum(),
            count: victims.len(),
            node: node.to_string(),
        }
    }
}

#[cfg(test)]
#[path = "preemption_tests.rs"]
mod tests;
