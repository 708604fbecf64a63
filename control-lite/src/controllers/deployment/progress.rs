//! The Deployment `Progressing` condition and the progress deadline
//! (`spec.progressDeadlineSeconds`), as `kubectl rollout status` reads
//! them. Pure: the clock is an argument; the answer includes when to sync
//! again so the deadline is noticed without polling.

use k8s_openapi::api::apps::v1::DeploymentCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

/// Reason once the deadline passed without progress (`kubectl rollout
/// status` fails on it).
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// Reason while the Deployment is paused.
pub const PAUSED: &str = "DeploymentPaused";
/// Reason for the first sync after a resume.
pub const RESUMED: &str = "DeploymentResumed";
/// Reason once the rollout completed.
pub const COMPLETE: &str = "NewReplicaSetAvailable";
/// Extra delay after the deadline before the requeued sync, so it lands
/// past the (second-granular) deadline.
const REQUEUE_SLACK: Duration = Duration::from_secs(1);

/// What one sync observed.
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    /// The `Progressing` condition currently stored.
    pub previous: Option<&'a DeploymentCondition>,
    /// `spec.paused`.
    pub paused: bool,
    /// All replicas updated and available, none old.
    pub complete: bool,
    /// This sync created the new ReplicaSet.
    pub created: bool,
    /// Counts moved forward since the stored status (more updated, ready
    /// or available replicas, or fewer old ones).
    pub progressed: bool,
    /// `spec.progressDeadlineSeconds` (defaulted).
    pub deadline_seconds: i32,
    /// Name of the new ReplicaSet, for messages.
    pub new_name: &'a str,
}

fn fresh(status: &str, reason: &str, message: String, now: jiff::Timestamp) -> DeploymentCondition {
    DeploymentCondition {
        type_: "Progressing".to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_transition_time: Some(Time(now)),
        last_update_time: Some(Time(now)),
    }
}

/// A condition that records progress now: `lastUpdateTime` moves,
/// `lastTransitionTime` stays while the status does not change.
fn progressed(
    previous: Option<&DeploymentCondition>,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
) -> DeploymentCondition {
    let mut c = fresh("True", reason, message, now);
    if let Some(p) = previous.filter(|p| p.status == "True") {
        c.last_transition_time = p.last_transition_time.clone().or(c.last_transition_time);
    }
    c
}

/// The `Progressing` condition for this sync and, while the rollout is
/// still running against a deadline, how long until the deadline passes.
pub fn progressing(seen: &Seen<'_>, now: jiff::Timestamp) -> (DeploymentCondition, Option<Duration>) {
    let name = seen.new_name;
    let previous = seen.previous;
    let previous_reason = previous.and_then(|c| c.reason.as_deref());
    let deadline = Duration::from_secs(u64::try_from(seen.deadline_seconds).unwrap_or(0));
    // i32::MAX means "no deadline", as upstream.
    let has_deadline = seen.deadline_seconds != i32::MAX;
    let full_wait = has_deadline.then(|| deadline.saturating_add(REQUEUE_SLACK));
    if seen.paused {
        if previous_reason == Some(PAUSED) {
            return (previous.cloned().unwrap_or_else(|| fresh("Unknown", PAUSED, String::new(), now)), None);
        }
        return (fresh("Unknown", PAUSED, "Deployment is paused".to_string(), now), None);
    }
    if seen.complete {
        let message = format!("ReplicaSet \"{name}\" has successfully progressed.");
        let old: Vec<DeploymentCondition> = previous.cloned().into_iter().collect();
        return (super::status::condition(&old, "Progressing", ("True", COMPLETE, message), now), None);
    }
    if seen.created {
        let c = progressed(previous, "NewReplicaSetCreated", format!("Created new replica set \"{name}\""), now);
        return (c, full_wait);
    }
    if previous_reason == Some(PAUSED) {
        return (fresh("Unknown", RESUMED, "Deployment is resumed".to_string(), now), full_wait);
    }
    let Some(prev) = previous else {
        return (progressed(None, "FoundNewReplicaSet", format!("Found new replica set \"{name}\""), now), full_wait);
    };
    if seen.progressed {
        let c = progressed(previous, "ReplicaSetUpdated", format!("ReplicaSet \"{name}\" is progressing."), now);
        return (c, full_wait);
    }
    // No progress: the condition stays as it is until the deadline passes.
    if previous_reason == Some(TIMED_OUT) || previous_reason == Some(COMPLETE) || !has_deadline {
        return (prev.clone(), None);
    }
    let since = prev.last_update_time.as_ref().map_or(now, |t| t.0);
    let elapsed = Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO);
    if elapsed > deadline {
        let message = format!("ReplicaSet \"{name}\" has timed out progressing.");
        return (fresh("False", TIMED_OUT, message, now), None);
    }
    (prev.clone(), Some(deadline.saturating_sub(elapsed).saturating_add(REQUEUE_SLACK)))
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
