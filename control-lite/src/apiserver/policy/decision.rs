//! What an eviction does, decided from the pod and the budgets of its
//! namespace as they are read (pure; upstream's eviction REST rules):
//!
//! - a pod that is terminal, Pending or already being deleted, or that no
//!   budget covers, is deleted;
//! - more than one covering budget is refused (500, as upstream);
//! - an unhealthy pod is deleted without touching the budget when its
//!   `unhealthyPodEvictionPolicy` allows (`AlwaysAllow`, or the default
//!   `IfHealthyBudget` while the budget has all the healthy pods it needs);
//! - otherwise the budget must have a disruption to spend: its status is
//!   written back with `disruptionsAllowed` decremented and the pod
//!   recorded in `disruptedPods`, then the pod is deleted; with none left
//!   (or a budget its controller has not caught up with) the answer is 429.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::controllers::disruption::plan::{allowed_condition, covers, is_healthy};
use crate::controllers::selector;

/// Most evictions a budget may hold unconfirmed in `disruptedPods` (upstream's `MaxDisruptedPodSize`).
pub const MAX_DISRUPTED_PODS: usize = 2000;
/// The 429 message upstream sends when a budget refuses an eviction.
pub const VIOLATES_BUDGET: &str = "Cannot evict pod as it would violate the pod's disruption budget.";
/// The 500 message when several budgets cover the pod.
pub const MANY_BUDGETS: &str =
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.";

/// The outcome of an eviction request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Delete the pod; no budget is spent.
    Delete,
    /// Store this budget (its status spent by one, written with the
    /// resourceVersion it was read at), then delete the pod.
    Spend(Box<PodDisruptionBudget>),
    /// 429: the budget allows no disruption now. `cause` names the budget.
    Refuse { cause: String, retry_after_seconds: u64 },
    /// 403: the budget's status cannot be spent from.
    Forbidden { pdb: String, reason: &'static str },
    /// 500: several budgets cover the pod.
    ManyBudgets,
}

/// Pods an eviction deletes without asking a budget (upstream's `canIgnorePDB`).
fn ignores_budgets(pod: &Pod) -> bool {
    matches!(selector::phase(pod), "Succeeded" | "Failed" | "Pending") || pod.metadata.deletion_timestamp.is_some()
}

/// Decides the eviction of `pod` given `pdbs` (the budgets of its namespace) at `now`.
pub fn decide(pod: &Pod, pdbs: &[PodDisruptionBudget], now: jiff::Timestamp) -> Decision {
    if ignores_budgets(pod) {
        return Decision::Delete;
    }
    let mut covering = pdbs.iter().filter(|pdb| covers(pdb, pod));
    let Some(pdb) = covering.next() else { return Decision::Delete };
    if covering.next().is_some() {
        return Decision::ManyBudgets;
    }
    let name = pdb.metadata.name.clone().unwrap_or_default();
    let status = pdb.status.clone().unwrap_or_default();
    let generation = pdb.metadata.generation;
    let observed = status.observed_generation.unwrap_or(0) >= generation.unwrap_or(0);
    if !is_healthy(pod) {
        let policy = pdb.spec.as_ref().and_then(|s| s.unhealthy_pod_eviction_policy.as_deref());
        let budget_healthy = observed && status.current_healthy >= status.desired_healthy && status.desired_healthy > 0;
        match policy {
            Some("AlwaysAllow") => return Decision::Delete,
            None | Some("IfHealthyBudget") if budget_healthy => return Decision::Delete,
            _ => {}
        }
    }
    if !observed {
        let cause = format!("The disruption budget {name} is still being processed by the server.");
        return Decision::Refuse { cause, retry_after_seconds: 10 };
    }
    if status.disruptions_allowed < 0 {
        return Decision::Forbidden { pdb: name, reason: "pdb disruptions allowed is negative" };
    }
    if status.disrupted_pods.as_ref().is_some_and(|d| d.len() > MAX_DISRUPTED_PODS) {
        return Decision::Forbidden {
            pdb: name,
            reason: "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        };
    }
    if status.disruptions_allowed == 0 {
        let cause = format!(
            "The disruption budget {name} needs {} healthy pods and has {} currently",
            status.desired_healthy, status.current_healthy
        );
        return Decision::Refuse { cause, retry_after_seconds: 0 };
    }
    let mut next = pdb.clone();
    let mut spent = status;
    spent.disruptions_allowed = spent.disruptions_allowed.saturating_sub(1);
    if spent.disruptions_allowed == 0 {
        spent.conditions = Some(allowed_condition(spent.conditions.as_deref(), 0, spent.observed_generation, now));
    }
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    spent.disrupted_pods.get_or_insert_with(Default::default).insert(pod_name, Time(now));
    next.status = Some(spent);
    Decision::Spend(Box::new(next))
}
