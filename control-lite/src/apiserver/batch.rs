//! batch/v1 on the write path: upstream's defaults for Jobs and CronJobs,
//! and the selector a Job gets on create (`batch.kubernetes.io/controller-uid`
//! and `batch.kubernetes.io/job-name` labels on its pod template, unless
//! `spec.manualSelector` is true). Pure functions over typed structs.

use std::collections::BTreeMap;

use bosun_resources::pod_defaults::default_pod_spec;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

/// Label (and selector key) with the Job's uid.
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
/// Label with the Job's name.
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
/// The legacy spellings upstream still writes beside the prefixed ones.
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";
/// Default `spec.backoffLimit`.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 6;

/// Upstream `SetDefaults_Job`.
pub fn default_job(job: &mut Job) {
    let spec = job.spec.get_or_insert_with(Default::default);
    match (spec.completions, spec.parallelism) {
        (None, None) => {
            spec.completions = Some(1);
            spec.parallelism = Some(1);
        }
        (_, None) => spec.parallelism = Some(1),
        _ => {}
    }
    spec.backoff_limit.get_or_insert(DEFAULT_BACKOFF_LIMIT);
    spec.completion_mode.get_or_insert_with(|| "NonIndexed".into());
    spec.suspend.get_or_insert(false);
    let replacement = if spec.pod_failure_policy.is_some() { "Failed" } else { "TerminatingOrFailed" };
    spec.pod_replacement_policy.get_or_insert_with(|| replacement.into());
    if let Some(policy) = spec.pod_failure_policy.as_mut() {
        for rule in &mut policy.rules {
            for pattern in rule.on_pod_conditions.iter_mut().flatten() {
                if pattern.status.is_empty() {
                    pattern.status = "True".into();
                }
            }
        }
    }
    default_pod_spec(spec.template.spec.get_or_insert_with(PodSpec::default));
}

/// Upstream `SetDefaults_CronJob` (the job template's pod spec gets pod defaults).
pub fn default_cronjob(cj: &mut CronJob) {
    let spec = cj.spec.get_or_insert_with(Default::default);
    spec.concurrency_policy.get_or_insert_with(|| "Allow".into());
    spec.suspend.get_or_insert(false);
    spec.successful_jobs_history_limit.get_or_insert(3);
    spec.failed_jobs_history_limit.get_or_insert(1);
    let job_spec = spec.job_template.spec.get_or_insert_with(Default::default);
    default_pod_spec(job_spec.template.spec.get_or_insert_with(PodSpec::default));
}

/// On create, unless `spec.manualSelector`: labels the pod template with the
/// Job's uid and name and, if no selector was given, selects on the uid.
/// (A selector given without `manualSelector` is refused by validation.)
pub fn generate_selector(job: &mut Job) {
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let Some(spec) = job.spec.as_mut() else { return };
    if spec.manual_selector == Some(true) {
        return;
    }
    let labels =
        spec.template.metadata.get_or_insert_with(ObjectMeta::default).labels.get_or_insert_with(BTreeMap::new);
    for key in [CONTROLLER_UID, LEGACY_CONTROLLER_UID] {
        labels.entry(key.into()).or_insert_with(|| uid.clone());
    }
    for key in [JOB_NAME, LEGACY_JOB_NAME] {
        labels.entry(key.into()).or_insert_with(|| name.clone());
    }
    spec.selector.get_or_insert_with(|| LabelSelector {
        match_labels: Some([(CONTROLLER_UID.to_string(), uid)].into()),
        match_expressions: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::defaults;
    use crate::apiserver::registry::Kind;
    use serde_json::json;

    #[test]
    fn job_gets_upstream_defaults_and_a_generated_selector() {
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "uid": "u1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}});
        defaults::apply(Kind::Job, &mut j);
        defaults::on_create(Kind::Job, &mut j);
        assert_eq!(j["spec"]["completions"], 1);
        assert_eq!(j["spec"]["parallelism"], 1);
        assert_eq!(j["spec"]["backoffLimit"], 6);
        assert_eq!(j["spec"]["completionMode"], "NonIndexed");
        assert_eq!(j["spec"]["suspend"], false);
        assert_eq!(j["spec"]["selector"], json!({"matchLabels": {CONTROLLER_UID: "u1"}}));
        let labels = &j["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels[JOB_NAME], "pi");
        assert_eq!(labels["controller-uid"], "u1");
        assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
    }

    #[test]
    fn work_queue_job_keeps_completions_unset_and_manual_selector_is_left_alone() {
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "q", "uid": "u"},
            "spec": {"parallelism": 3, "manualSelector": true, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        defaults::apply(Kind::Job, &mut j);
        defaults::on_create(Kind::Job, &mut j);
        assert!(j["spec"].get("completions").is_none());
        assert_eq!(j["spec"]["parallelism"], 3);
        assert_eq!(j["spec"]["selector"], json!({"matchLabels": {"a": "b"}}));
        assert_eq!(j["spec"]["template"]["metadata"]["labels"], json!({"a": "b"}));
    }

    #[test]
    fn cronjob_defaults() {
        let mut c = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "i"}]}}}}}});
        defaults::apply(Kind::CronJob, &mut c);
        assert_eq!(c["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(c["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(c["spec"]["failedJobsHistoryLimit"], 1);
        assert_eq!(c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    }
}
