use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::json;

use super::*;
use crate::observed::{ObservedContainer, ObservedSandbox};
use crate::resize::plan::ResizePlan;

fn pod(request: &str, limit: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "d", "uid": "u1", "generation": 3},
        "spec": {"containers": [{"name": "app", "image": "busybox",
            "resources": {"requests": {"cpu": request}, "limits": {"cpu": limit, "memory": "64Mi"}}}]}
    }))
    .expect("pod")
}

fn observed() -> ObservedPod {
    ObservedPod {
        sandboxes: vec![ObservedSandbox { id: "s0".into(), attempt: 0, ready: true, created_at: 0, ips: vec![] }],
        containers: vec![ObservedContainer {
            id: "c1".into(),
            sandbox_id: "s0".into(),
            name: "app".into(),
            attempt: 0,
            state: RunState::Running,
            created_at: None,
            started_at: None,
            finished_at: None,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image: "busybox".into(),
            image_ref: String::new(),
            log_path: String::new(),
            spec_hash: None,
            termination: None,
        }],
        images: BTreeMap::new(),
    }
}

fn status_with(conditions: Vec<PodCondition>) -> PodStatus {
    PodStatus {
        container_statuses: Some(vec![ContainerStatus { name: "app".into(), ..Default::default() }]),
        conditions: Some(conditions),
        ..Default::default()
    }
}

fn q(s: &str) -> Quantity {
    Quantity(s.into())
}

fn have(p: &Pod) -> HashMap<String, CgroupResources> {
    HashMap::from([(
        "c1".to_string(),
        CgroupResources::wanted(&p.spec.as_ref().expect("spec").containers[0]).expect("ok"),
    )])
}

#[test]
fn a_done_resize_reports_spec_resources_generation_and_no_condition() {
    let p = pod("300m", "300m");
    let old = PodCondition { type_: POD_RESIZE_IN_PROGRESS.into(), status: "True".into(), ..Default::default() };
    let mut status = status_with(vec![old]);
    report(&mut status, &p, &observed(), &have(&p), &ResizeOutcome::default(), Timestamp::UNIX_EPOCH);
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(status.conditions.as_deref(), Some(&[][..]));
    let cs = &status.container_statuses.as_ref().expect("statuses")[0];
    let resources = cs.resources.as_ref().expect("resources");
    assert_eq!(resources.requests.as_ref().and_then(|r| r.get("cpu")), Some(&q("300m")));
    assert_eq!(resources.limits.as_ref().and_then(|r| r.get("cpu")), Some(&q("300m")));
    assert_eq!(resources.limits.as_ref().and_then(|r| r.get("memory")), Some(&q("64Mi")));
    assert_eq!(cs.allocated_resources.as_ref().and_then(|r| r.get("cpu")), Some(&q("300m")));
    assert_eq!(cs.allocated_resources.as_ref().and_then(|r| r.get("memory")), Some(&q("64Mi")));
}

#[test]
fn cgroups_not_yet_resized_report_what_they_have() {
    let before = pod("100m", "100m");
    let after = pod("300m", "300m");
    let mut status = status_with(vec![]);
    let outcome = ResizeOutcome {
        plan: ResizePlan { restarts: BTreeSet::from(["c1".to_string()]), ..Default::default() },
        failed: BTreeMap::new(),
    };
    report(&mut status, &after, &observed(), &have(&before), &outcome, Timestamp::UNIX_EPOCH);
    let cs = &status.container_statuses.as_ref().expect("statuses")[0];
    let resources = cs.resources.as_ref().expect("resources");
    assert_eq!(resources.limits.as_ref().and_then(|r| r.get("cpu")), Some(&q("100m")));
    assert_eq!(resources.requests.as_ref().and_then(|r| r.get("cpu")), Some(&q("100m")));
    let conditions = status.conditions.expect("conditions");
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0].type_, POD_RESIZE_IN_PROGRESS);
    assert_eq!(conditions[0].observed_generation, Some(3));
}

#[test]
fn infeasible_and_failed_resizes_have_their_conditions() {
    let before = pod("100m", "100m");
    let after = pod("3", "3");
    let since = Time(Timestamp::from_second(100).expect("ts"));
    let old = PodCondition {
        type_: POD_RESIZE_PENDING.into(),
        status: "True".into(),
        last_transition_time: Some(since.clone()),
        ..Default::default()
    };
    let mut status = status_with(vec![old]);
    let outcome = ResizeOutcome {
        plan: ResizePlan { infeasible: Some("no room".into()), ..Default::default() },
        failed: BTreeMap::new(),
    };
    report(&mut status, &after, &observed(), &have(&before), &outcome, Timestamp::UNIX_EPOCH);
    let c = &status.conditions.as_ref().expect("conditions")[0];
    assert_eq!(
        (c.type_.as_str(), c.reason.as_deref(), c.message.as_deref()),
        (POD_RESIZE_PENDING, Some("Infeasible"), Some("no room"))
    );
    assert_eq!(c.last_transition_time, Some(since), "an unchanged condition keeps its transition time");
    let cs = &status.container_statuses.as_ref().expect("statuses")[0];
    assert_eq!(cs.allocated_resources.as_ref().and_then(|r| r.get("cpu")), Some(&q("100m")), "allocation unchanged");

    let mut status = status_with(vec![]);
    let outcome = ResizeOutcome {
        plan: ResizePlan::default(),
        failed: BTreeMap::from([("app".to_string(), "refused".to_string())]),
    };
    report(&mut status, &after, &observed(), &have(&before), &outcome, Timestamp::UNIX_EPOCH);
    let c = &status.conditions.as_ref().expect("conditions")[0];
    assert_eq!((c.type_.as_str(), c.reason.as_deref()), (POD_RESIZE_IN_PROGRESS, Some("Error")));
}

#[test]
fn absent_resize_conditions_are_deleted_by_the_patch() {
    let mut status =
        json!({"conditions": [{"type": "Ready", "status": "True"}, {"type": POD_RESIZE_PENDING, "status": "True"}]});
    delete_absent_conditions(&mut status);
    let conditions = status["conditions"].as_array().expect("list");
    assert_eq!(conditions.len(), 3);
    assert_eq!(conditions[2], json!({"type": POD_RESIZE_IN_PROGRESS, "$patch": "delete"}));
}
