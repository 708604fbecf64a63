//! What a Job needs now: pods to create (with their completion indexes)
//! and delete, its new status and conditions, its events, when to look
//! again, and whether its TTL after finishing has run out. Pure;
//! table-tested in `plan_tests.rs`.
//!
//! Counting: terminal pods are counted from the pods that exist (no
//! tracking finalizer). `succeeded` and `failed` never go below what the
//! status already says, so a terminal pod that disappears still counts and
//! none counts twice; what is lost is a failure whose pod was deleted by
//! someone else before any sync saw it fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::pods::{index_of, judge, parse_indexes, render_indexes, Verdict};
use crate::controllers::events::{NORMAL, WARNING};
use crate::controllers::replicaset::plan::deletion_order;
use crate::controllers::selector;

/// Most pods created or deleted in one sync (upstream's burst).
pub const BURST: usize = 500;
/// First delay before replacing a failed pod; doubles per failure.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// Longest delay before replacing a failed pod.
const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// An event to post about the Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// Upstream's reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

/// The actions of one sync of a Job.
#[derive(Debug, Default)]
pub struct Plan {
    /// One entry per pod to create: its completion index when Indexed.
    pub create: Vec<Option<i32>>,
    /// Active pods to delete.
    pub delete: Vec<Arc<Pod>>,
    /// The status to write.
    pub status: JobStatus,
    /// Events to post.
    pub events: Vec<Event>,
    /// Look again after this long (deadline, backoff, TTL).
    pub requeue_after: Option<Duration>,
    /// The Job finished and its `ttlSecondsAfterFinished` ran out: delete it.
    pub delete_job: bool,
}

fn event(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Event {
    Event { type_, reason, message: message.into() }
}

/// True when condition `type_` is True.
pub fn has_condition(status: &JobStatus, type_: &str) -> bool {
    status.conditions.iter().flatten().any(|c| c.type_ == type_ && c.status == "True")
}

/// When the Job finished (Complete or Failed), if it did.
pub fn finished_at(status: &JobStatus) -> Option<Timestamp> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0))
        .or(status.completion_time.as_ref().map(|t| t.0))
}

fn set_condition(status: &mut JobStatus, type_: &str, value: bool, reason: &str, message: &str, now: Timestamp) {
    let value = if value { "True" } else { "False" };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != value {
            c.last_transition_time = Some(Time(now));
        }
        c.status = value.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
        c.last_probe_time = Some(Time(now));
        return;
    }
    conditions.push(JobCondition {
        type_: type_.into(),
        status: value.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
}

fn secs(d: i64) -> Duration {
    Duration::from_secs(d.max(0).unsigned_abs())
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The pods of one Job, by state.
struct Observed {
    active: Vec<Arc<Pod>>,
    succeeded: Vec<Arc<Pod>>,
    failed: Vec<Arc<Pod>>,
}

fn observe(pods: &[Arc<Pod>]) -> Observed {
    let mut o = Observed { active: Vec::new(), succeeded: Vec::new(), failed: Vec::new() };
    for pod in pods {
        match selector::phase(pod) {
            "Succeeded" => o.succeeded.push(pod.clone()),
            "Failed" => o.failed.push(pod.clone()),
            _ if pod.metadata.deletion_timestamp.is_none() => o.active.push(pod.clone()),
            _ => {}
        }
    }
    o
}

/// When the last failed pod finished (its containers' latest `finishedAt`).
fn last_failure(failed: &[Arc<Pod>]) -> Option<Timestamp> {
    failed
        .iter()
        .filter_map(|p| {
            let s = p.status.as_ref()?;
            let finished = s
                .container_statuses
                .iter()
                .flatten()
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref().map(|t| t.0))
                .max();
            finished.or(p.metadata.creation_timestamp.as_ref().map(|t| t.0))
        })
        .max()
}

/// Computes the plan for `job` given the pods it controls.
pub fn plan(job: &Job, pods: &[Arc<Pod>], now: Timestamp) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let mut plan = Plan { status: old.clone(), ..Plan::default() };
    let observed = observe(pods);
    if job.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    if let Some(done) = finished_at(&old) {
        plan.delete = observed.active;
        plan.status.active = Some(0);
        plan.status.ready = Some(0);
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            let expires = done.as_second().saturating_add(i64::from(ttl));
            if now.as_second() >= expires {
                plan.delete_job = true;
            } else {
                plan.requeue_after = Some(secs(expires.saturating_sub(now.as_second())));
            }
        }
        return plan;
    }
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions.map(|c| c.max(0));
    let parallelism = usize::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0);
    let status = &mut plan.status;

    // Succeeded: a set of indexes when Indexed, else a count.
    let mut done_indexes = BTreeSet::new();
    let succeeded = if let (true, Some(c)) = (indexed, completions) {
        done_indexes = parse_indexes(old.completed_indexes.as_deref().unwrap_or_default(), c);
        done_indexes.extend(observed.succeeded.iter().filter_map(|p| index_of(p, c)));
        status.completed_indexes = Some(render_indexes(&done_indexes));
        count(done_indexes.len())
    } else {
        old.succeeded.unwrap_or(0).max(count(observed.succeeded.len()))
    };
    status.succeeded = Some(succeeded);

    // Failed: judged by the pod failure policy.
    let mut fail_job = None;
    let mut counted = 0usize;
    for pod in &observed.failed {
        match judge(spec.pod_failure_policy.as_ref(), pod) {
            Verdict::FailJob(rule) => {
                counted = counted.saturating_add(1);
                fail_job.get_or_insert_with(|| {
                    let name = pod.metadata.name.as_deref().unwrap_or_default();
                    format!("Pod {name} has condition or exit code matching FailJob rule at index {rule}")
                });
            }
            Verdict::Count => counted = counted.saturating_add(1),
            Verdict::Ignore => {}
        }
    }
    let failed = old.failed.unwrap_or(0).max(count(counted));
    status.failed = Some(failed);

    let suspended = spec.suspend == Some(true);
    let was_suspended = has_condition(&old, "Suspended");
    if !suspended && (status.start_time.is_none() || was_suspended) {
        status.start_time = Some(Time(now));
    }
    let started = status.start_time.as_ref().map(|t| t.0);

    // Finished?
    let deadline = spec
        .active_deadline_seconds
        .zip(started)
        .filter(|_| !suspended)
        .map(|(ads, start)| start.as_second().saturating_add(ads));
    let failure = if let Some(message) = fail_job {
        Some(("PodFailurePolicy", message))
    } else if failed > spec.backoff_limit.unwrap_or(crate::apiserver::batch::DEFAULT_BACKOFF_LIMIT) {
        Some(("BackoffLimitExceeded", "Job has reached the specified backoff limit".to_string()))
    } else if deadline.is_some_and(|d| now.as_second() >= d) {
        Some(("DeadlineExceeded", "Job was active longer than specified deadline".to_string()))
    } else {
        None
    };
    if let Some((reason, message)) = failure {
        set_condition(status, "FailureTarget", true, reason, &message, now);
        set_condition(status, "Failed", true, reason, &message, now);
        status.active = Some(0);
        status.ready = Some(0);
        plan.delete = observed.active;
        plan.events.push(event(WARNING, reason, message));
        plan.requeue_after = spec.ttl_seconds_after_finished.map(|t| secs(t.into()));
        return plan;
    }
    let complete = match completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && observed.active.is_empty(),
    };
    if complete {
        set_condition(
            status,
            "SuccessCriteriaMet",
            true,
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            now,
        );
        set_condition(status, "Complete", true, "CompletionsReached", "Reached expected number of succeeded pods", now);
        status.completion_time = Some(Time(now));
        status.active = Some(0);
        status.ready = Some(0);
        plan.delete = observed.active;
        plan.events.push(event(NORMAL, "Completed", "Job completed"));
        plan.requeue_after = spec.ttl_seconds_after_finished.map(|t| secs(t.into()));
        return plan;
    }

    if suspended {
        set_condition(status, "Suspended", true, "JobSuspended", "Job suspended", now);
        if !was_suspended {
            plan.events.push(event(NORMAL, "Suspended", "Job suspended"));
        }
        status.active = Some(0);
        status.ready = Some(0);
        plan.delete = observed.active;
        return plan;
    }
    if was_suspended {
        set_condition(status, "Suspended", false, "JobResumed", "Job resumed", now);
        plan.events.push(event(NORMAL, "Resumed", "Job resumed"));
    }
    plan.requeue_after = deadline.map(|d| secs(d.saturating_sub(now.as_second())));

    // How many should run, and which to start or stop.
    let remaining = completions.map(|c| usize::try_from(c.saturating_sub(succeeded)).unwrap_or(0));
    let want = match remaining {
        Some(left) => parallelism.min(left),
        None if succeeded > 0 => parallelism.min(observed.active.len()),
        None => parallelism,
    };
    let mut active = observed.active;
    match (indexed, completions) {
        (true, Some(c)) => plan_indexed(&mut plan, &mut active, &done_indexes, c, want),
        _ => {
            if active.len() > want {
                active.sort_by(|a, b| deletion_order(a, b));
                let extra = (active.len() - want).min(BURST);
                plan.delete = active.drain(..extra).collect();
            } else {
                plan.create = vec![None; (want - active.len()).min(BURST)];
            }
        }
    }

    // Back off before replacing failed pods: 10 s, doubling per failure.
    if !plan.create.is_empty() && failed > 0 {
        let shift = u32::try_from(failed.saturating_sub(1)).unwrap_or(u32::MAX).min(6);
        let delay = BACKOFF_BASE.saturating_mul(1 << shift).min(BACKOFF_MAX);
        if let Some(last) = last_failure(&observed.failed) {
            let ready_at = last.as_second().saturating_add(i64::try_from(delay.as_secs()).unwrap_or(i64::MAX));
            if now.as_second() < ready_at {
                plan.create.clear();
                let wait = secs(ready_at - now.as_second());
                plan.requeue_after = Some(plan.requeue_after.map_or(wait, |r| r.min(wait)));
            }
        }
    }
    let status = &mut plan.status;
    status.active = Some(count(active.len()));
    status.ready = Some(count(active.iter().filter(|p| selector::is_ready(p)).count()));
    plan
}

/// Indexed: one active pod per pending index; duplicates, finished and
/// out-of-range indexes are deleted.
fn plan_indexed(plan: &mut Plan, active: &mut Vec<Arc<Pod>>, done: &BTreeSet<i32>, completions: i32, want: usize) {
    let mut by_index: BTreeMap<i32, Arc<Pod>> = BTreeMap::new();
    let mut extra = Vec::new();
    for pod in active.drain(..) {
        match index_of(&pod, completions) {
            Some(ix) if !done.contains(&ix) && !by_index.contains_key(&ix) => {
                by_index.insert(ix, pod);
            }
            _ => extra.push(pod),
        }
    }
    while by_index.len() > want {
        if let Some((_, pod)) = by_index.pop_last() {
            extra.push(pod);
        }
    }
    extra.truncate(BURST);
    plan.delete = extra;
    let room = want.saturating_sub(by_index.len()).min(BURST);
    plan.create =
        (0..completions).filter(|ix| !done.contains(ix) && !by_index.contains_key(ix)).take(room).map(Some).collect();
    active.extend(by_index.into_values());
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
