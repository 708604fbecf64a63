//! What a StatefulSet needs: the ordinals to create, the pods to delete, and
//! its status. Pure; table-tested.
//!
//! As upstream: the pods `start..start+replicas` should exist. With
//! `OrderedReady` they are created one at a time in ordinal order, each once
//! every lower one is Running and Ready, and surplus pods are deleted one at
//! a time from the highest ordinal, each after the previous one is gone;
//! `Parallel` creates and deletes without waiting. A RollingUpdate deletes
//! (to recreate at the new revision) the highest pod at an old revision
//! among the ordinals at or above the partition, one at a time, once the
//! pods are healthy. OnDelete replaces only pods the user deletes. A pod
//! created below the partition gets the current revision ([`revision_for`]).

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::pods::{ordinal_of, revision_of};
use crate::controllers::selector;

/// Most pods created in one reconcile (as the ReplicaSet controller's burst):
/// bounds the work a huge `replicas` asks of one pass.
pub const BURST: usize = 500;

/// The actions one reconcile of a StatefulSet takes.
#[derive(Debug, Default)]
pub struct Plan {
    /// Ordinals to create, in order.
    pub create: Vec<i32>,
    /// Pods to delete, in order.
    pub delete: Vec<Arc<Pod>>,
    /// Status to write.
    pub status: StatefulSetStatus,
}

/// The revision a new pod with `ordinal` gets: as upstream, the current
/// revision below a RollingUpdate's partition (those pods are not to be
/// updated yet), else the update revision.
pub fn revision_for(sts: &StatefulSet, ordinal: i32, update_revision: &str) -> String {
    let spec = sts.spec.as_ref();
    let current = sts.status.as_ref().and_then(|s| s.current_revision.as_deref()).filter(|c| !c.is_empty());
    let strategy = spec.and_then(|s| s.update_strategy.as_ref());
    let rolling = strategy.and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") == "RollingUpdate";
    let partition = strategy.and_then(|s| s.rolling_update.as_ref()).and_then(|r| r.partition).unwrap_or(0).max(0);
    let start = spec.and_then(|s| s.ordinals.as_ref()).and_then(|o| o.start).unwrap_or(0).max(0);
    match current {
        Some(current) if rolling && ordinal < start.saturating_add(partition) => current.to_string(),
        _ => update_revision.to_string(),
    }
}

fn healthy(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && selector::phase(pod) == "Running" && selector::is_ready(pod)
}

fn terminal(pod: &Pod) -> bool {
    matches!(selector::phase(pod), "Failed" | "Succeeded")
}

/// Computes the plan for `sts` given the pods it controls and the name of
/// its current template's revision.
pub fn plan(sts: &StatefulSet, pods: &[Arc<Pod>], update_revision: &str, now: jiff::Timestamp) -> Plan {
    let set = sts.metadata.name.as_deref().unwrap_or_default();
    let spec = sts.spec.clone().unwrap_or_default();
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0).max(0);
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let end = start.saturating_add(replicas);
    let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
    let mut slots: BTreeMap<i32, Arc<Pod>> = BTreeMap::new();
    let mut condemned: Vec<(i32, Arc<Pod>)> = Vec::new();
    for pod in pods {
        let Some(ordinal) = ordinal_of(set, pod) else { continue };
        if (start..end).contains(&ordinal) {
            slots.insert(ordinal, pod.clone());
        } else {
            condemned.push((ordinal, pod.clone()));
        }
    }
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    let mut plan = Plan { status: status(sts, pods, update_revision, now), ..Plan::default() };
    if sts.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    // Bring up start..end in order.
    let mut blocked = false;
    for ordinal in start..end {
        match slots.get(&ordinal) {
            None => {
                plan.create.push(ordinal);
                blocked |= ordered;
            }
            Some(pod) if terminal(pod) && pod.metadata.deletion_timestamp.is_none() => {
                plan.delete.push(pod.clone());
                blocked |= ordered;
            }
            Some(pod) => blocked |= ordered && !healthy(pod),
        }
        if blocked || plan.create.len() >= BURST {
            return plan;
        }
    }
    // Remove the surplus from the top.
    for (_, pod) in &condemned {
        if pod.metadata.deletion_timestamp.is_some() {
            if ordered {
                return plan;
            }
            continue;
        }
        plan.delete.push(pod.clone());
        if ordered {
            return plan;
        }
    }
    // Roll: the highest old pod at or above the partition, once all there are healthy.
    let strategy = spec.update_strategy.unwrap_or_default();
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return plan;
    }
    let partition = strategy.rolling_update.and_then(|r| r.partition).unwrap_or(0).max(0);
    let from = start.saturating_add(partition);
    for ordinal in (from..end).rev() {
        let Some(pod) = slots.get(&ordinal) else { return plan };
        if !healthy(pod) {
            return plan;
        }
        if revision_of(pod) != Some(update_revision) {
            plan.delete.push(pod.clone());
            return plan;
        }
    }
    plan
}

fn status(sts: &StatefulSet, pods: &[Arc<Pod>], update_revision: &str, now: jiff::Timestamp) -> StatefulSetStatus {
    let set = sts.metadata.name.as_deref().unwrap_or_default();
    let spec = sts.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let previous = sts.status.clone().unwrap_or_default();
    let current_revision =
        previous.current_revision.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| update_revision.to_string());
    let ours: Vec<&Arc<Pod>> = pods.iter().filter(|p| ordinal_of(set, p).is_some()).collect();
    let count = |f: &dyn Fn(&Pod) -> bool| i32::try_from(ours.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX);
    let live = |p: &Pod| p.metadata.deletion_timestamp.is_none();
    let mut status = StatefulSetStatus {
        replicas: count(&|_| true),
        ready_replicas: Some(count(&|p| selector::phase(p) == "Running" && selector::is_ready(p))),
        available_replicas: Some(count(&|p| selector::is_available(p, min_ready, now))),
        current_replicas: Some(count(&|p| live(p) && revision_of(p) == Some(current_revision.as_str()))),
        updated_replicas: Some(count(&|p| live(p) && revision_of(p) == Some(update_revision))),
        current_revision: Some(current_revision),
        update_revision: Some(update_revision.to_string()),
        observed_generation: sts.metadata.generation,
        collision_count: previous.collision_count,
        conditions: previous.conditions,
    };
    let want = spec.and_then(|s| s.replicas).unwrap_or(1);
    let rolled =
        status.updated_replicas == Some(want) && status.replicas == want && status.ready_replicas == Some(want);
    if rolled {
        status.current_revision = Some(update_revision.to_string());
        status.current_replicas = status.updated_replicas;
    }
    status
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
