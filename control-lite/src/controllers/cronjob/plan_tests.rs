use super::*;
use serde_json::{json, Value};

fn at(s: &str) -> Timestamp {
    s.parse().expect("time")
}

fn cronjob(spec: Value, status: Value) -> CronJob {
    let mut full = json!({"schedule": "*/5 * * * *", "concurrencyPolicy": "Allow", "suspend": false,
        "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
        "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
            "containers": [{"name": "c", "image": "i"}]}}}}});
    for (k, v) in spec.as_object().expect("object") {
        full[k] = v.clone();
    }
    serde_json::from_value(json!({"metadata": {"name": "cj", "namespace": "ns", "uid": "u",
        "creationTimestamp": "2026-01-01T09:00:00Z"}, "spec": full, "status": status}))
    .expect("cronjob")
}

/// A Job of the CronJob scheduled at `minute` (an RFC 3339 time); `state` is
/// "running", "Complete" or "Failed".
fn job(scheduled: &str, state: &str) -> Arc<Job> {
    let name = job_name("cj", at(scheduled));
    let status = match state {
        "running" => json!({"active": 1, "startTime": scheduled}),
        done => json!({"startTime": scheduled, "completionTime": scheduled,
            "conditions": [{"type": done, "status": "True", "lastTransitionTime": scheduled}]}),
    };
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns", "creationTimestamp": scheduled},
            "status": status}))
        .expect("job"),
    )
}

fn reasons(p: &Plan) -> Vec<&str> {
    p.events.iter().map(|e| e.reason).collect()
}

fn deleted(p: &Plan) -> Vec<String> {
    p.delete.iter().map(|j| name_of(j).to_string()).collect()
}

#[test]
fn starts_the_latest_missed_time_and_waits_for_the_next() {
    let status = json!({"lastScheduleTime": "2026-01-01T10:00:00Z"});
    struct Case {
        name: &'static str,
        spec: Value,
        jobs: Vec<Arc<Job>>,
        now: &'static str,
        create: Option<&'static str>,
        delete: Vec<String>,
        events: Vec<&'static str>,
        requeue: Duration,
    }
    let next = |s: u64| Duration::from_secs(s) + SLACK;
    let cases = [
        Case {
            name: "before the next time nothing starts",
            spec: json!({}),
            jobs: vec![],
            now: "2026-01-01T10:03:00Z",
            create: None,
            delete: vec![],
            events: vec![],
            requeue: next(120),
        },
        Case {
            name: "at the time a job starts",
            spec: json!({}),
            jobs: vec![],
            now: "2026-01-01T10:05:00Z",
            create: Some("2026-01-01T10:05:00Z"),
            delete: vec![],
            events: vec![],
            requeue: next(300),
        },
        Case {
            name: "of several missed times only the latest starts",
            spec: json!({}),
            jobs: vec![],
            now: "2026-01-01T10:17:00Z",
            create: Some("2026-01-01T10:15:00Z"),
            delete: vec![],
            events: vec![],
            requeue: next(180),
        },
        Case {
            name: "allow runs beside an active job",
            spec: json!({}),
            jobs: vec![job("2026-01-01T10:00:00Z", "running")],
            now: "2026-01-01T10:05:00Z",
            create: Some("2026-01-01T10:05:00Z"),
            delete: vec![],
            events: vec![],
            requeue: next(300),
        },
        Case {
            name: "forbid skips while a job runs",
            spec: json!({"concurrencyPolicy": "Forbid"}),
            jobs: vec![job("2026-01-01T10:00:00Z", "running")],
            now: "2026-01-01T10:05:00Z",
            create: None,
            delete: vec![],
            events: vec!["JobAlreadyActive"],
            requeue: next(300),
        },
        Case {
            name: "replace deletes the running job",
            spec: json!({"concurrencyPolicy": "Replace"}),
            jobs: vec![job("2026-01-01T10:00:00Z", "running")],
            now: "2026-01-01T10:05:00Z",
            create: Some("2026-01-01T10:05:00Z"),
            delete: vec![job_name("cj", at("2026-01-01T10:00:00Z"))],
            events: vec![],
            requeue: next(300),
        },
        Case {
            name: "past the starting deadline nothing starts",
            spec: json!({"startingDeadlineSeconds": 30}),
            jobs: vec![],
            now: "2026-01-01T10:06:00Z",
            create: None,
            delete: vec![],
            events: vec![],
            requeue: next(240),
        },
        Case {
            name: "within the starting deadline it starts",
            spec: json!({"startingDeadlineSeconds": 90}),
            jobs: vec![],
            now: "2026-01-01T10:06:00Z",
            create: Some("2026-01-01T10:05:00Z"),
            delete: vec![],
            events: vec![],
            requeue: next(240),
        },
        Case {
            name: "suspended does nothing",
            spec: json!({"suspend": true}),
            jobs: vec![],
            now: "2026-01-01T10:05:00Z",
            create: None,
            delete: vec![],
            events: vec![],
            requeue: Duration::ZERO,
        },
        Case {
            name: "a job already made for the time is not made again",
            spec: json!({}),
            jobs: vec![job("2026-01-01T10:05:00Z", "running")],
            now: "2026-01-01T10:05:30Z",
            create: None,
            delete: vec![],
            events: vec![],
            requeue: next(270),
        },
    ];
    for c in cases {
        let p = plan(&cronjob(c.spec, status.clone()), &c.jobs, at(c.now));
        let created = p.create.as_ref().map(|j| name_of(j).to_string());
        assert_eq!(created, c.create.map(|t| job_name("cj", at(t))), "{}", c.name);
        assert_eq!(deleted(&p), c.delete, "{}", c.name);
        assert_eq!(reasons(&p), c.events, "{}", c.name);
        assert_eq!(p.requeue_after.unwrap_or_default(), c.requeue, "{}", c.name);
        if let (Some(t), Some(job)) = (c.create, &p.create) {
            assert_eq!(p.status.last_schedule_time, Some(Time(at(t))), "{}", c.name);
            assert!(p.status.active.iter().flatten().any(|r| r.name.as_deref() == job.metadata.name.as_deref()));
            let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
            assert_eq!((owner.kind.as_str(), owner.controller), ("CronJob", Some(true)));
            assert_eq!(job.metadata.annotations.as_ref().expect("annotations")[SCHEDULED_TIMESTAMP], t);
        }
    }
}

#[test]
fn more_than_a_hundred_missed_times_are_reported_and_only_the_latest_starts() {
    let cj = cronjob(json!({"schedule": "* * * * *"}), json!({"lastScheduleTime": "2026-01-01T07:00:00Z"}));
    let p = plan(&cj, &[], at("2026-01-01T10:00:30Z"));
    assert_eq!(reasons(&p), vec!["TooManyMissedTimes"]);
    assert_eq!(p.create.map(|j| name_of(&j).to_string()), Some(job_name("cj", at("2026-01-01T10:00:00Z"))));
}

#[test]
fn finished_jobs_update_status_and_history_is_trimmed() {
    let jobs = vec![
        job("2026-01-01T09:40:00Z", "Complete"),
        job("2026-01-01T09:45:00Z", "Complete"),
        job("2026-01-01T09:50:00Z", "Failed"),
        job("2026-01-01T09:55:00Z", "Complete"),
        job("2026-01-01T10:00:00Z", "Failed"),
    ];
    let active_ref = json!([{"name": job_name("cj", at("2026-01-01T10:00:00Z"))}]);
    let status = json!({"lastScheduleTime": "2026-01-01T10:00:00Z", "active": active_ref});
    let p = plan(&cronjob(json!({"successfulJobsHistoryLimit": 2}), status), &jobs, at("2026-01-01T10:01:00Z"));
    assert_eq!(
        deleted(&p),
        vec![job_name("cj", at("2026-01-01T09:40:00Z")), job_name("cj", at("2026-01-01T09:50:00Z"))]
    );
    assert_eq!(p.status.active, None);
    assert_eq!(p.status.last_successful_time, Some(Time(at("2026-01-01T09:55:00Z"))));
    assert_eq!(reasons(&p), vec!["SawCompletedJob"]);
    assert!(p.events[0].message.ends_with("condition: Failed"));
}

#[test]
fn job_names_count_minutes_since_the_epoch() {
    assert_eq!(job_name("tick", at("2026-01-01T10:05:00Z")), "tick-29454365");
    let bad = plan(&cronjob(json!({"schedule": "not a schedule"}), json!({})), &[], at("2026-01-01T10:05:00Z"));
    assert_eq!(reasons(&bad), vec!["InvalidSchedule"]);
    let zone = plan(&cronjob(json!({"timeZone": "Nowhere/Land"}), json!({})), &[], at("2026-01-01T10:05:00Z"));
    assert_eq!(reasons(&zone), vec!["UnknownTimeZone"]);
    assert!(zone.create.is_none());
}
