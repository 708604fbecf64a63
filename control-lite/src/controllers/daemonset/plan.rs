//! What a DaemonSet needs: a pod to create on each eligible node without
//! one, pods to delete (misplaced, failed, duplicated, or replaced by a
//! rolling update), and its status. Pure; table-tested.
//!
//! Rolling update as upstream: with `maxSurge` 0, old pods are deleted while
//! fewer than `maxUnavailable` nodes lack an available pod (old pods that are
//! not available anyway go first and free); with `maxSurge` > 0 a new pod is
//! started beside the old one on up to `maxSurge` nodes and the old one is
//! deleted once the new one is available. Terminating pods are ignored.

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::pods::{eligibility, node_of, revision_of, template_pod};
use crate::controllers::selector;

/// The actions one reconcile of a DaemonSet takes.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Nodes to start a daemon pod on (current template).
    pub create: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<Arc<Pod>>,
    /// Status to write.
    pub status: DaemonSetStatus,
    /// Check again after this long (a pod becomes available by then).
    pub requeue_after: Option<Duration>,
}

/// What one node has: the live (not terminating, not failed) daemon pods, split by template.
#[derive(Default)]
struct OnNode {
    updated: Vec<Arc<Pod>>,
    old: Vec<Arc<Pod>>,
}

/// `value` of `total` (a count or a percentage, rounded up), bounded by `total`'s range.
pub fn scaled(value: Option<&IntOrString>, total: usize) -> usize {
    match value {
        None => 0,
        Some(IntOrString::Int(n)) => usize::try_from(*n).unwrap_or(0),
        Some(IntOrString::String(s)) => {
            let pct = s.strip_suffix('%').and_then(|d| d.parse::<u128>().ok()).unwrap_or(0).min(100);
            let total = u128::try_from(total).unwrap_or(u128::MAX);
            // Both factors are bounded (usize, <= 100): no overflow in u128.
            let scaled = total.saturating_mul(pct).div_ceil(100);
            usize::try_from(scaled).unwrap_or(usize::MAX)
        }
    }
}

/// Computes the plan for `ds` given every node, the pods it controls, and
/// the hash of its current template.
pub fn plan(ds: &DaemonSet, nodes: &[Arc<Node>], pods: &[Arc<Pod>], hash: &str, now: jiff::Timestamp) -> Plan {
    let mut plan = Plan::default();
    let spec = ds.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let probe = template_pod(ds);
    let known: HashSet<&str> = nodes.iter().filter_map(|n| n.metadata.name.as_deref()).collect();
    let mut by_node: BTreeMap<&str, OnNode> = BTreeMap::new();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let node = node_of(pod).unwrap_or_default();
        if matches!(selector::phase(pod), "Failed" | "Succeeded") || !known.contains(node) {
            plan.delete.push(pod.clone());
            continue;
        }
        let slot = by_node.entry(node).or_default();
        if revision_of(pod) == Some(hash) {
            slot.updated.push(pod.clone());
        } else {
            slot.old.push(pod.clone());
        }
    }
    let available = |p: &Arc<Pod>| selector::is_available(p, min_ready, now);
    let mut status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
        ..DaemonSetStatus::default()
    };
    // Nodes that run the daemon: (name, what it has), in name order.
    let mut running: Vec<(&str, OnNode)> = Vec::new();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let mut on = by_node.remove(name).unwrap_or_default();
        sort_oldest_first(&mut on.updated);
        sort_oldest_first(&mut on.old);
        let eligible = eligibility(&probe, node);
        let has_pods = !on.updated.is_empty() || !on.old.is_empty();
        if !eligible.may_stay || (!eligible.should_run && !has_pods) {
            status.number_misscheduled += i32::from(has_pods);
            plan.delete.extend(on.updated.drain(..).chain(on.old.drain(..)));
            continue;
        }
        if !eligible.should_run {
            // May stay but should not run: upstream counts it misscheduled and leaves it.
            status.number_misscheduled += 1;
            continue;
        }
        // Duplicates of one template: keep the oldest.
        plan.delete.extend(on.updated.drain(1.min(on.updated.len())..));
        count_status(&mut status, &on, &available);
        if on.updated.is_empty() && on.old.is_empty() {
            plan.create.push(name.to_string());
        }
        running.push((name, on));
    }
    if spec.update_strategy.as_ref().and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") == "RollingUpdate" {
        let ru = spec.update_strategy.as_ref().and_then(|s| s.rolling_update.clone()).unwrap_or_default();
        let desired = running.len();
        let surge = scaled(ru.max_surge.as_ref(), desired);
        let unavailable = match scaled(ru.max_unavailable.as_ref(), desired) {
            0 if surge == 0 => 1,
            n => n,
        };
        roll(&running, surge, unavailable, &available, &mut plan);
    } else {
        // OnDelete: an old pod stays until the user deletes it; drop leftovers beside a new one.
        for (_, on) in &running {
            if !on.updated.is_empty() {
                plan.delete.extend(on.old.iter().cloned());
            }
        }
    }
    status.number_unavailable =
        Some(status.desired_number_scheduled.saturating_sub(status.number_available.unwrap_or(0))).filter(|n| *n > 0);
    plan.status = status;
    plan.requeue_after = next_availability(pods, min_ready, now);
    plan
}

fn sort_oldest_first(pods: &mut [Arc<Pod>]) {
    pods.sort_by(|a, b| {
        let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a).cmp(&created(b)).then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

fn count_status(status: &mut DaemonSetStatus, on: &OnNode, available: &dyn Fn(&Arc<Pod>) -> bool) {
    status.desired_number_scheduled += 1;
    let Some(pod) = on.updated.first().or(on.old.first()) else { return };
    status.current_number_scheduled += 1;
    status.number_ready += i32::from(selector::is_ready(pod));
    if available(pod) {
        *status.number_available.get_or_insert(0) += 1;
    }
    if !on.updated.is_empty() {
        *status.updated_number_scheduled.get_or_insert(0) += 1;
    }
}

/// The rolling update over nodes that run the daemon.
fn roll(
    running: &[(&str, OnNode)],
    max_surge: usize,
    max_unavailable: usize,
    available: &dyn Fn(&Arc<Pod>) -> bool,
    plan: &mut Plan,
) {
    if max_surge == 0 {
        let mut unavailable = running.iter().filter(|(_, on)| !on.updated.iter().chain(&on.old).any(available)).count();
        for (_, on) in running {
            if !on.updated.is_empty() {
                // A new pod is there: the old ones go (available or not).
                plan.delete.extend(on.old.iter().cloned());
                continue;
            }
            for old in &on.old {
                if !available(old) {
                    plan.delete.push(old.clone());
                } else if unavailable < max_unavailable {
                    unavailable = unavailable.saturating_add(1);
                    plan.delete.push(old.clone());
                }
            }
        }
        return;
    }
    let mut surging = running
        .iter()
        .filter(|(_, on)| !on.old.is_empty() && !on.updated.is_empty() && !on.updated.iter().any(available))
        .count();
    for (node, on) in running {
        if on.old.is_empty() {
            continue;
        }
        match on.updated.first() {
            Some(new) if available(new) => plan.delete.extend(on.old.iter().cloned()),
            Some(_) => {}
            None if !on.old.iter().any(available) => plan.create.push((*node).to_string()),
            None if surging < max_surge => {
                surging = surging.saturating_add(1);
                plan.create.push((*node).to_string());
            }
            None => {}
        }
    }
}

/// When the next ready-but-not-yet-available pod becomes available.
fn next_availability(pods: &[Arc<Pod>], min_ready: i32, now: jiff::Timestamp) -> Option<Duration> {
    if min_ready <= 0 {
        return None;
    }
    pods.iter()
        .filter_map(|p| selector::ready_since(p).flatten())
        .map(|since| since.as_second().saturating_add(i64::from(min_ready)).saturating_sub(now.as_second()))
        .filter(|left| *left > 0)
        .min()
        .map(|left| Duration::from_secs(left.unsigned_abs()))
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
