//! batch/v1 on the real stack (issue 13), one `bosun up` cluster shared by
//! every scenario, driven by the real kubectl. Everything is created first
//! (the CronJob before the rest, since its first run waits for the next
//! minute), then each outcome is awaited:
//! - `kubectl create job` of a command that exits 0 completes
//!   (`kubectl wait --for=condition=complete`) and `kubectl get jobs` prints
//!   kubectl's columns (and `kubectl get all` lists Jobs and CronJobs);
//! - completions 3 / parallelism 2 ends with 3 succeeded pods, never more
//!   than 2 at a time (from the pods' recorded start and finish times);
//! - a failing Job with backoffLimit 1 fails with BackoffLimitExceeded after 2 pods;
//! - each pod of an Indexed Job sees its own JOB_COMPLETION_INDEX;
//! - `ttlSecondsAfterFinished: 0` deletes the Job (and its pods) once it completes;
//! - a template with `restartPolicy: Always` is refused with 422 and the field path;
//! - `kubectl create cronjob --schedule='*/1 * * * *'` creates a Job named
//!   `<cronjob>-<minutes since epoch>` that completes, and the CronJob's status
//!   and columns show it; `kubectl create job --from=cronjob/...` makes a
//!   Job owned by the CronJob that completes.

mod support;

use std::collections::BTreeSet;

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use support::cluster::Cluster;
use support::wait::wait_until;

fn job_manifest(name: &str, image: &str, spec: &str, script: &str) -> String {
    format!(
        r#"{{"apiVersion": "batch/v1", "kind": "Job", "metadata": {{"name": "{name}"}},
           "spec": {{{spec} "template": {{"spec": {{"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
             "containers": [{{"name": "main", "image": "{image}", "command": ["sh", "-c", "{script}"]}}]}}}}}}}}"#
    )
}

/// Pods of Job `job`, as JSON.
fn pods_of(cluster: &Cluster, job: &str) -> Result<Vec<Value>> {
    let list = cluster.json(&["get", "pods", "-l", &format!("batch.kubernetes.io/job-name={job}")])?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

fn wait_condition(cluster: &Cluster, job: &str, condition: &str) -> Result<()> {
    let (ok, out, err) =
        cluster.kubectl(&["wait", &format!("--for=condition={condition}"), &format!("job/{job}"), "--timeout=150s"])?;
    if !ok {
        let state = cluster.kubectl(&["get", "job", job, "-o", "yaml"])?.1;
        let pods = cluster.kubectl(&["get", "pods", "-o", "wide"])?.1;
        anyhow::bail!("job {job} not {condition}: {err}{out}\n{state}\n{pods}");
    }
    Ok(())
}

#[test]
fn jobs_and_cronjobs_run_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start("batch-node")?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    cluster.kubectl_ok(&[
        "create",
        "cronjob",
        "tick",
        "--image",
        &image,
        "--schedule=*/1 * * * *",
        "--",
        "sh",
        "-c",
        "echo tick",
    ])?;
    cluster.kubectl_ok(&["create", "job", "manual", "--from=cronjob/tick"])?;
    cluster.kubectl_ok(&["create", "job", "hello", "--image", &image, "--", "sh", "-c", "echo hello"])?;
    for manifest in [
        job_manifest("multi", &image, r#""completions": 3, "parallelism": 2,"#, "sleep 1"),
        job_manifest("failing", &image, r#""backoffLimit": 1,"#, "exit 3"),
        job_manifest(
            "indexed",
            &image,
            r#""completions": 3, "parallelism": 3, "completionMode": "Indexed","#,
            "echo index=$JOB_COMPLETION_INDEX",
        ),
        job_manifest("short-lived", &image, r#""ttlSecondsAfterFinished": 0,"#, "true"),
    ] {
        let (ok, out, err) = cluster.apply_stdin(&manifest)?;
        ensure!(ok, "apply: {err}{out}");
    }

    // Refused: a Job's pods may not restart Always.
    let always = job_manifest("always", &image, "", "true").replace("\"Never\"", "\"Always\"");
    let (ok, _, err) = cluster.apply_stdin(&always)?;
    ensure!(
        !ok && err.contains("spec.template.spec.restartPolicy") && err.contains("Unsupported value"),
        "refused: {err}"
    );

    // A command that exits 0 completes, and kubectl prints the Job columns.
    wait_condition(&cluster, "hello", "complete")?;
    let table = cluster.kubectl_ok(&["get", "jobs"])?;
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    ensure!(header == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], "header: {table}");
    let row = table.lines().find(|l| l.starts_with("hello ")).context("hello row")?;
    let cells: Vec<&str> = row.split_whitespace().collect();
    ensure!(cells[1] == "Complete" && cells[2] == "1/1", "hello row: {row}");
    let all = cluster.kubectl_ok(&["get", "all"])?;
    ensure!(all.contains("job.batch/hello") && all.contains("cronjob.batch/tick"), "get all: {all}");
    let described = cluster.kubectl_ok(&["describe", "job", "hello"])?;
    ensure!(described.contains("1 Succeeded") && described.contains("SuccessfulCreate"), "describe: {described}");
    let job = cluster.json(&["get", "job", "hello"])?;
    ensure!(job["status"]["succeeded"] == 1 && job["status"]["startTime"].is_string(), "status: {}", job["status"]);
    ensure!(job["status"]["completionTime"].is_string(), "completionTime: {}", job["status"]);

    // completions 3, parallelism 2: three succeeded pods, at most two at once.
    wait_condition(&cluster, "multi", "complete")?;
    let pods = pods_of(&cluster, "multi")?;
    let succeeded = pods.iter().filter(|p| p["status"]["phase"] == "Succeeded").count();
    ensure!(succeeded == 3 && pods.len() == 3, "multi pods: {succeeded} succeeded of {}", pods.len());
    ensure!(cluster.json(&["get", "job", "multi"])?["status"]["succeeded"] == 3, "multi succeeded");
    let spans: Vec<(String, String)> = pods
        .iter()
        .map(|p| {
            let state = &p["status"]["containerStatuses"][0]["state"]["terminated"];
            (
                state["startedAt"].as_str().unwrap_or_default().to_string(),
                state["finishedAt"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (start, _) in &spans {
        let running = spans.iter().filter(|(s, f)| s <= start && start < f).count();
        ensure!(running <= 2, "more than 2 pods ran at once: {spans:?}");
    }

    // backoffLimit 1: the second failure fails the Job.
    wait_condition(&cluster, "failing", "failed")?;
    let failing = cluster.json(&["get", "job", "failing"])?;
    let failed = failing["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Failed");
    ensure!(failed.is_some_and(|c| c["reason"] == "BackoffLimitExceeded"), "failing: {}", failing["status"]);
    ensure!(failing["status"]["failed"] == 2, "two failed pods: {}", failing["status"]);
    let events = cluster.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=failing"])?;
    ensure!(events.contains("BackoffLimitExceeded") && events.contains("SuccessfulCreate"), "events: {events}");

    // Indexed: each pod printed its own index.
    wait_condition(&cluster, "indexed", "complete")?;
    let mut seen = BTreeSet::new();
    for pod in pods_of(&cluster, "indexed")? {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let index =
            pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"].as_str().unwrap_or_default();
        let logs = cluster.kubectl_ok(&["logs", name])?;
        ensure!(logs.trim() == format!("index={index}"), "pod {name} (index {index}) printed {logs:?}");
        seen.insert(index.to_string());
    }
    ensure!(seen == BTreeSet::from(["0".into(), "1".into(), "2".into()]), "indexes: {seen:?}");
    ensure!(cluster.json(&["get", "job", "indexed"])?["status"]["completedIndexes"] == "0-2", "completedIndexes");

    // ttlSecondsAfterFinished: 0: the finished Job goes away with its pods.
    wait_until("short-lived job deleted after its TTL", || {
        let (found, _, _) = cluster.kubectl(&["get", "job", "short-lived"])?;
        Ok((!found).then_some(()))
    })?;
    wait_until("short-lived pods collected", || Ok(pods_of(&cluster, "short-lived")?.is_empty().then_some(())))?;

    // `create job --from=cronjob/tick`: a Job owned by the CronJob, marked manual.
    wait_condition(&cluster, "manual", "complete")?;
    let manual = cluster.json(&["get", "job", "manual"])?;
    ensure!(manual["metadata"]["ownerReferences"][0]["kind"] == "CronJob", "owner: {}", manual["metadata"]);
    ensure!(manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual", "manual annotation");

    // The CronJob starts `tick-<minutes since epoch>` at a minute boundary.
    let scheduled = wait_until("a scheduled job of cronjob tick", || {
        let jobs = cluster.json(&["get", "jobs"])?;
        Ok(jobs["items"].as_array().into_iter().flatten().find_map(|j| {
            let name = j["metadata"]["name"].as_str()?;
            let minutes: i64 = name.strip_prefix("tick-")?.parse().ok()?;
            let at = j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"].as_str()?;
            Some((name.to_string(), minutes, at.to_string()))
        }))
    })?;
    let (name, minutes, at) = scheduled;
    let at: jiff::Timestamp = at.parse()?;
    ensure!(at.as_second() == minutes * 60, "{name} scheduled at {at}");
    wait_condition(&cluster, &name, "complete")?;
    let cronjob = wait_until("cronjob tick status", || {
        let cj = cluster.json(&["get", "cronjob", "tick"])?;
        Ok(cj["status"]["lastSuccessfulTime"].is_string().then_some(cj))
    })?;
    ensure!(cronjob["status"]["lastScheduleTime"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) >= Some(at));
    let table = cluster.kubectl_ok(&["get", "cronjobs"])?;
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    ensure!(header == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"], "{table}");
    let row = table.lines().find(|l| l.starts_with("tick ")).context("tick row")?;
    ensure!(row.contains("*/1 * * * *") && row.contains("<none>") && row.contains("False"), "tick row: {row}");
    let events = cluster.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=tick"])?;
    ensure!(events.contains("SuccessfulCreate") && events.contains(&name), "events: {events}");
    Ok(())
}
