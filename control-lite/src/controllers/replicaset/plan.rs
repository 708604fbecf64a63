//! What a ReplicaSet needs: pods to adopt, release, create and delete, and
//! its new status. Pure; table-tested.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::controllers::selector;

/// Most pods created or deleted in one reconcile (upstream `burstReplicas`).
pub const BURST: usize = 500;

/// The actions one reconcile of a ReplicaSet takes.
#[derive(Debug, Default)]
pub struct Plan {
    /// Orphan pods matching the selector to take ownership of.
    pub adopt: Vec<Arc<Pod>>,
    /// Owned pods whose labels no longer match; drop our owner reference.
    pub release: Vec<Arc<Pod>>,
    /// Number of pods to create from the template.
    pub create: usize,
    /// Pods to delete, most expendable first.
    pub delete: Vec<Arc<Pod>>,
    /// Status to write.
    pub status: ReplicaSetStatus,
    /// Check again after this long (a pod becomes available by then).
    pub requeue_after: Option<Duration>,
}

/// Computes the plan for `rs` given the pods of its namespace.
pub fn plan(rs: &ReplicaSet, pods: &[Arc<Pod>], now: jiff::Timestamp) -> Plan {
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let spec = rs.spec.as_ref();
    let selector = spec.map(|s| s.selector.clone()).unwrap_or_default();
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut plan = Plan::default();
    let mut owned: Vec<Arc<Pod>> = Vec::new();
    for pod in pods {
        let labels = selector::labels(&pod.metadata);
        let matching = !selector::is_empty(&selector) && selector::matches(&selector, &labels);
        match selector::controller_of(&pod.metadata) {
            Some(owner) if owner.uid == uid => {
                if matching {
                    owned.push(pod.clone());
                } else {
                    plan.release.push(pod.clone());
                }
            }
            Some(_) => {}
            None => {
                if matching && !deleting && selector::is_active(pod) {
                    plan.adopt.push(pod.clone());
                    owned.push(pod.clone());
                }
            }
        }
    }
    let mut active: Vec<Arc<Pod>> = owned.into_iter().filter(|p| selector::is_active(p)).collect();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    plan.status = status(rs, &active, min_ready, now);
    plan.requeue_after = next_availability(&active, min_ready, now);
    if deleting {
        return plan;
    }
    let want = usize::try_from(spec.and_then(|s| s.replicas).unwrap_or(1)).unwrap_or(0);
    match active.len().cmp(&want) {
        Ordering::Less => plan.create = (want - active.len()).min(BURST),
        Ordering::Greater => {
            active.sort_by(|a, b| deletion_order(a, b));
            active.truncate((active.len() - want).min(BURST));
            plan.delete = active;
        }
        Ordering::Equal => {}
    }
    plan
}

fn status(rs: &ReplicaSet, active: &[Arc<Pod>], min_ready: i32, now: jiff::Timestamp) -> ReplicaSetStatus {
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .map(selector::labels)
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX);
    ReplicaSetStatus {
        replicas: count(&|_| true),
        fully_labeled_replicas: Some(count(&|p| {
            let labels = selector::labels(&p.metadata);
            template_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        })),
        ready_replicas: Some(count(&selector::is_ready)),
        available_replicas: Some(count(&|p| selector::is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        ..ReplicaSetStatus::default()
    }
}

/// When the next ready-but-not-yet-available pod becomes available.
fn next_availability(active: &[Arc<Pod>], min_ready: i32, now: jiff::Timestamp) -> Option<Duration> {
    if min_ready <= 0 {
        return None;
    }
    active
        .iter()
        .filter_map(|p| selector::ready_since(p).flatten())
        .map(|since| since.as_second().saturating_add(i64::from(min_ready)).saturating_sub(now.as_second()))
        .filter(|left| *left > 0)
        .min()
        .map(|left| Duration::from_secs(left.unsigned_abs()))
}

/// Upstream `ActivePods` ordering: the pod to delete first sorts first.
/// Unassigned < assigned; Pending < Unknown < Running; not ready < ready;
/// ready for less time < longer; more restarts < fewer; newer < older.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let assigned = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    let phase_rank = |p: &Pod| match selector::phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    };
    let restarts = |p: &Pod| -> i32 {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|c| c.iter().map(|c| c.restart_count).max().unwrap_or(0))
            .unwrap_or(0)
    };
    let created = |m: &ObjectMeta| m.creation_timestamp.as_ref().map(|t| t.0);
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| selector::is_ready(a).cmp(&selector::is_ready(b)))
        .then_with(|| {
            match (selector::ready_since(a).flatten(), selector::ready_since(b).flatten()) {
                // Both ready: the one ready more recently goes first.
                (Some(x), Some(y)) => y.cmp(&x),
                _ => Ordering::Equal,
            }
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| created(&b.metadata).cmp(&created(&a.metadata)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The pod a ReplicaSet creates from its template.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: rs.metadata.namespace.clone(),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![selector::controller_ref(
                "apps/v1",
                "ReplicaSet",
                &name,
                rs.metadata.uid.as_deref().unwrap_or_default(),
            )]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
