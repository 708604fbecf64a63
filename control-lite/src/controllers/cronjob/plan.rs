//! What a CronJob needs at instant `now` (the clock is a parameter, so every
//! decision is tested without waiting): which Job to start for the latest
//! missed schedule time, which Jobs to delete (`Replace`, and finished Jobs
//! beyond the history limits), its new status, its events, and when the
//! next schedule time comes. Pure; table-tested in `plan_tests.rs`.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::controllers::events::{NORMAL, WARNING};
use crate::controllers::job::plan::{finished_at, has_condition, Event};
use crate::controllers::selector;
use crate::cron::Schedule;

/// Most missed start times looked at (upstream: more is reported, and only
/// the latest is started).
pub const MAX_MISSED: usize = 100;
/// Annotation with the schedule time a Job was created for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Small slack after a schedule time before looking again.
const SLACK: Duration = Duration::from_millis(100);

/// The actions of one sync of a CronJob.
#[derive(Debug, Default)]
pub struct Plan {
    /// The Job to start now.
    pub create: Option<Job>,
    /// Jobs to delete (replaced, or past the history limits).
    pub delete: Vec<Arc<Job>>,
    /// The status to write.
    pub status: CronJobStatus,
    /// Events to post.
    pub events: Vec<Event>,
    /// Look again after this long (the next schedule time).
    pub requeue_after: Option<Duration>,
}

fn event(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Event {
    Event { type_, reason, message: message.into() }
}

fn name_of(job: &Job) -> &str {
    job.metadata.name.as_deref().unwrap_or_default()
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// `<cronjob>-<scheduled time in minutes since the epoch>`, as upstream names them.
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// The Job a CronJob starts for `scheduled`.
pub fn job_for(cj: &CronJob, scheduled: Timestamp) -> Job {
    let spec = cj.spec.clone().unwrap_or_default();
    let template = spec.job_template;
    let meta = template.metadata.unwrap_or_default();
    let name = cj.metadata.name.clone().unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), scheduled.to_string());
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&name, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![selector::controller_ref(
                "batch/v1",
                "CronJob",
                &name,
                cj.metadata.uid.as_deref().unwrap_or_default(),
            )]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

fn until(t: Timestamp, now: Timestamp) -> Duration {
    let ms = t.as_millisecond().saturating_sub(now.as_millisecond()).max(0);
    Duration::from_millis(ms.unsigned_abs()) + SLACK
}

/// Computes the plan for `cj` given the Jobs it controls.
pub fn plan(cj: &CronJob, jobs: &[Arc<Job>], now: Timestamp) -> Plan {
    let spec = cj.spec.clone().unwrap_or_default();
    let old = cj.status.clone().unwrap_or_default();
    let mut plan = Plan { status: old.clone(), ..Plan::default() };
    let was_active: Vec<&str> = old.active.iter().flatten().filter_map(|r| r.name.as_deref()).collect();
    let (finished, active): (Vec<&Arc<Job>>, Vec<&Arc<Job>>) =
        jobs.iter().partition(|j| finished_at(j.status.as_ref().unwrap_or(&Default::default())).is_some());
    let mut active: Vec<&Arc<Job>> = active.into_iter().filter(|j| j.metadata.deletion_timestamp.is_none()).collect();
    for job in &finished {
        if was_active.contains(&name_of(job)) {
            let status = job.status.clone().unwrap_or_default();
            let outcome = if has_condition(&status, "Complete") { "Complete" } else { "Failed" };
            plan.events.push(event(
                NORMAL,
                "SawCompletedJob",
                format!("Saw completed job: {}, condition: {outcome}", name_of(job)),
            ));
        }
    }
    let last_success = finished
        .iter()
        .filter_map(|j| j.status.as_ref())
        .filter(|s| has_condition(s, "Complete"))
        .filter_map(|s| s.completion_time.as_ref().map(|t| t.0))
        .max();
    if let Some(t) = last_success.filter(|t| old.last_successful_time.as_ref().is_none_or(|o| o.0 < *t)) {
        plan.status.last_successful_time = Some(Time(t));
    }
    plan.delete = over_history(&finished, spec.successful_jobs_history_limit, spec.failed_jobs_history_limit);
    let set_active = |plan: &mut Plan, active: &[&Arc<Job>]| {
        let refs: Vec<ObjectReference> = active.iter().map(|j| reference(j)).collect();
        plan.status.active = (!refs.is_empty()).then_some(refs);
    };
    set_active(&mut plan, &active);
    if cj.metadata.deletion_timestamp.is_some() || spec.suspend == Some(true) {
        return plan;
    }
    let schedule = match Schedule::parse(&spec.schedule, spec.time_zone.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            let reason = match e {
                crate::cron::Error::TimeZone(_) => "UnknownTimeZone",
                _ => "InvalidSchedule",
            };
            plan.events.push(event(WARNING, reason, e.to_string()));
            return plan;
        }
    };
    plan.requeue_after = schedule.next_after(now).map(|t| until(t, now));

    // The latest schedule time missed since the last start (or creation).
    let mut earliest = old
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .or(cj.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    if let Some(deadline) = spec.starting_deadline_seconds {
        let window_start = now.as_second().saturating_sub(deadline.max(0));
        if let Ok(t) = Timestamp::from_second(window_start) {
            earliest = earliest.max(t);
        }
    }
    let missed = schedule.times_between(earliest, now, MAX_MISSED);
    if missed.too_many {
        plan.events.push(event(
            WARNING,
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
        ));
    }
    let Some(scheduled) = missed.latest else { return plan };
    if let Some(deadline) = spec.starting_deadline_seconds {
        if scheduled.as_second().saturating_add(deadline) < now.as_second() {
            plan.events.push(event(
                WARNING,
                "MissSchedule",
                format!("Missed scheduled time to start a job: {scheduled}"),
            ));
            return plan;
        }
    }
    let name = job_name(cj.metadata.name.as_deref().unwrap_or_default(), scheduled);
    if jobs.iter().any(|j| name_of(j) == name) {
        return plan;
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            plan.events.push(event(
                NORMAL,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            ));
            return plan;
        }
        Some("Replace") => {
            plan.delete.extend(active.drain(..).cloned());
            set_active(&mut plan, &active);
        }
        _ => {}
    }
    let job = job_for(cj, scheduled);
    plan.status.active.get_or_insert_with(Vec::new).push(reference(&job));
    plan.status.last_schedule_time = Some(Time(scheduled));
    plan.create = Some(job);
    plan
}

/// Finished Jobs beyond the history limits, oldest first.
fn over_history(finished: &[&Arc<Job>], successful: Option<i32>, failed: Option<i32>) -> Vec<Arc<Job>> {
    let mut out = Vec::new();
    for (complete, limit) in [(true, successful), (false, failed)] {
        let Some(limit) = limit else { continue };
        let mut of_kind: Vec<&Arc<Job>> = finished
            .iter()
            .copied()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .filter(|j| has_condition(j.status.as_ref().unwrap_or(&Default::default()), "Complete") == complete)
            .collect();
        of_kind.sort_by_key(|j| {
            let start = j.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0);
            (start.or(j.metadata.creation_timestamp.as_ref().map(|t| t.0)), j.metadata.name.clone())
        });
        let keep = usize::try_from(limit).unwrap_or(0);
        let extra = of_kind.len().saturating_sub(keep);
        out.extend(of_kind.into_iter().take(extra).cloned());
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
