//! Table tests of the eviction decision.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{json, Value};

use super::decision::*;

fn now() -> jiff::Timestamp {
    "2026-01-01T00:00:00Z".parse().expect("now")
}

/// A pod of app=web in `phase`, Ready when `ready`, terminating when `deleting`.
fn pod(phase: &str, ready: bool, deleting: bool) -> Pod {
    let mut meta = json!({"name": "web-1", "namespace": "default", "labels": {"app": "web"}});
    if deleting {
        meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    let ready = if ready { "True" } else { "False" };
    serde_json::from_value(json!({"metadata": meta, "status": {"phase": phase,
        "conditions": [{"type": "Ready", "status": ready}]}}))
    .expect("pod")
}

/// A budget named `name` over app=web with `allowed` disruptions; `extra` is merged into the spec.
fn pdb(name: &str, allowed: i32, generation: i64, observed: i64, extra: Value) -> PodDisruptionBudget {
    let mut spec = json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}});
    for (k, v) in extra.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "generation": generation, "resourceVersion": "7"},
        "spec": spec,
        "status": {"disruptionsAllowed": allowed, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2,
                   "observedGeneration": observed},
    }))
    .expect("pdb")
}

fn kind(d: &Decision) -> String {
    match d {
        Decision::Delete => "delete".into(),
        Decision::Spend(_) => "spend".into(),
        Decision::Refuse { cause, .. } => format!("429 {cause}"),
        Decision::Forbidden { reason, .. } => format!("403 {reason}"),
        Decision::ManyBudgets => "500".into(),
    }
}

#[test]
fn eviction_decisions() {
    let running = pod("Running", true, false);
    let other = json!({"selector": {"matchLabels": {"app": "db"}}});
    let cases: Vec<(&str, Pod, Vec<PodDisruptionBudget>, &str)> = vec![
        ("no budget", running.clone(), vec![], "delete"),
        ("a budget of other pods", running.clone(), vec![pdb("db", 0, 1, 1, other)], "delete"),
        ("terminal pod", pod("Succeeded", false, false), vec![pdb("web", 0, 1, 1, json!({}))], "delete"),
        ("failed pod", pod("Failed", false, false), vec![pdb("web", 0, 1, 1, json!({}))], "delete"),
        ("pending pod", pod("Pending", false, false), vec![pdb("web", 0, 1, 1, json!({}))], "delete"),
        ("terminating pod", pod("Running", true, true), vec![pdb("web", 0, 1, 1, json!({}))], "delete"),
        ("budget with room", running.clone(), vec![pdb("web", 1, 1, 1, json!({}))], "spend"),
        (
            "budget without room",
            running.clone(),
            vec![pdb("web", 0, 1, 1, json!({}))],
            "429 The disruption budget web needs 2 healthy pods and has 2 currently",
        ),
        (
            "budget not yet observed",
            running.clone(),
            vec![pdb("web", 1, 2, 1, json!({}))],
            "429 The disruption budget web is still being processed by the server.",
        ),
        ("two budgets", running.clone(), vec![pdb("a", 1, 1, 1, json!({})), pdb("b", 1, 1, 1, json!({}))], "500"),
        (
            "negative allowance",
            running.clone(),
            vec![pdb("web", -1, 1, 1, json!({}))],
            "403 pdb disruptions allowed is negative",
        ),
        (
            "unhealthy pod of a healthy budget (IfHealthyBudget)",
            pod("Running", false, false),
            vec![pdb("web", 0, 1, 1, json!({}))],
            "delete",
        ),
        (
            "unhealthy pod, AlwaysAllow",
            pod("Running", false, false),
            vec![pdb("web", 0, 1, 1, json!({"unhealthyPodEvictionPolicy": "AlwaysAllow"}))],
            "delete",
        ),
    ];
    for (name, pod, pdbs, want) in cases {
        assert_eq!(kind(&decide(&pod, &pdbs, now())), want, "{name}");
    }
}

#[test]
fn spending_decrements_records_the_pod_and_keeps_the_resource_version() {
    let Decision::Spend(next) = decide(&pod("Running", true, false), &[pdb("web", 1, 1, 1, json!({}))], now()) else {
        panic!("expected a spend");
    };
    let status = next.status.as_ref().expect("status");
    assert_eq!(status.disruptions_allowed, 0);
    assert_eq!(next.metadata.resource_version.as_deref(), Some("7"), "the write is conditional on what was read");
    let recorded = status.disrupted_pods.as_ref().expect("recorded");
    assert_eq!(recorded.get("web-1").map(|t| t.0), Some(now()));
    let cond = &status.conditions.as_ref().expect("condition")[0];
    assert_eq!((cond.type_.as_str(), cond.status.as_str()), ("DisruptionAllowed", "False"));
}

#[test]
fn too_many_unconfirmed_evictions_are_forbidden() {
    let mut budget = pdb("web", 3, 1, 1, json!({}));
    let many = (0..=MAX_DISRUPTED_PODS)
        .map(|i| (format!("p{i}"), k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now())));
    budget.status.as_mut().expect("status").disrupted_pods = Some(many.collect());
    assert!(matches!(decide(&pod("Running", true, false), &[budget], now()), Decision::Forbidden { .. }));
}
