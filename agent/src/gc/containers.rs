//! Which dead containers and sandboxes to remove (pure), with upstream's
//! policy:
//! - only containers older than the policy's minimum age are considered,
//!   never running or unknown ones (their pod worker kills them first);
//! - exited and created containers of deleted pods are all removed;
//! - of live pods, per (pod, container name), the newest
//!   `max_per_pod_container` exited instances are kept (1: the instance
//!   `kubectl logs --previous` reads) and older ones removed; a created
//!   container is removed only when a newer one of its name exists (unlike
//!   upstream, which counts it as dead: the next instance being created
//!   must not push out the previous one that `--previous` reads);
//! - a sandbox is *active* while it is ready or a container that stays
//!   references it; inactive sandboxes of deleted pods are removed, and of
//!   other pods all but the newest sandbox (active or not).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A container's state, as far as GC cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

/// One container in the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeContainer {
    pub id: String,
    pub sandbox_id: String,
    pub pod_uid: String,
    /// The container's name in its pod.
    pub name: String,
    /// Creation time, ns since the Unix epoch (CRI `created_at`).
    pub created_at: i64,
    pub state: ContainerState,
}

/// One sandbox in the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSandbox {
    pub id: String,
    pub pod_uid: String,
    /// Creation time, ns since the Unix epoch.
    pub created_at: i64,
    pub ready: bool,
}

/// The dead-container policy (upstream `ContainerGCPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerPolicy {
    /// A container younger than this is never removed
    /// (`--minimum-container-ttl-duration`, default 0).
    pub min_age: Duration,
    /// Dead instances kept per (pod, container name); `None`: no limit
    /// (`--maximum-dead-containers-per-container`, default 1).
    pub max_per_pod_container: Option<usize>,
}

impl Default for ContainerPolicy {
    fn default() -> Self {
        Self { min_age: Duration::ZERO, max_per_pod_container: Some(1) }
    }
}

/// What one container GC pass removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerGcPlan {
    /// Containers to remove, oldest first.
    pub remove_containers: Vec<String>,
    /// Sandboxes to remove (after the containers), oldest first.
    pub remove_sandboxes: Vec<String>,
}

impl ContainerGcPlan {
    /// True when nothing is to be removed.
    pub fn is_empty(&self) -> bool {
        self.remove_containers.is_empty() && self.remove_sandboxes.is_empty()
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Decides one pass over `containers` and `sandboxes` at `now` (ns since
/// the epoch); `deleted` says whether a pod UID is gone for good (only when
/// the agent knows all its pods: before that, say false for every pod).
pub fn compute_container_gc(
    containers: &[RuntimeContainer],
    sandboxes: &[RuntimeSandbox],
    deleted: &dyn Fn(&str) -> bool,
    policy: ContainerPolicy,
    now: i64,
) -> ContainerGcPlan {
    let newest_allowed = now.saturating_sub(nanos(policy.min_age));
    let mut units: BTreeMap<(&str, &str), Vec<&RuntimeContainer>> = BTreeMap::new();
    for c in containers.iter().filter(|c| !c.pod_uid.is_empty()) {
        units.entry((c.pod_uid.as_str(), c.name.as_str())).or_default().push(c);
    }
    let mut removed: Vec<&RuntimeContainer> = Vec::new();
    for ((uid, _), mut unit) in units {
        // Newest first.
        unit.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        let old_enough = |c: &&RuntimeContainer| c.created_at <= newest_allowed;
        if deleted(uid) {
            let evictable =
                |c: &&&RuntimeContainer| matches!(c.state, ContainerState::Exited | ContainerState::Created);
            removed.extend(unit.iter().filter(evictable).filter(|c| old_enough(c)).copied());
            continue;
        }
        let keep = policy.max_per_pod_container.unwrap_or(usize::MAX);
        let dead = unit.iter().filter(|c| c.state == ContainerState::Exited && old_enough(c));
        removed.extend(dead.skip(keep).copied());
        // A created container that never started and has a newer sibling
        // is stale; the newest one is about to start.
        let stale = unit.iter().skip(1).filter(|c| c.state == ContainerState::Created && old_enough(c));
        removed.extend(stale.copied());
    }
    removed.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    let removed_ids: BTreeSet<&str> = removed.iter().map(|c| c.id.as_str()).collect();
    let referenced: BTreeSet<&str> =
        containers.iter().filter(|c| !removed_ids.contains(c.id.as_str())).map(|c| c.sandbox_id.as_str()).collect();
    let remove_sandboxes = sandboxes_to_remove(sandboxes, &referenced, deleted);
    ContainerGcPlan { remove_containers: removed.into_iter().map(|c| c.id.clone()).collect(), remove_sandboxes }
}

fn sandboxes_to_remove(
    sandboxes: &[RuntimeSandbox],
    referenced: &BTreeSet<&str>,
    deleted: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut by_pod: BTreeMap<&str, Vec<&RuntimeSandbox>> = BTreeMap::new();
    for s in sandboxes.iter().filter(|s| !s.pod_uid.is_empty()) {
        by_pod.entry(s.pod_uid.as_str()).or_default().push(s);
    }
    let mut removed: Vec<&RuntimeSandbox> = Vec::new();
    for (uid, mut pod_sandboxes) in by_pod {
        pod_sandboxes.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        let keep = if deleted(uid) { 0 } else { 1 };
        let inactive = |s: &&&RuntimeSandbox| !s.ready && !referenced.contains(s.id.as_str());
        removed.extend(pod_sandboxes.iter().skip(keep).filter(inactive).copied());
    }
    removed.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    removed.into_iter().map(|s| s.id.clone()).collect()
}

#[cfg(test)]
#[path = "containers_tests.rs"]
mod tests;
