//! Table tests of the disruption plan: coverage, expected and healthy
//! counts, allowed disruptions, the condition and recorded evictions.

use super::plan::*;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{json, Value};

const NOW: &str = "2026-01-01T00:10:00Z";

fn now() -> jiff::Timestamp {
    NOW.parse().expect("now")
}

fn pdb(spec: Value, status: Value) -> PodDisruptionBudget {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "generation": 2},
        "spec": spec,
        "status": status,
    }))
    .expect("pdb")
}

/// A pod of app=web; `state`: "ready", "unready", "deleting" (ready but
/// terminating); `owner`: a ReplicaSet uid or "".
fn pod(name: &str, state: &str, owner: &str) -> Pod {
    let ready = if state == "unready" { "False" } else { "True" };
    let mut meta = json!({"name": name, "namespace": "default", "labels": {"app": "web"}});
    if !owner.is_empty() {
        meta["ownerReferences"] =
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner, "controller": true}]);
    }
    if state == "deleting" {
        meta["deletionTimestamp"] = json!("2026-01-01T00:09:00Z");
    }
    serde_json::from_value(json!({
        "metadata": meta,
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": ready, "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
    }))
    .expect("pod")
}

/// Controller scales: "rs-a" has 3 replicas, others none.
fn scales(pod: &Pod) -> Option<(String, i32)> {
    let owner = pod.metadata.owner_references.as_ref()?.first()?;
    (owner.uid == "rs-a").then(|| ("deploy-a".to_string(), 3))
}

/// (name, spec, pods, (expected, healthy, desired, allowed)).
type Case<'a> = (&'a str, Value, &'a [Pod], (i32, i32, i32, i32));

fn counts(p: &Plan) -> (i32, i32, i32, i32) {
    let s = &p.status;
    (s.expected_pods, s.current_healthy, s.desired_healthy, s.disruptions_allowed)
}

#[test]
fn budgets_count_expected_healthy_desired_and_allowed() {
    let web = json!({"matchLabels": {"app": "web"}});
    let ready3 = [pod("a", "ready", "rs-a"), pod("b", "ready", "rs-a"), pod("c", "ready", "rs-a")];
    let mixed = [pod("a", "ready", "rs-a"), pod("b", "unready", "rs-a"), pod("c", "deleting", "rs-a")];
    let bare = [pod("a", "ready", ""), pod("b", "ready", "")];
    let cases: Vec<Case> = vec![
        ("minAvailable int counts pods", json!({"minAvailable": 2, "selector": web}), &ready3, (3, 3, 2, 1)),
        (
            "minAvailable equal to healthy allows none",
            json!({"minAvailable": 3, "selector": web}),
            &ready3,
            (3, 3, 3, 0),
        ),
        ("minAvailable above healthy allows none", json!({"minAvailable": 5, "selector": web}), &ready3, (3, 3, 5, 0)),
        (
            "unready and deleting pods are not healthy",
            json!({"minAvailable": 1, "selector": web}),
            &mixed,
            (3, 1, 1, 0),
        ),
        (
            "maxUnavailable uses the controller scale",
            json!({"maxUnavailable": 1, "selector": web}),
            &mixed,
            (3, 1, 2, 0),
        ),
        ("maxUnavailable of healthy pods", json!({"maxUnavailable": 1, "selector": web}), &ready3, (3, 3, 2, 1)),
        ("percent rounds up", json!({"minAvailable": "50%", "selector": web}), &ready3, (3, 3, 2, 1)),
        ("maxUnavailable percent", json!({"maxUnavailable": "34%", "selector": web}), &ready3, (3, 3, 1, 2)),
        (
            "pods without a controller count one each",
            json!({"maxUnavailable": 0, "selector": web}),
            &bare,
            (2, 2, 2, 0),
        ),
        ("a missing selector covers nothing", json!({"minAvailable": 0}), &ready3, (0, 0, 0, 0)),
        ("an empty selector covers the namespace", json!({"minAvailable": 0, "selector": {}}), &ready3, (3, 3, 0, 3)),
        ("no pods allow nothing", json!({"minAvailable": 0, "selector": web}), &[], (0, 0, 0, 0)),
        (
            "other labels are not covered",
            json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}),
            &ready3,
            (0, 0, 1, 0),
        ),
    ];
    for (name, spec, pods, want) in cases {
        let budget = pdb(spec, json!({}));
        let pods: Vec<&Pod> = pods.iter().collect();
        let p = plan(&budget, &pods, &scales, now());
        assert_eq!(counts(&p), want, "{name}");
        assert_eq!(p.status.observed_generation, Some(2), "{name}");
    }
}

#[test]
fn the_condition_follows_allowed_and_keeps_its_transition_time() {
    let web = json!({"matchLabels": {"app": "web"}});
    let pods = [pod("a", "ready", ""), pod("b", "ready", "")];
    let refs: Vec<&Pod> = pods.iter().collect();
    let first = plan(&pdb(json!({"minAvailable": 2, "selector": web}), json!({})), &refs, &scales, now());
    let cond = &first.status.conditions.as_ref().expect("conditions")[0];
    assert_eq!(
        (cond.type_.as_str(), cond.status.as_str(), cond.reason.as_str()),
        ("DisruptionAllowed", "False", "InsufficientPods")
    );
    assert_eq!(cond.observed_generation, Some(2));
    // Same outcome later: the transition time stays.
    let stored = serde_json::to_value(&first.status).expect("status");
    let later: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().expect("later");
    let again = plan(&pdb(json!({"minAvailable": 2, "selector": web}), stored.clone()), &refs, &scales, later);
    assert_eq!(again.status, first.status, "an unchanged budget plans the same status (no write)");
    // Allowed now: True, with a new transition time.
    let allowed = plan(&pdb(json!({"minAvailable": 1, "selector": web}), stored), &refs, &scales, later);
    let cond = &allowed.status.conditions.as_ref().expect("conditions")[0];
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("True", "SufficientPods"));
    assert_eq!(cond.last_transition_time.0, later);
}

#[test]
fn recorded_evictions_hold_pods_out_until_deleted_or_expired() {
    let web = json!({"matchLabels": {"app": "web"}});
    let pods = [pod("a", "ready", ""), pod("b", "ready", ""), pod("c", "deleting", "")];
    let refs: Vec<&Pod> = pods.iter().collect();
    let status = json!({"disruptedPods": {
        "a": "2026-01-01T00:09:30Z",  // recent: a is not counted healthy
        "b": "2026-01-01T00:07:00Z",  // older than the timeout: dropped
        "c": "2026-01-01T00:09:30Z",  // being deleted: dropped
        "gone": "2026-01-01T00:09:30Z" // no such pod: dropped
    }});
    let p = plan(&pdb(json!({"minAvailable": 0, "selector": web}), status), &refs, &scales, now());
    let kept: Vec<&String> = p.status.disrupted_pods.as_ref().expect("kept").keys().collect();
    assert_eq!(kept, ["a"]);
    assert_eq!(p.status.current_healthy, 1);
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(90)));
}

#[test]
fn percentages_scale_up_and_clamp() {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let pct = |s: &str| IntOrString::String(s.into());
    assert_eq!(scaled(&pct("50%"), 3), 2);
    assert_eq!(scaled(&pct("0%"), 3), 0);
    assert_eq!(scaled(&pct("100%"), i32::MAX), i32::MAX);
    assert_eq!(scaled(&IntOrString::Int(-1), 3), 0);
}
