//! One Deployment sync as data: which ReplicaSet to create, which to scale
//! or annotate, which old ones to delete, and the resulting status. Pure.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::hash::{self, pod_template_hash};
use super::proportional;
use super::rollout::{self, RsCounts};
use super::status::{self, Progress};
use crate::controllers::selector;

/// Revision annotation on Deployments and ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Annotation: the Deployment's `spec.replicas` when the RS was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// Annotation: desired + maxSurge when the RS was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Annotation copied from the Deployment to its new ReplicaSet (`kubectl
/// rollout history` shows it).
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// A merge patch to one ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsUpdate {
    /// ReplicaSet name.
    pub name: String,
    /// New `spec.replicas`, if it changes.
    pub replicas: Option<i32>,
    /// Annotations to set.
    pub annotations: BTreeMap<String, String>,
}

/// Everything one sync does.
#[derive(Debug, Default)]
pub struct Plan {
    /// New ReplicaSet to create.
    pub create: Option<ReplicaSet>,
    /// ReplicaSets to scale or annotate.
    pub update: Vec<RsUpdate>,
    /// Old ReplicaSets beyond `revisionHistoryLimit` to delete.
    pub delete: Vec<String>,
    /// New value of the Deployment's revision annotation, if it changes.
    pub revision: Option<String>,
    /// Status to write.
    pub status: DeploymentStatus,
    /// Sync again after this long (the progress deadline).
    pub requeue: Option<std::time::Duration>,
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).and_then(|r| r.parse().ok()).unwrap_or(0)
}

fn counts(rs: &ReplicaSet) -> RsCounts {
    let status = rs.status.clone().unwrap_or_default();
    RsCounts {
        name: rs.metadata.name.clone().unwrap_or_default(),
        replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        actual: status.replicas,
        available: status.available_replicas.unwrap_or(0),
    }
}

/// Computes one sync of `d` given the ReplicaSets it controls.
pub fn plan(d: &Deployment, owned: &[Arc<ReplicaSet>], now: jiff::Timestamp) -> Plan {
    let spec = d.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let collisions = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = pod_template_hash(&spec.template, collisions);
    let is_new = |rs: &ReplicaSet| rs.metadata.labels.as_ref().and_then(|l| l.get(hash::LABEL)) == Some(&hash);
    let new = owned.iter().find(|rs| is_new(rs)).cloned();
    let mut old: Vec<Arc<ReplicaSet>> = owned.iter().filter(|rs| !is_new(rs)).cloned().collect();
    old.sort_by_key(|rs| (rs.metadata.creation_timestamp.as_ref().map(|t| t.0), rs.metadata.name.clone()));
    let max_old_revision = old.iter().map(|rs| revision_of(rs)).max().unwrap_or(0);
    let revision = match &new {
        Some(rs) if revision_of(rs) > max_old_revision => revision_of(rs),
        _ => max_old_revision.saturating_add(1),
    };
    let strategy = spec.strategy.clone().unwrap_or_default();
    let recreate = strategy.type_.as_deref() == Some("Recreate");
    let (surge, unavailable) = if recreate {
        (0, 0)
    } else {
        let rolling = strategy.rolling_update.clone().unwrap_or_default();
        rollout::fenceposts(rolling.max_surge.as_ref(), rolling.max_unavailable.as_ref(), desired)
    };
    let scale_notes = BTreeMap::from([
        (DESIRED_REPLICAS.to_string(), desired.to_string()),
        (MAX_REPLICAS.to_string(), (i64::from(desired) + i64::from(surge)).to_string()),
    ]);
    let old_counts: Vec<RsCounts> = old.iter().map(|rs| counts(rs)).collect();
    let new_counts = new.as_deref().map(counts);
    let new_name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default());

    let mut plan = Plan::default();
    // Target replicas of the new RS this step, and old-RS scale-downs.
    let paused = spec.paused == Some(true);
    // Paused, or spec.replicas changed under active sets: scale, no rollout
    // step (upstream `sync`).
    let scaling = paused || is_scaling_event(desired, owned);
    let mut rescaled: Vec<String> = Vec::new();
    let (new_target, old_scales) = if scaling {
        let target = proportional::Target {
            desired,
            surge,
            previous: d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            new_saturated: new.as_deref().is_some_and(|rs| is_saturated(rs, desired)),
        };
        let sets: Vec<proportional::ScaleSet> = old.iter().chain(new.iter()).map(|rs| scale_set(rs)).collect();
        let sizes = proportional::proportional_scale(target, &sets);
        rescaled = sizes.iter().map(|(name, _)| name.clone()).collect();
        let new_target = new_counts
            .as_ref()
            .map_or(0, |c| sizes.iter().find(|(name, _)| *name == c.name).map_or(c.replicas, |(_, size)| *size));
        let old_scales = sizes.into_iter().filter(|(name, _)| Some(name) != new_counts.as_ref().map(|c| &c.name));
        (new_target, old_scales.collect())
    } else if recreate {
        match rollout::recreate(desired, &old_counts) {
            Ok(n) => (n, Vec::new()),
            Err(scales) => (new_counts.as_ref().map_or(0, |c| c.replicas), scales),
        }
    } else {
        let current = new_counts.as_ref().map_or(0, |c| c.replicas);
        let total = rollout::sum(old_counts.iter().map(|c| c.replicas)) + i64::from(current);
        let target = rollout::new_rs_replicas(desired, surge, total, current);
        match &new_counts {
            // Grow (or shrink) the new RS first; shrink old ones in a later sync.
            Some(c) if target != c.replicas => (target, Vec::new()),
            Some(c) => (target, rollout::scale_down_old(desired, unavailable, c, &old_counts)),
            None => (target, Vec::new()),
        }
    };
    let mut progress = Progress::Existing;
    match &new {
        None if !scaling => {
            plan.create = Some(new_replicaset(d, &new_name, &hash, new_target, revision, &scale_notes));
            progress = Progress::Created;
        }
        None => {}
        Some(rs) => {
            let mut annotations = BTreeMap::new();
            let current = counts(rs).replicas;
            let renote = rescaled.iter().any(|n| Some(n) == rs.metadata.name.as_ref()) && !has_notes(rs, &scale_notes);
            if current != new_target || renote {
                annotations.extend(scale_notes.clone());
            }
            if revision_of(rs) != revision {
                annotations.insert(REVISION.to_string(), revision.to_string());
            }
            if let Some(cause) = change_cause(d).filter(|c| annotation(rs, CHANGE_CAUSE) != Some(*c)) {
                annotations.insert(CHANGE_CAUSE.to_string(), cause.to_string());
            }
            if current != new_target || !annotations.is_empty() {
                plan.update.push(RsUpdate {
                    name: rs.metadata.name.clone().unwrap_or_default(),
                    replicas: (current != new_target).then_some(new_target),
                    annotations,
                });
            }
        }
    }
    for (name, replicas) in old_scales {
        let Some(rs) = old.iter().find(|rs| rs.metadata.name.as_ref() == Some(&name)) else { continue };
        let resize = counts(rs).replicas != replicas;
        if resize || !has_notes(rs, &scale_notes) {
            plan.update.push(RsUpdate { name, replicas: resize.then_some(replicas), annotations: scale_notes.clone() });
        }
    }
    // The Deployment takes the revision of its new ReplicaSet (none while
    // paused with a changed template).
    let has_new = new.is_some() || plan.create.is_some();
    let current_revision = d.metadata.annotations.as_ref().and_then(|a| a.get(REVISION));
    if has_new && current_revision != Some(&revision.to_string()) {
        plan.revision = Some(revision.to_string());
    }
    let mut all: Vec<Arc<ReplicaSet>> = old.clone();
    all.extend(new.clone());
    (plan.status, plan.requeue) = status::status(d, &new_name, new.as_deref(), &all, unavailable, progress, now);
    let complete = plan.status.updated_replicas == Some(desired)
        && plan.status.replicas == Some(desired)
        && plan.status.available_replicas == Some(desired);
    if complete {
        plan.delete = history_to_delete(&old, spec.revision_history_limit.unwrap_or(DEFAULT_HISTORY_LIMIT));
    }
    plan
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

fn change_cause(d: &Deployment) -> Option<&str> {
    d.metadata.annotations.as_ref().and_then(|a| a.get(CHANGE_CAUSE)).map(String::as_str)
}

/// Upstream `isScalingEvent`: an active set was last scaled for another
/// `spec.replicas` than the Deployment's.
fn is_scaling_event(desired: i32, owned: &[Arc<ReplicaSet>]) -> bool {
    owned
        .iter()
        .filter(|rs| counts(rs).replicas > 0)
        .filter_map(|rs| annotation(rs, DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok()))
        .any(|annotated| annotated != desired)
}

/// Upstream `IsSaturated`: the new set runs `desired` available replicas
/// and was scaled for that size.
fn is_saturated(rs: &ReplicaSet, desired: i32) -> bool {
    let c = counts(rs);
    c.replicas == desired
        && c.available == desired
        && annotation(rs, DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok()) == Some(desired)
}

fn scale_set(rs: &ReplicaSet) -> proportional::ScaleSet {
    proportional::ScaleSet {
        name: rs.metadata.name.clone().unwrap_or_default(),
        replicas: counts(rs).replicas,
        max_replicas: annotation(rs, MAX_REPLICAS).and_then(|v| v.parse().ok()),
    }
}

/// Whether `rs` already carries every annotation in `notes`.
fn has_notes(rs: &ReplicaSet, notes: &BTreeMap<String, String>) -> bool {
    notes.iter().all(|(k, v)| annotation(rs, k) == Some(v.as_str()))
}

/// Old, fully scaled-down ReplicaSets beyond the history limit, oldest
/// revision first.
fn history_to_delete(old: &[Arc<ReplicaSet>], limit: i32) -> Vec<String> {
    let mut idle: Vec<&Arc<ReplicaSet>> = old
        .iter()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .filter(|rs| {
            let c = counts(rs);
            c.replicas == 0 && c.actual == 0
        })
        .collect();
    idle.sort_by_key(|rs| revision_of(rs));
    let excess = idle.len().saturating_sub(usize::try_from(limit).unwrap_or(0));
    idle.iter().take(excess).map(|rs| rs.metadata.name.clone().unwrap_or_default()).collect()
}

/// The ReplicaSet for the Deployment's current template.
fn new_replicaset(
    d: &Deployment,
    name: &str,
    hash: &str,
    replicas: i32,
    revision: i64,
    scale_notes: &BTreeMap<String, String>,
) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let template_meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    template_meta.labels.get_or_insert_with(BTreeMap::new).insert(hash::LABEL.to_string(), hash.to_string());
    let labels = template_meta.labels.clone();
    let mut selector = spec.selector.clone();
    selector.match_labels.get_or_insert_with(BTreeMap::new).insert(hash::LABEL.to_string(), hash.to_string());
    let mut annotations = scale_notes.clone();
    annotations.insert(REVISION.to_string(), revision.to_string());
    if let Some(cause) = change_cause(d) {
        annotations.insert(CHANGE_CAUSE.to_string(), cause.to_string());
    }
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: d.metadata.namespace.clone(),
            labels,
            annotations: Some(annotations),
            owner_references: Some(vec![selector::controller_ref(
                "apps/v1",
                "Deployment",
                d.metadata.name.as_deref().unwrap_or_default(),
                d.metadata.uid.as_deref().unwrap_or_default(),
            )]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
