use super::*;
use serde_json::{json, Value};

fn at(s: &str) -> Timestamp {
    s.parse().expect("time")
}

const NOW: &str = "2026-01-01T10:00:00Z";

fn job(spec: Value, status: Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}});
    serde_json::from_value(json!({"metadata": {"name": "j", "namespace": "ns", "uid": "u"},
        "spec": spec, "status": status}))
    .expect("job")
}

fn pod(name: &str, phase: &str, index: Option<i32>, exit: i32) -> Arc<Pod> {
    let annotations = index.map(|i| json!({"batch.kubernetes.io/job-completion-index": i.to_string()}));
    let terminated = json!({"exitCode": exit, "finishedAt": "2026-01-01T09:59:00Z"});
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": name, "annotations": annotations,
            "creationTimestamp": "2026-01-01T09:58:00Z"},
            "status": {"phase": phase, "containerStatuses": [{"name": "c", "image": "i", "imageID": "",
                "ready": phase == "Running", "restartCount": 0,
                "state": if phase == "Running" { json!({"running": {}}) } else { json!({"terminated": terminated}) }}]}}))
        .expect("pod"),
    )
}

fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
    pods.iter().map(|p| p.metadata.name.as_deref().unwrap_or_default()).collect()
}

fn conditions(p: &Plan) -> Vec<(String, String, String)> {
    p.status
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone().unwrap_or_default()))
        .collect()
}

fn reasons(p: &Plan) -> Vec<&str> {
    p.events.iter().map(|e| e.reason).collect()
}

#[test]
fn non_indexed_jobs_run_up_to_parallelism_and_complete() {
    struct Case {
        name: &'static str,
        spec: Value,
        pods: Vec<Arc<Pod>>,
        create: usize,
        delete: Vec<&'static str>,
        active: i32,
        succeeded: i32,
        complete: bool,
    }
    let cases = [
        Case {
            name: "new job starts parallelism pods",
            spec: json!({"completions": 3, "parallelism": 2}),
            pods: vec![],
            create: 2,
            delete: vec![],
            active: 0,
            succeeded: 0,
            complete: false,
        },
        Case {
            name: "never more than the completions left",
            spec: json!({"completions": 3, "parallelism": 2}),
            pods: vec![pod("a", "Succeeded", None, 0), pod("b", "Succeeded", None, 0), pod("c", "Running", None, 0)],
            create: 0,
            delete: vec![],
            active: 1,
            succeeded: 2,
            complete: false,
        },
        Case {
            name: "third success completes",
            spec: json!({"completions": 3, "parallelism": 2}),
            pods: vec![pod("a", "Succeeded", None, 0), pod("b", "Succeeded", None, 0), pod("c", "Succeeded", None, 0)],
            create: 0,
            delete: vec![],
            active: 0,
            succeeded: 3,
            complete: true,
        },
        Case {
            name: "parallelism lowered deletes extras",
            spec: json!({"completions": 5, "parallelism": 1}),
            pods: vec![pod("a", "Running", None, 0), pod("b", "Pending", None, 0)],
            create: 0,
            delete: vec!["b"],
            active: 1,
            succeeded: 0,
            complete: false,
        },
        Case {
            name: "work queue completes once one succeeded and none run",
            spec: json!({"parallelism": 2}),
            pods: vec![pod("a", "Succeeded", None, 0), pod("b", "Running", None, 0)],
            create: 0,
            delete: vec![],
            active: 1,
            succeeded: 1,
            complete: false,
        },
        Case {
            name: "work queue done",
            spec: json!({"parallelism": 2}),
            pods: vec![pod("a", "Succeeded", None, 0), pod("b", "Succeeded", None, 0)],
            create: 0,
            delete: vec![],
            active: 0,
            succeeded: 2,
            complete: true,
        },
        Case {
            name: "parallelism 0 runs nothing",
            spec: json!({"completions": 2, "parallelism": 0}),
            pods: vec![],
            create: 0,
            delete: vec![],
            active: 0,
            succeeded: 0,
            complete: false,
        },
    ];
    for c in cases {
        let p = plan(&job(c.spec, json!({})), &c.pods, at(NOW));
        assert_eq!(p.create.len(), c.create, "{}", c.name);
        assert_eq!(names(&p.delete), c.delete, "{}", c.name);
        assert_eq!(p.status.active, Some(c.active), "{}", c.name);
        assert_eq!(p.status.succeeded, Some(c.succeeded), "{}", c.name);
        assert_eq!(has_condition(&p.status, "Complete"), c.complete, "{}", c.name);
        assert_eq!(p.status.completion_time.is_some(), c.complete, "{}", c.name);
        assert_eq!(reasons(&p).contains(&"Completed"), c.complete, "{}", c.name);
        assert!(p.status.start_time.is_some(), "{}", c.name);
    }
}

#[test]
fn failures_count_against_the_backoff_limit_with_a_delay_between_retries() {
    let spec = json!({"backoffLimit": 1});
    let first = plan(&job(spec.clone(), json!({})), &[pod("a", "Failed", None, 1)], at("2026-01-01T09:59:05Z"));
    assert_eq!(first.status.failed, Some(1));
    assert!(first.create.is_empty(), "waits 10 s after the failure");
    assert_eq!(first.requeue_after, Some(Duration::from_secs(5)));
    let later = plan(&job(spec.clone(), json!({})), &[pod("a", "Failed", None, 1)], at(NOW));
    assert_eq!(later.create.len(), 1);
    let pods = [pod("a", "Failed", None, 1), pod("b", "Failed", None, 1)];
    let failed = plan(&job(spec, json!({})), &pods, at(NOW));
    assert!(failed.create.is_empty());
    assert_eq!(
        conditions(&failed),
        vec![
            ("FailureTarget".into(), "True".into(), "BackoffLimitExceeded".into()),
            ("Failed".into(), "True".into(), "BackoffLimitExceeded".into()),
        ]
    );
    assert_eq!(reasons(&failed), vec!["BackoffLimitExceeded"]);
    assert_eq!(failed.events[0].type_, WARNING);
}

#[test]
fn counts_never_go_down_when_pods_disappear() {
    let p = plan(
        &job(json!({"completions": 4}), json!({"succeeded": 2, "failed": 1})),
        &[pod("c", "Succeeded", None, 0)],
        at(NOW),
    );
    assert_eq!(p.status.succeeded, Some(2));
    assert_eq!(p.status.failed, Some(1));
}

#[test]
fn active_deadline_fails_the_job_and_deletes_its_pods() {
    let status = json!({"startTime": "2026-01-01T09:59:00Z"});
    let spec = json!({"activeDeadlineSeconds": 30});
    let p = plan(&job(spec.clone(), status.clone()), &[pod("a", "Running", None, 0)], at(NOW));
    assert!(has_condition(&p.status, "Failed"));
    assert_eq!(conditions(&p)[1].2, "DeadlineExceeded");
    assert_eq!(names(&p.delete), vec!["a"]);
    let early = plan(&job(json!({"activeDeadlineSeconds": 90}), status), &[pod("a", "Running", None, 0)], at(NOW));
    assert!(!has_condition(&early.status, "Failed"));
    assert_eq!(early.requeue_after, Some(Duration::from_secs(30)));
}

#[test]
fn pod_failure_policy_fails_ignores_or_counts() {
    let spec = |action: &str| {
        json!({"backoffLimit": 0, "podFailurePolicy": {"rules": [
            {"action": action, "onExitCodes": {"operator": "In", "values": [42]}}]}})
    };
    let fail = plan(&job(spec("FailJob"), json!({})), &[pod("a", "Failed", None, 42)], at(NOW));
    assert_eq!(conditions(&fail)[1].2, "PodFailurePolicy");
    let ignore = plan(&job(spec("Ignore"), json!({})), &[pod("a", "Failed", None, 42)], at(NOW));
    assert!(!has_condition(&ignore.status, "Failed"));
    assert_eq!(ignore.status.failed, Some(0));
    assert_eq!(ignore.create.len(), 1, "an ignored failure is replaced at once");
    let other = plan(&job(spec("Ignore"), json!({})), &[pod("a", "Failed", None, 1)], at(NOW));
    assert_eq!(conditions(&other)[1].2, "BackoffLimitExceeded");
}

#[test]
fn indexed_jobs_run_each_pending_index_once() {
    let spec = json!({"completionMode": "Indexed", "completions": 4, "parallelism": 2});
    let fresh = plan(&job(spec.clone(), json!({})), &[], at(NOW));
    assert_eq!(fresh.create, vec![Some(0), Some(1)]);
    let pods = [
        pod("a", "Succeeded", Some(0), 0),
        pod("b", "Running", Some(1), 0),
        pod("b2", "Running", Some(1), 0),
        pod("z", "Running", Some(9), 0),
    ];
    let p = plan(&job(spec.clone(), json!({"completedIndexes": "3"})), &pods, at(NOW));
    assert_eq!(p.status.completed_indexes.as_deref(), Some("0,3"));
    assert_eq!(p.status.succeeded, Some(2));
    assert_eq!(names(&p.delete), vec!["b2", "z"]);
    assert_eq!(p.create, vec![Some(2)]);
    assert_eq!(p.status.active, Some(1));
    let done = plan(&job(spec, json!({"completedIndexes": "0-2"})), &[pod("d", "Succeeded", Some(3), 0)], at(NOW));
    assert!(has_condition(&done.status, "Complete"));
    assert_eq!(done.status.completed_indexes.as_deref(), Some("0-3"));
}

#[test]
fn suspend_stops_pods_and_resume_restarts_the_clock() {
    let suspended = plan(&job(json!({"suspend": true}), json!({})), &[pod("a", "Running", None, 0)], at(NOW));
    assert_eq!(names(&suspended.delete), vec!["a"]);
    assert!(suspended.create.is_empty());
    assert_eq!(conditions(&suspended), vec![("Suspended".into(), "True".into(), "JobSuspended".into())]);
    assert_eq!(reasons(&suspended), vec!["Suspended"]);
    let status = serde_json::to_value(&suspended.status).expect("status");
    let resumed = plan(&job(json!({"suspend": false}), status), &[], at("2026-01-01T10:05:00Z"));
    assert_eq!(conditions(&resumed), vec![("Suspended".into(), "False".into(), "JobResumed".into())]);
    assert_eq!(resumed.status.start_time, Some(Time(at("2026-01-01T10:05:00Z"))));
    assert_eq!(resumed.create.len(), 1);
    assert_eq!(reasons(&resumed), vec!["Resumed"]);
}

#[test]
fn finished_jobs_expire_after_their_ttl() {
    let status =
        json!({"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T09:59:30Z"}]});
    let waiting = plan(&job(json!({"ttlSecondsAfterFinished": 60}), status.clone()), &[], at(NOW));
    assert!(!waiting.delete_job);
    assert_eq!(waiting.requeue_after, Some(Duration::from_secs(30)));
    assert!(waiting.create.is_empty());
    let expired = plan(&job(json!({"ttlSecondsAfterFinished": 10}), status.clone()), &[], at(NOW));
    assert!(expired.delete_job);
    let kept = plan(&job(json!({}), status), &[], at(NOW));
    assert!(!kept.delete_job && kept.requeue_after.is_none());
}
