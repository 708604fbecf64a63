use serde_json::{json, Value};

use crate::apiserver::defaults;
use crate::apiserver::registry::{by_kind, Kind};
use crate::apiserver::validation::{validate, validate_update, UpdateKind};

fn job(spec: Value) -> Value {
    let mut j = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default", "uid": "u1"}, "spec": spec});
    let template = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}});
    j["spec"].as_object_mut().expect("spec").entry("template").or_insert(template);
    defaults::apply(Kind::Job, &mut j);
    defaults::on_create(Kind::Job, &mut j);
    j
}

fn fields(obj: &Value, kind: Kind) -> Vec<String> {
    validate(by_kind(kind), obj).into_iter().map(|c| c.field).collect()
}

#[test]
fn job_validation_cases() {
    let always = json!({"spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "i"}]}});
    let on_failure = json!({"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "i"}]}});
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec![]),
        (json!({"completions": 3, "parallelism": 2, "backoffLimit": 0, "ttlSecondsAfterFinished": 0}), vec![]),
        (json!({"template": always}), vec!["spec.template.spec.restartPolicy"]),
        (json!({"template": on_failure.clone()}), vec![]),
        (
            json!({"parallelism": -1, "completions": -2, "backoffLimit": -1, "activeDeadlineSeconds": -5}),
            vec!["spec.parallelism", "spec.completions", "spec.backoffLimit", "spec.activeDeadlineSeconds"],
        ),
        (json!({"completionMode": "Random"}), vec!["spec.completionMode"]),
        (json!({"completionMode": "Indexed", "completions": 100_001}), vec!["spec.completions"]),
        (json!({"completionMode": "Indexed", "completions": 4, "parallelism": 2_000_000}), vec!["spec.parallelism"]),
        (json!({"selector": {"matchLabels": {"a": "b"}}}), vec!["spec.selector", "spec.template.metadata.labels"]),
        (
            json!({"podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0, 3, 3]}}]}}),
            vec![
                "spec.podFailurePolicy.rules[0].onExitCodes.values[0]",
                "spec.podFailurePolicy.rules[0].onExitCodes.values[2]",
            ],
        ),
        (
            json!({"template": on_failure, "podFailurePolicy": {"rules": [{"action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget"}]}]}}),
            vec!["spec.template.spec.restartPolicy"],
        ),
        (
            json!({"podFailurePolicy": {"rules": [{"action": "Explode", "onPodConditions": []}]}}),
            vec!["spec.podFailurePolicy.rules[0].action"],
        ),
    ];
    for (spec, want) in cases {
        let obj = job(spec.clone());
        assert_eq!(fields(&obj, Kind::Job), want, "{spec}");
    }
}

#[test]
fn manual_selector_must_match_the_template() {
    let mut j = job(json!({"manualSelector": true, "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "i"}]}}}));
    assert_eq!(fields(&j, Kind::Job), Vec::<String>::new());
    j["spec"]["template"]["metadata"]["labels"] = json!({"a": "c"});
    assert_eq!(fields(&j, Kind::Job), vec!["spec.template.metadata.labels"]);
}

#[test]
fn job_updates_keep_selector_and_template() {
    let old = job(json!({"completions": 2}));
    let mut new = old.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("j");
    new["spec"]["completions"] = json!(5);
    new["spec"]["parallelism"] = json!(3);
    let causes = validate_update(by_kind(Kind::Job), &old, &new, UpdateKind::Main);
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, vec!["spec.template", "spec.completions"]);
    let mut suspended = old.clone();
    suspended["spec"]["suspend"] = json!(true);
    let mut resumed = suspended.clone();
    resumed["spec"]["suspend"] = json!(false);
    resumed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("j");
    assert!(validate_update(by_kind(Kind::Job), &suspended, &resumed, UpdateKind::Main).is_empty());
}

#[test]
fn cronjob_validation_cases() {
    let base = |spec: Value| {
        let mut c = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "i"}]}}}}}});
        for (k, v) in spec.as_object().expect("object") {
            c["spec"][k] = v.clone();
        }
        defaults::apply(Kind::CronJob, &mut c);
        c
    };
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec![]),
        (json!({"schedule": "@daily", "timeZone": "Europe/Paris", "concurrencyPolicy": "Forbid"}), vec![]),
        (json!({"schedule": "* * *"}), vec!["spec.schedule"]),
        (json!({"schedule": ""}), vec!["spec.schedule"]),
        (json!({"timeZone": "Nowhere/Land"}), vec!["spec.timeZone"]),
        (json!({"concurrencyPolicy": "Sometimes"}), vec!["spec.concurrencyPolicy"]),
        (
            json!({"startingDeadlineSeconds": -1, "successfulJobsHistoryLimit": -1, "failedJobsHistoryLimit": -1}),
            vec!["spec.startingDeadlineSeconds", "spec.successfulJobsHistoryLimit", "spec.failedJobsHistoryLimit"],
        ),
        (
            json!({"jobTemplate": {"spec": {"backoffLimit": -1, "template": {"spec": {"restartPolicy": "Always",
                "containers": [{"name": "c", "image": "i"}]}}}}}),
            vec!["spec.jobTemplate.spec.backoffLimit", "spec.jobTemplate.spec.template.spec.restartPolicy"],
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(fields(&base(spec.clone()), Kind::CronJob), want, "{spec}");
    }
    let mut long = base(json!({}));
    long["metadata"]["name"] = json!("a".repeat(53));
    assert_eq!(fields(&long, Kind::CronJob), vec!["metadata.name"]);
}
