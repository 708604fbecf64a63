//! Scenario tests of one Deployment sync, step by step through a rollout.

use super::*;
use serde_json::{json, Value};

const D_UID: &str = "d-uid";

fn deployment(image: &str, replicas: i32, strategy: Value, extra: Value) -> Deployment {
    let mut d = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": D_UID, "generation": 2},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    });
    if let (Value::Object(base), Value::Object(more)) = (&mut d, extra) {
        base.extend(more);
    }
    serde_json::from_value(d).expect("deployment")
}

fn hash_of(d: &Deployment) -> String {
    pod_template_hash(&d.spec.as_ref().expect("spec").template, None)
}

/// An owned ReplicaSet for `d`'s template (or another image's).
fn rs_for(d: &Deployment, revision: i64, created: &str, counts: (i32, i32, i32)) -> Arc<ReplicaSet> {
    let hash = hash_of(d);
    let (replicas, actual, available) = counts;
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {
                "name": format!("web-{hash}"), "namespace": "default",
                "creationTimestamp": created,
                "labels": {"app": "web", "pod-template-hash": hash},
                "annotations": {REVISION: revision.to_string()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                     "uid": D_UID, "controller": true}]
            },
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": actual, "readyReplicas": available, "availableReplicas": available}
        }))
        .expect("rs"),
    )
}

fn now() -> jiff::Timestamp {
    "2024-01-01T00:00:00Z".parse().expect("now")
}

fn rolling() -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
}

fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> (&'a str, &'a str) {
    let c = status.conditions.iter().flatten().find(|c| c.type_ == type_).expect("condition");
    (c.status.as_str(), c.reason.as_deref().unwrap_or_default())
}

#[test]
fn fresh_deployment_creates_its_first_replicaset() {
    let d = deployment("nginx:1", 3, rolling(), json!({}));
    let plan = plan(&d, &[], now());
    let rs = plan.create.expect("new replicaset");
    let hash = hash_of(&d);
    assert_eq!(rs.metadata.name, Some(format!("web-{hash}")));
    let spec = rs.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.selector.match_labels.as_ref().and_then(|l| l.get("pod-template-hash")), Some(&hash));
    let template_labels = spec.template.as_ref().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone());
    assert_eq!(template_labels.and_then(|l| l.get("pod-template-hash").cloned()), Some(hash.clone()));
    let annotations = rs.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get(REVISION).map(String::as_str), Some("1"));
    assert_eq!(annotations.get(DESIRED_REPLICAS).map(String::as_str), Some("3"));
    assert_eq!(annotations.get(MAX_REPLICAS).map(String::as_str), Some("4"));
    let owner = selector::controller_of(&rs.metadata).expect("owner");
    assert_eq!((owner.uid.as_str(), owner.block_owner_deletion), (D_UID, Some(true)));
    assert_eq!(plan.revision.as_deref(), Some("1"));
    assert_eq!(plan.status.observed_generation, Some(2));
    assert_eq!(condition(&plan.status, "Progressing"), ("True", "NewReplicaSetCreated"));
    assert_eq!(condition(&plan.status, "Available"), ("False", "MinimumReplicasUnavailable"));
}

#[test]
fn rolling_update_surges_then_shrinks_old_then_completes() {
    let v1 = deployment("nginx:1", 3, rolling(), json!({}));
    let v2 = deployment("nginx:2", 3, rolling(), json!({}));
    let old = rs_for(&v1, 1, "2024-01-01T00:00:00Z", (3, 3, 3));

    // Step 1: template changed -> new RS with one surge pod, revision 2.
    let step = plan(&v2, std::slice::from_ref(&old), now());
    let created = step.create.expect("new replicaset");
    assert_eq!(created.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert_eq!(step.revision.as_deref(), Some("2"));
    assert!(step.update.is_empty());

    // Step 2: new pod not available yet -> nothing to do.
    let new = rs_for(&v2, 2, "2024-01-01T00:01:00Z", (1, 1, 0));
    let step = plan(&v2, &[old.clone(), new], now());
    assert!(step.create.is_none() && step.update.is_empty(), "{:?}", step.update);

    // Step 3: new pod available -> old RS scaled to 2.
    let new = rs_for(&v2, 2, "2024-01-01T00:01:00Z", (1, 1, 1));
    let step = plan(&v2, &[old.clone(), new], now());
    let names: Vec<(String, Option<i32>)> = step.update.iter().map(|u| (u.name.clone(), u.replicas)).collect();
    assert_eq!(names, [(old.metadata.name.clone().unwrap_or_default(), Some(2))]);

    // Step 4: old gone, new full -> complete; rollout status is satisfied.
    let done_old = rs_for(&v1, 1, "2024-01-01T00:00:00Z", (0, 0, 0));
    let new = rs_for(&v2, 2, "2024-01-01T00:01:00Z", (3, 3, 3));
    let step = plan(&v2, &[done_old, new], now());
    assert!(step.update.is_empty());
    let s = &step.status;
    assert_eq!(
        (s.replicas, s.updated_replicas, s.available_replicas, s.unavailable_replicas),
        (Some(3), Some(3), Some(3), Some(0))
    );
    assert_eq!(condition(s, "Progressing"), ("True", "NewReplicaSetAvailable"));
    assert_eq!(condition(s, "Available"), ("True", "MinimumReplicasAvailable"));
}

#[test]
fn scaling_changes_only_the_new_replicaset() {
    let d = deployment("nginx:1", 5, rolling(), json!({}));
    let current = rs_for(&d, 1, "2024-01-01T00:00:00Z", (3, 3, 3));
    let step = plan(&d, &[current], now());
    assert_eq!(step.update.len(), 1);
    assert_eq!(step.update[0].replicas, Some(5));
    assert_eq!(step.update[0].annotations.get(DESIRED_REPLICAS).map(String::as_str), Some("5"));

    let d = deployment("nginx:1", 1, rolling(), json!({}));
    let current = rs_for(&d, 1, "2024-01-01T00:00:00Z", (3, 3, 3));
    assert_eq!(plan(&d, &[current], now()).update[0].replicas, Some(1));
}

#[test]
fn recreate_scales_old_to_zero_before_growing_new() {
    let v1 = deployment("nginx:1", 2, json!({"type": "Recreate"}), json!({}));
    let v2 = deployment("nginx:2", 2, json!({"type": "Recreate"}), json!({}));
    let old = rs_for(&v1, 1, "2024-01-01T00:00:00Z", (2, 2, 2));
    let step = plan(&v2, &[old], now());
    assert_eq!(step.create.and_then(|rs| rs.spec).and_then(|s| s.replicas), Some(0));
    assert_eq!(step.update.iter().map(|u| u.replicas).collect::<Vec<_>>(), [Some(0)]);

    let old = rs_for(&v1, 1, "2024-01-01T00:00:00Z", (0, 0, 0));
    let new = rs_for(&v2, 2, "2024-01-01T00:01:00Z", (0, 0, 0));
    let step = plan(&v2, &[old, new], now());
    assert_eq!(step.update.iter().map(|u| u.replicas).collect::<Vec<_>>(), [Some(2)]);
}

#[test]
fn old_replicasets_beyond_history_limit_are_deleted_when_complete() {
    let d = deployment("nginx:9", 1, rolling(), json!({}));
    let mut d = d;
    if let Some(spec) = d.spec.as_mut() {
        spec.revision_history_limit = Some(1);
    }
    let olds: Vec<Arc<ReplicaSet>> = (1..=3)
        .map(|i| {
            let v = deployment(&format!("nginx:{i}"), 1, rolling(), json!({}));
            rs_for(&v, i, &format!("2024-01-01T00:0{i}:00Z"), (0, 0, 0))
        })
        .collect();
    let mut all = olds.clone();
    all.push(rs_for(&d, 4, "2024-01-01T00:09:00Z", (1, 1, 1)));
    let step = plan(&d, &all, now());
    let want: Vec<String> = olds[..2].iter().map(|rs| rs.metadata.name.clone().unwrap_or_default()).collect();
    assert_eq!(step.delete, want);
}

#[test]
fn rollback_to_an_old_template_bumps_that_replicaset_revision() {
    let v1 = deployment("nginx:1", 1, rolling(), json!({}));
    let v2 = deployment("nginx:2", 1, rolling(), json!({}));
    let first = rs_for(&v1, 1, "2024-01-01T00:00:00Z", (0, 0, 0));
    let second = rs_for(&v2, 2, "2024-01-01T00:01:00Z", (1, 1, 1));
    let step = plan(&v1, &[first.clone(), second], now());
    let update = step.update.iter().find(|u| Some(&u.name) == first.metadata.name.as_ref()).expect("first RS updated");
    assert_eq!(update.annotations.get(REVISION).map(String::as_str), Some("3"));
    assert_eq!(step.revision.as_deref(), Some("3"));
}

#[test]
fn paused_deployment_scales_but_does_not_roll_out() {
    let v1 = deployment("nginx:1", 2, rolling(), json!({}));
    let current = rs_for(&v1, 1, "2024-01-01T00:00:00Z", (2, 2, 2));
    let mut v2 = deployment("nginx:2", 5, rolling(), json!({}));
    if let Some(spec) = v2.spec.as_mut() {
        spec.paused = Some(true);
    }
    v2.metadata.annotations = Some(BTreeMap::from([(REVISION.to_string(), "1".to_string())]));
    let step = plan(&v2, std::slice::from_ref(&current), now());
    assert!(step.create.is_none(), "no new ReplicaSet while paused");
    let scales: Vec<(String, Option<i32>)> = step.update.iter().map(|u| (u.name.clone(), u.replicas)).collect();
    assert_eq!(scales, [(current.metadata.name.clone().unwrap_or_default(), Some(5))], "the old set takes the scale");
    assert_eq!(step.revision, None, "revision stays with the running template");
    assert_eq!(condition(&step.status, "Progressing"), ("Unknown", "DeploymentPaused"));
    assert_eq!(step.requeue, None);

    // Resumed: the new template rolls out.
    if let Some(spec) = v2.spec.as_mut() {
        spec.paused = Some(false);
    }
    let step = plan(&v2, std::slice::from_ref(&current), now());
    assert!(step.create.is_some());
    assert_eq!(step.revision.as_deref(), Some("2"));
}

/// `rs` as last scaled for a Deployment of `desired` + `max` replicas.
fn noted(rs: Arc<ReplicaSet>, desired: i32, max: i32) -> Arc<ReplicaSet> {
    let mut rs = (*rs).clone();
    let notes = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    notes.insert(DESIRED_REPLICAS.to_string(), desired.to_string());
    notes.insert(MAX_REPLICAS.to_string(), max.to_string());
    Arc::new(rs)
}

#[test]
fn scaling_mid_rollout_spreads_replicas_proportionally() {
    let surge = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}});
    let v1 = deployment("nginx:1", 10, surge.clone(), json!({}));
    let v2 = deployment("nginx:2", 15, surge, json!({"status": {"replicas": 13}}));
    let old = noted(rs_for(&v1, 1, "2024-01-01T00:00:00Z", (8, 8, 0)), 10, 13);
    let new = noted(rs_for(&v2, 2, "2024-01-01T00:01:00Z", (5, 5, 0)), 10, 13);
    let step = plan(&v2, &[old.clone(), new.clone()], now());
    let mut scales: Vec<(String, Option<i32>, Option<String>)> =
        step.update.iter().map(|u| (u.name.clone(), u.replicas, u.annotations.get(MAX_REPLICAS).cloned())).collect();
    scales.sort();
    let mut want = vec![
        (old.metadata.name.clone().unwrap_or_default(), Some(11), Some("18".to_string())),
        (new.metadata.name.clone().unwrap_or_default(), Some(7), Some("18".to_string())),
    ];
    want.sort();
    assert_eq!(scales, want);

    // Once annotated for 15 the rollout steps resume: nothing to do at 11 + 7.
    let old = noted(rs_for(&v1, 1, "2024-01-01T00:00:00Z", (11, 11, 0)), 15, 18);
    let new = noted(rs_for(&v2, 2, "2024-01-01T00:01:00Z", (7, 7, 0)), 15, 18);
    assert!(plan(&v2, &[old, new], now()).update.is_empty());
}

#[test]
fn change_cause_is_copied_to_the_new_replicaset() {
    let d = deployment(
        "nginx:1",
        1,
        rolling(),
        json!({"metadata": {"name": "web", "namespace": "default", "uid": D_UID,
                            "annotations": {CHANGE_CAUSE: "image 1"}}}),
    );
    let created = plan(&d, &[], now()).create.expect("new replicaset");
    let annotations = created.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get(CHANGE_CAUSE).map(String::as_str), Some("image 1"));

    let existing = rs_for(&d, 1, "2024-01-01T00:00:00Z", (1, 1, 1));
    let step = plan(&d, &[existing], now());
    assert_eq!(step.update[0].annotations.get(CHANGE_CAUSE).map(String::as_str), Some("image 1"));
}

#[test]
fn a_stalled_rollout_asks_to_be_synced_at_its_deadline() {
    let d = deployment(
        "nginx:1",
        1,
        rolling(),
        json!({"spec": {
        "replicas": 1, "progressDeadlineSeconds": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}),
    );
    let step = plan(&d, &[], now());
    assert_eq!(step.requeue, Some(std::time::Duration::from_secs(4)));
}
