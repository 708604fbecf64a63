//! The disruption controller's decisions, pure: which pods a budget covers,
//! how many it expects and how many are healthy, how many may be disrupted
//! now, the `DisruptionAllowed` condition, and which recorded evictions
//! (`status.disruptedPods`) still hold a pod out of the healthy count.
//! Upstream's rules (kube-controller-manager's disruption controller).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::controllers::selector;

/// How long an eviction recorded in `disruptedPods` keeps its pod out of
/// the healthy count while the pod's deletion is not yet seen (upstream's
/// `DeletionTimeout`).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
/// The condition this controller (and the eviction subresource) keep.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
/// Reason of `DisruptionAllowed=True`.
pub const SUFFICIENT_PODS: &str = "SufficientPods";
/// Reason of `DisruptionAllowed=False`.
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";

/// Whether `pdb` covers `pod`: same namespace and the selector matches. In
/// policy/v1 a missing selector covers nothing and an empty one covers
/// every pod of the namespace.
pub fn covers(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    if pdb.metadata.namespace != pod.metadata.namespace {
        return false;
    }
    match pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        None => false,
        Some(sel) => selector::matches(sel, &selector::labels(&pod.metadata)),
    }
}

/// Healthy for a budget: Ready and not being deleted.
pub fn is_healthy(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && selector::is_ready(pod)
}

/// `value` of `total` (a percentage rounded up, as upstream), never below 0.
pub fn scaled(value: &IntOrString, total: i32) -> i32 {
    match value {
        IntOrString::Int(n) => (*n).max(0),
        IntOrString::String(s) => {
            let pct = s.strip_suffix('%').and_then(|d| d.parse::<i64>().ok()).unwrap_or(0).clamp(0, 100);
            let scaled = (pct * i64::from(total.max(0)) + 99) / 100;
            i32::try_from(scaled).unwrap_or(i32::MAX)
        }
    }
}

/// The `DisruptionAllowed` condition for `allowed` disruptions, keeping the
/// previous transition time when the status does not change.
pub fn allowed_condition(
    previous: Option<&[Condition]>,
    allowed: i32,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let (status, reason) = if allowed > 0 { ("True", SUFFICIENT_PODS) } else { ("False", INSUFFICIENT_PODS) };
    let mut out: Vec<Condition> =
        previous.unwrap_or_default().iter().filter(|c| c.type_ != DISRUPTION_ALLOWED).cloned().collect();
    let old = previous.unwrap_or_default().iter().find(|c| c.type_ == DISRUPTION_ALLOWED);
    let since = match old {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    out.push(Condition {
        type_: DISRUPTION_ALLOWED.into(),
        status: status.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: generation,
        last_transition_time: since,
    });
    out
}

/// What the controller writes for one budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The status the budget should have.
    pub status: PodDisruptionBudgetStatus,
    /// When a recorded eviction expires and the budget must be looked at again.
    pub requeue_after: Option<Duration>,
}

/// The status of `pdb` given the pods of its namespace. `scale_of` gives a
/// pod's controller (its uid, following a ReplicaSet up to its Deployment)
/// and that controller's replica count, when it has one.
pub fn plan(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    scale_of: &dyn Fn(&Pod) -> Option<(String, i32)>,
    now: Timestamp,
) -> Plan {
    let covered: Vec<&Pod> = pods.iter().copied().filter(|p| covers(pdb, p)).collect();
    let spec = pdb.spec.clone().unwrap_or_default();
    let count = i32::try_from(covered.len()).unwrap_or(i32::MAX);
    let (expected, desired) = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(min)), _) => (count, (*min).max(0)),
        (min, max) if min.is_some() || max.is_some() => {
            let expected = expected_from_controllers(&covered, scale_of);
            let desired = match (min, max) {
                (Some(min), _) => scaled(min, expected),
                (None, Some(max)) => expected.saturating_sub(scaled(max, expected)).max(0),
                (None, None) => 0,
            };
            (expected, desired)
        }
        _ => (count, 0),
    };
    let (disrupted, requeue_after) = still_disrupted(pdb, &covered, now);
    let healthy = covered
        .iter()
        .filter(|p| is_healthy(p) && !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
        .count();
    let healthy = i32::try_from(healthy).unwrap_or(i32::MAX);
    let allowed = if expected <= 0 { 0 } else { healthy.saturating_sub(desired).max(0) };
    let previous = pdb.status.as_ref().and_then(|s| s.conditions.as_deref());
    let generation = pdb.metadata.generation;
    let status = PodDisruptionBudgetStatus {
        conditions: Some(allowed_condition(previous, allowed, generation, now)),
        current_healthy: healthy,
        desired_healthy: desired,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        disruptions_allowed: allowed,
        expected_pods: expected,
        observed_generation: generation,
    };
    Plan { status, requeue_after }
}

/// Sum of the scales of the covered pods' controllers (each counted once);
/// a pod without a controller (or whose controller is unknown) counts as one.
fn expected_from_controllers(covered: &[&Pod], scale_of: &dyn Fn(&Pod) -> Option<(String, i32)>) -> i32 {
    let mut seen = BTreeSet::new();
    let mut total: i32 = 0;
    for pod in covered {
        match scale_of(pod) {
            Some((uid, replicas)) => {
                if seen.insert(uid) {
                    total = total.saturating_add(replicas.max(0));
                }
            }
            None => total = total.saturating_add(1),
        }
    }
    total
}

/// The recorded evictions that still count: their pod is covered, not yet
/// being deleted, and the record is younger than [`DELETION_TIMEOUT`]; and
/// when the youngest of them expires.
fn still_disrupted(
    pdb: &PodDisruptionBudget,
    covered: &[&Pod],
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Duration>) {
    let recorded = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref());
    let mut kept = BTreeMap::new();
    let mut next: Option<Duration> = None;
    let Some(recorded) = recorded else { return (kept, next) };
    for pod in covered.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(at) = recorded.get(&name) else { continue };
        let age = now.duration_since(at.0);
        let left = jiff::SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or_default() - age;
        if left <= jiff::SignedDuration::ZERO {
            continue;
        }
        let left = Duration::try_from(left).unwrap_or_default();
        next = Some(next.map_or(left, |n| n.min(left)));
        kept.insert(name, at.clone());
    }
    (kept, next)
}
