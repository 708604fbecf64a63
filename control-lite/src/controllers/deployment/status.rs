//! Deployment status: counts summed from its ReplicaSets and the
//! `Available` / `Progressing` conditions `kubectl rollout status` reads.
//! Pure.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::sync::Arc;

use super::{progress, rollout};
use std::time::Duration;

/// Where the rollout stands, for the `Progressing` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The new ReplicaSet was created by this sync.
    Created,
    /// The new ReplicaSet already existed.
    Existing,
}

/// `spec.progressDeadlineSeconds` when unset.
pub const DEFAULT_DEADLINE_SECONDS: i32 = 600;

/// Computes the status of `d` from its ReplicaSets (`new` is one of `all`
/// or was just created with no status yet), and when to look again for
/// the progress deadline.
pub fn status(
    d: &Deployment,
    new_name: &str,
    new: Option<&ReplicaSet>,
    all: &[Arc<ReplicaSet>],
    max_unavailable: i32,
    progress: Progress,
    now: jiff::Timestamp,
) -> (DeploymentStatus, Option<Duration>) {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    // Sums in i64 (no overflow), narrowed for the status fields.
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| rollout::sum(all.iter().map(|rs| f(rs)));
    let replicas = sum(&|rs| st(rs).replicas);
    let ready = sum(&|rs| st(rs).ready_replicas.unwrap_or(0));
    let available = sum(&|rs| st(rs).available_replicas.unwrap_or(0));
    let spec_total = sum(&|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    let updated = new.map_or(0, |rs| st(rs).replicas);
    let generation = d.metadata.generation;
    let previous = d.status.clone().unwrap_or_default();
    let wanted = i64::from(desired);
    let complete = i64::from(updated) == wanted && replicas == wanted && available == wanted;

    let available_condition = if available >= wanted - i64::from(max_unavailable) {
        ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.".to_string())
    } else {
        ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".to_string())
    };
    let old = previous.conditions.as_deref().unwrap_or_default();
    let old_replicas = |replicas: i64, updated: i64| replicas.saturating_sub(updated);
    let progressed = i64::from(updated) > i64::from(previous.updated_replicas.unwrap_or(0))
        || ready > i64::from(previous.ready_replicas.unwrap_or(0))
        || available > i64::from(previous.available_replicas.unwrap_or(0))
        || old_replicas(replicas, i64::from(updated))
            < old_replicas(
                i64::from(previous.replicas.unwrap_or(0)),
                i64::from(previous.updated_replicas.unwrap_or(0)),
            );
    let spec = d.spec.as_ref();
    let (progressing_condition, requeue) = progress::progressing(
        &progress::Seen {
            previous: old.iter().find(|c| c.type_ == "Progressing"),
            paused: spec.and_then(|s| s.paused) == Some(true),
            complete,
            created: progress == Progress::Created,
            progressed,
            deadline_seconds: spec.and_then(|s| s.progress_deadline_seconds).unwrap_or(DEFAULT_DEADLINE_SECONDS),
            new_name,
        },
        now,
    );
    let conditions = vec![condition(old, "Available", available_condition, now), progressing_condition];
    let status = DeploymentStatus {
        observed_generation: generation,
        replicas: Some(rollout::clamp(replicas)),
        updated_replicas: Some(updated),
        ready_replicas: Some(rollout::clamp(ready)),
        available_replicas: Some(rollout::clamp(available)),
        unavailable_replicas: Some(rollout::clamp(spec_total.max(wanted) - available)),
        conditions: Some(conditions),
        collision_count: previous.collision_count,
        terminating_replicas: previous.terminating_replicas,
    };
    (status, requeue)
}

/// A condition that keeps its timestamps unless it actually changed
/// (otherwise every sync would rewrite the status and retrigger itself).
pub(super) fn condition(
    old: &[DeploymentCondition],
    type_: &str,
    (status, reason, message): (&str, &str, String),
    now: jiff::Timestamp,
) -> DeploymentCondition {
    let previous = old.iter().find(|c| c.type_ == type_);
    let same_status = previous.is_some_and(|c| c.status == status);
    let same_content = same_status
        && previous.is_some_and(|c| c.reason.as_deref() == Some(reason) && c.message.as_deref() == Some(&message));
    let keep = |f: fn(&DeploymentCondition) -> Option<Time>| previous.and_then(f);
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_transition_time: if same_status { keep(|c| c.last_transition_time.clone()) } else { Some(Time(now)) },
        last_update_time: if same_content { keep(|c| c.last_update_time.clone()) } else { Some(Time(now)) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().expect("time")
    }

    fn deployment(conditions: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 4},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"conditions": conditions}
        }))
        .expect("deployment")
    }

    fn rs(replicas: i32, available: i32) -> Arc<ReplicaSet> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "web-x"},
                "spec": {"replicas": replicas, "selector": {}},
                "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available}
            }))
            .expect("rs"),
        )
    }

    #[test]
    fn conditions_keep_timestamps_until_they_change() {
        let earlier = "2024-01-01T00:00:00Z";
        let d = deployment(json!([
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability.",
             "lastTransitionTime": earlier, "lastUpdateTime": earlier},
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
             "message": "ReplicaSet \"web-x\" is progressing.",
             "lastTransitionTime": earlier, "lastUpdateTime": earlier}
        ]));
        let new = rs(2, 2);
        let now = at("2024-01-01T00:05:00Z");
        let (s, _) = status(&d, "web-x", Some(&new), std::slice::from_ref(&new), 0, Progress::Existing, now);
        let find = |t: &str| s.conditions.iter().flatten().find(|c| c.type_ == t).cloned().expect("condition");
        let available = find("Available");
        assert_eq!(available.last_update_time.map(|t| t.0), Some(at(earlier)), "unchanged");
        let progressing = find("Progressing");
        assert_eq!(progressing.reason.as_deref(), Some("NewReplicaSetAvailable"));
        assert_eq!(progressing.last_transition_time.map(|t| t.0), Some(at(earlier)), "still True");
        assert_eq!(progressing.last_update_time.map(|t| t.0), Some(now), "reason changed");
        assert_eq!(s.observed_generation, Some(4));
    }

    #[test]
    fn availability_follows_max_unavailable() {
        let d = deployment(json!([]));
        let partial = rs(2, 1);
        let now = at("2024-01-01T00:05:00Z");
        let reason = |max_unavailable| {
            let (s, _) = status(
                &d,
                "web-x",
                Some(&partial),
                std::slice::from_ref(&partial),
                max_unavailable,
                Progress::Existing,
                now,
            );
            let c = s.conditions.unwrap_or_default().into_iter().find(|c| c.type_ == "Available").expect("available");
            (c.status, c.reason.unwrap_or_default(), s.unavailable_replicas)
        };
        assert_eq!(reason(0), ("False".to_string(), "MinimumReplicasUnavailable".to_string(), Some(1)));
        assert_eq!(reason(1), ("True".to_string(), "MinimumReplicasAvailable".to_string(), Some(1)));
    }
}
