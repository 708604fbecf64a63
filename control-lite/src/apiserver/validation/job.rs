//! Jobs and CronJobs (upstream `ValidateJob`, `ValidateCronJob`): counts
//! and deadlines non-negative, Indexed jobs bounded, the selector generated
//! (or `manualSelector`) and matching the template, a template that
//! restarts `Never` or `OnFailure`, a well-formed pod failure policy; a
//! CronJob's schedule, time zone and concurrency policy.

use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec, PodFailurePolicy};
use serde_json::Value;

use super::meta::validate_labels;
use super::pod::validate_pod_spec;
use super::podrules::{validate_spec_rules, SpecOf};
use super::{at_least, forbidden, invalid_value, one_of, Causes};
use crate::apiserver::batch::CONTROLLER_UID;
use crate::apiserver::schema::typed;
use crate::apiserver::selectors::{labels_of, LabelSelector};
use crate::apiserver::status::Cause;

/// Most completions and parallelism of an Indexed Job (upstream's bound).
pub const MAX_INDEXED_COMPLETIONS: i32 = 100_000;
/// Most rules in a pod failure policy, and patterns or values in one rule.
const MAX_POLICY_RULES: usize = 20;
const MAX_EXIT_CODE_VALUES: usize = 255;
/// Longest CronJob name (its Jobs append 11 characters).
const MAX_CRONJOB_NAME: usize = 52;

/// A Job object.
pub fn validate_job(obj: &Value, out: &mut Causes) {
    let Some(job) = typed::<Job>(obj) else { return };
    let spec = job.spec.unwrap_or_default();
    if spec.manual_selector != Some(true) {
        let uid = job.metadata.uid.unwrap_or_default();
        let generated = spec
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .is_some_and(|m| m.len() == 1 && m.get(CONTROLLER_UID) == Some(&uid))
            && spec.selector.as_ref().is_some_and(|s| s.match_expressions.as_ref().is_none_or(Vec::is_empty));
        if !generated {
            out.push(invalid_value(
                "spec.selector",
                serde_json::to_value(&spec.selector).unwrap_or(Value::Null),
                "`selector` not auto-generated",
            ));
        }
    }
    validate_job_spec(&spec, "spec", true, out);
}

/// A CronJob object.
pub fn validate_cronjob(obj: &Value, out: &mut Causes) {
    let Some(cj) = typed::<CronJob>(obj) else { return };
    let name = cj.metadata.name.as_deref().unwrap_or_default();
    if name.len() > MAX_CRONJOB_NAME {
        out.push(invalid_value("metadata.name", name, "must be no more than 52 characters"));
    }
    let spec = cj.spec.unwrap_or_default();
    if spec.schedule.is_empty() {
        out.push(Cause::required("spec.schedule"));
    } else {
        match crate::cron::Schedule::parse(&spec.schedule, spec.time_zone.as_deref()) {
            Ok(_) => {}
            Err(crate::cron::Error::TimeZone(zone)) => {
                out.push(Cause::invalid("spec.timeZone", &zone, "unknown time zone"));
            }
            Err(e) => out.push(Cause::invalid("spec.schedule", &spec.schedule, &e.to_string())),
        }
    }
    one_of("spec.concurrencyPolicy", spec.concurrency_policy.as_deref(), &["Allow", "Forbid", "Replace"], out);
    for (field, value) in [
        ("spec.startingDeadlineSeconds", spec.starting_deadline_seconds),
        ("spec.successfulJobsHistoryLimit", spec.successful_jobs_history_limit.map(i64::from)),
        ("spec.failedJobsHistoryLimit", spec.failed_jobs_history_limit.map(i64::from)),
    ] {
        if let Some(v) = value {
            at_least(field, v, 0, out);
        }
    }
    if let Some(labels) = spec.job_template.metadata.as_ref().and_then(|m| m.labels.as_ref()) {
        validate_labels(labels, "spec.jobTemplate.metadata.labels", out);
    }
    match spec.job_template.spec.as_ref() {
        Some(job_spec) => validate_job_spec(job_spec, "spec.jobTemplate.spec", false, out),
        None => out.push(Cause::required("spec.jobTemplate.spec")),
    }
}

/// A Job spec at `at` (`spec` or `spec.jobTemplate.spec`).
fn validate_job_spec(spec: &JobSpec, at: &str, selector_required: bool, out: &mut Causes) {
    for (field, value) in [
        ("parallelism", spec.parallelism.map(i64::from)),
        ("completions", spec.completions.map(i64::from)),
        ("backoffLimit", spec.backoff_limit.map(i64::from)),
        ("activeDeadlineSeconds", spec.active_deadline_seconds),
        ("ttlSecondsAfterFinished", spec.ttl_seconds_after_finished.map(i64::from)),
    ] {
        if let Some(v) = value {
            at_least(format!("{at}.{field}"), v, 0, out);
        }
    }
    let mode = spec.completion_mode.as_deref();
    one_of(format!("{at}.completionMode"), mode, &["NonIndexed", "Indexed"], out);
    if mode == Some("Indexed") {
        match spec.completions {
            None => out.push(super::required_because(format!("{at}.completions"), "when completion mode is Indexed")),
            Some(c) if c > MAX_INDEXED_COMPLETIONS => out.push(invalid_value(
                format!("{at}.completions"),
                c,
                "must be less than or equal to 100000 when completion mode is Indexed",
            )),
            Some(_) => {}
        }
        if let Some(p) = spec.parallelism.filter(|p| *p > MAX_INDEXED_COMPLETIONS) {
            out.push(invalid_value(
                format!("{at}.parallelism"),
                p,
                "must be less than or equal to 100000 when completion mode is Indexed",
            ));
        }
    }
    let selector = spec.selector.as_ref().map(|s| serde_json::to_value(s).unwrap_or(Value::Null));
    if let Some(m) = spec.selector.as_ref().and_then(|s| s.match_labels.as_ref()) {
        validate_labels(m, &format!("{at}.selector.matchLabels"), out);
    }
    let template_json = serde_json::to_value(&spec.template).unwrap_or(Value::Null);
    let template_labels = labels_of(&template_json);
    validate_labels(&template_labels, &format!("{at}.template.metadata.labels"), out);
    match selector.map(|s| LabelSelector::from_api(&s)) {
        Some(sel) if sel.0.is_empty() && selector_required => out.push(Cause::required(format!("{at}.selector"))),
        Some(sel) if !sel.0.is_empty() && !sel.matches(&template_labels) => out.push(Cause::invalid(
            format!("{at}.template.metadata.labels"),
            "",
            "`selector` does not match template `labels`",
        )),
        None if selector_required => out.push(Cause::required(format!("{at}.selector"))),
        _ => {}
    }
    let template_at = format!("{at}.template.spec");
    validate_pod_spec(spec.template.spec.as_ref(), &template_at, out);
    let restart = spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    if !["OnFailure", "Never"].contains(&restart) {
        out.push(Cause::not_supported(format!("{template_at}.restartPolicy"), restart, &["OnFailure", "Never"]));
    }
    if let Some(pod) = spec.template.spec.as_ref() {
        validate_spec_rules(pod, &template_at, SpecOf::Template, out);
    }
    if let Some(policy) = &spec.pod_failure_policy {
        if restart != "Never" {
            out.push(Cause::not_supported(format!("{template_at}.restartPolicy"), restart, &["Never"]));
        }
        validate_failure_policy(policy, &format!("{at}.podFailurePolicy"), out);
    }
}

fn validate_failure_policy(policy: &PodFailurePolicy, at: &str, out: &mut Causes) {
    if policy.rules.len() > MAX_POLICY_RULES {
        out.push(Cause {
            reason: "FieldValueTooMany",
            field: format!("{at}.rules"),
            message: format!("Too many: {}: must have at most {MAX_POLICY_RULES} items", policy.rules.len()),
        });
        return;
    }
    for (i, rule) in policy.rules.iter().enumerate() {
        let at = format!("{at}.rules[{i}]");
        one_of(format!("{at}.action"), Some(rule.action.as_str()), &["FailJob", "FailIndex", "Ignore", "Count"], out);
        match (&rule.on_exit_codes, &rule.on_pod_conditions) {
            (Some(_), Some(c)) if !c.is_empty() => out.push(invalid_value(
                at.clone(),
                "",
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (None, None) => {
                out.push(invalid_value(at.clone(), "", "specifying one of OnExitCodes and OnPodConditions is required"))
            }
            _ => {}
        }
        if let Some(codes) = &rule.on_exit_codes {
            let at = format!("{at}.onExitCodes");
            one_of(format!("{at}.operator"), Some(codes.operator.as_str()), &["In", "NotIn"], out);
            if codes.values.is_empty() || codes.values.len() > MAX_EXIT_CODE_VALUES {
                out.push(invalid_value(
                    format!("{at}.values"),
                    codes.values.len(),
                    "must have between 1 and 255 values",
                ));
            }
            for (j, v) in codes.values.iter().enumerate().take(MAX_EXIT_CODE_VALUES) {
                if codes.operator == "In" && *v == 0 {
                    out.push(invalid_value(format!("{at}.values[{j}]"), 0, "must not be 0 for the In operator"));
                }
                if codes.values[..j].contains(v) {
                    out.push(Cause::duplicate(format!("{at}.values[{j}]"), &v.to_string()));
                }
            }
        }
        for (j, pattern) in rule.on_pod_conditions.iter().flatten().enumerate().take(MAX_POLICY_RULES) {
            let status = Some(pattern.status.as_str());
            one_of(format!("{at}.onPodConditions[{j}].status"), status, &["True", "False", "Unknown"], out);
            if pattern.type_.is_empty() {
                out.push(Cause::required(format!("{at}.onPodConditions[{j}].type")));
            }
        }
    }
}

/// Job fields an update may not change (upstream `ValidateJobUpdate`):
/// the selector, the completion mode, and the template unless the Job is suspended.
pub fn validate_job_update(old: &Value, new: &Value, out: &mut Causes) {
    for field in ["selector", "completionMode", "manualSelector"] {
        if old.pointer(&format!("/spec/{field}")) != new.pointer(&format!("/spec/{field}")) {
            out.push(super::update::immutable(format!("spec.{field}")));
        }
    }
    let suspended = old.pointer("/spec/suspend") == Some(&Value::Bool(true));
    if !suspended && old.pointer("/spec/template") != new.pointer("/spec/template") {
        out.push(forbidden("spec.template", "field is immutable"));
    }
    // Elastic Indexed Jobs may scale completions together with parallelism.
    let elastic = new.pointer("/spec/completionMode").and_then(Value::as_str) == Some("Indexed")
        && new.pointer("/spec/completions") == new.pointer("/spec/parallelism");
    if old.pointer("/spec/completions") != new.pointer("/spec/completions") && !elastic {
        out.push(super::update::immutable("spec.completions"));
    }
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;
