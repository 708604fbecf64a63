use super::*;
use crate::apiserver::registry::by_kind;
use crate::apiserver::validation::{validate, validate_update, UpdateKind};
use serde_json::json;

fn workload(kind: &str, spec: Value) -> Value {
    let mut obj = json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    if let (Some(base), Some(extra)) = (obj["spec"].as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    obj
}

fn defaulted(kind: Kind, mut obj: Value) -> Value {
    crate::apiserver::defaults::apply(kind, &mut obj);
    obj
}

fn fields(kind: Kind, obj: &Value) -> Vec<String> {
    validate(by_kind(kind), obj).into_iter().map(|c| c.field).collect()
}

#[test]
fn daemonset_cases() {
    let ru = |v: Value| json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": v}});
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec![]),
        (ru(json!({"maxUnavailable": "10%"})), vec![]),
        (ru(json!({"maxUnavailable": 0, "maxSurge": 1})), vec![]),
        (ru(json!({"maxUnavailable": 0, "maxSurge": 0})), vec!["spec.updateStrategy.rollingUpdate.maxUnavailable"]),
        (ru(json!({"maxUnavailable": 1, "maxSurge": 1})), vec!["spec.updateStrategy.rollingUpdate.maxSurge"]),
        (ru(json!({"maxUnavailable": "101%"})), vec!["spec.updateStrategy.rollingUpdate.maxUnavailable"]),
        (ru(json!({"maxUnavailable": -1})), vec!["spec.updateStrategy.rollingUpdate.maxUnavailable"]),
        (json!({"updateStrategy": {"type": "Sometimes"}}), vec!["spec.updateStrategy.type"]),
        (
            json!({"minReadySeconds": -1, "revisionHistoryLimit": -2}),
            vec!["spec.minReadySeconds", "spec.revisionHistoryLimit"],
        ),
        (json!({"selector": {"matchLabels": {"app": "db"}}}), vec!["spec.template.metadata.labels"]),
    ];
    for (spec, want) in cases {
        assert_eq!(fields(Kind::DaemonSet, &workload("DaemonSet", spec.clone())), want, "{spec}");
    }
}

#[test]
fn statefulset_cases() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"replicas": 3, "serviceName": "web", "podManagementPolicy": "Parallel"}), vec![]),
        (json!({"replicas": -1}), vec!["spec.replicas"]),
        (json!({"podManagementPolicy": "Random"}), vec!["spec.podManagementPolicy"]),
        (json!({"serviceName": "Web_svc"}), vec!["spec.serviceName"]),
        (json!({"ordinals": {"start": -1}}), vec!["spec.ordinals.start"]),
        (json!({"volumeClaimTemplates": [{"metadata": {"name": "data"}}]}), vec!["spec.volumeClaimTemplates"]),
        (
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1}}}),
            vec!["spec.updateStrategy.rollingUpdate.partition"],
        ),
        (
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}}),
            vec!["spec.updateStrategy.rollingUpdate.maxUnavailable"],
        ),
        (
            json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}}),
            vec!["spec.updateStrategy.rollingUpdate"],
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(fields(Kind::StatefulSet, &workload("StatefulSet", spec.clone())), want, "{spec}");
    }
}

#[test]
fn volume_claim_templates_are_refused_with_a_clear_message() {
    let obj = workload("StatefulSet", json!({"volumeClaimTemplates": [{"metadata": {"name": "data"}}]}));
    let causes = validate(by_kind(Kind::StatefulSet), &obj);
    assert!(causes[0].message.contains("not supported"), "{}", causes[0].message);
}

#[test]
fn update_rules() {
    let info = by_kind(Kind::StatefulSet);
    let sts = |spec: Value| defaulted(Kind::StatefulSet, workload("StatefulSet", spec));
    let old = sts(json!({"replicas": 1, "serviceName": "web"}));
    let scaled = sts(json!({"replicas": 5, "serviceName": "web"}));
    assert!(validate_update(info, &old, &scaled, UpdateKind::Main).is_empty());
    let renamed = sts(json!({"replicas": 1, "serviceName": "other"}));
    let causes = validate_update(info, &old, &renamed, UpdateKind::Main);
    assert_eq!(causes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), ["spec"]);
    let ds = by_kind(Kind::DaemonSet);
    let old = defaulted(Kind::DaemonSet, workload("DaemonSet", json!({})));
    let reselected =
        defaulted(Kind::DaemonSet, workload("DaemonSet", json!({"selector": {"matchLabels": {"app": "x"}}})));
    let causes = validate_update(ds, &old, &reselected, UpdateKind::Main);
    assert_eq!(causes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), ["spec.selector"]);
}
