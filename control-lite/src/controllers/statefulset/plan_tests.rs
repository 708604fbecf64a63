use super::*;
use crate::controllers::statefulset::pods::{stateful_pod, update_revision, POD_INDEX_LABEL, POD_NAME_LABEL};
use serde_json::{json, Value};

type Pods = Vec<Arc<Pod>>;
type Names = Vec<&'static str>;

const OLD: &str = "web-old";

fn sts(extra: Value) -> StatefulSet {
    let mut v = json!({"metadata": {"name": "web", "namespace": "default", "uid": "sts-uid", "generation": 3},
        "spec": {"replicas": 3, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
        for (k, val) in extra {
            spec.insert(k.clone(), val.clone());
        }
    }
    serde_json::from_value(v).expect("statefulset")
}

#[derive(Clone, Copy)]
enum State {
    Ready,
    Starting,
    Terminating,
    Failed,
}

fn pod(set: &StatefulSet, ordinal: i32, revision: &str, state: State) -> Arc<Pod> {
    let mut v = serde_json::to_value(stateful_pod(set, ordinal, revision)).expect("pod");
    v["metadata"]["uid"] = json!(format!("uid-{ordinal}"));
    let (phase, ready) = match state {
        State::Ready | State::Terminating => ("Running", "True"),
        State::Starting => ("Pending", "False"),
        State::Failed => ("Failed", "False"),
    };
    v["status"] = json!({"phase": phase, "conditions": [{"type": "Ready", "status": ready}]});
    if let State::Terminating = state {
        v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    Arc::new(serde_json::from_value(v).expect("pod"))
}

fn now() -> jiff::Timestamp {
    "2026-01-01T00:10:00Z".parse().expect("time")
}

fn deleted(plan: &Plan) -> Vec<&str> {
    plan.delete.iter().filter_map(|p| p.metadata.name.as_deref()).collect()
}

#[test]
fn ordered_and_parallel_scaling() {
    let ordered = sts(json!({}));
    let new = update_revision(&ordered);
    let parallel = sts(json!({"podManagementPolicy": "Parallel"}));
    let pnew = update_revision(&parallel);
    let p = |set: &StatefulSet, o: i32, s: State| pod(set, o, &update_revision(set), s);
    let one = sts(json!({"replicas": 1}));
    let zero_p = sts(json!({"replicas": 0, "podManagementPolicy": "Parallel"}));
    // (set, pods, creates, deletes)
    let cases: Vec<(&StatefulSet, Pods, Vec<i32>, Names)> = vec![
        (&ordered, vec![], vec![0], vec![]),
        (&ordered, vec![p(&ordered, 0, State::Starting)], vec![], vec![]),
        (&ordered, vec![p(&ordered, 0, State::Ready)], vec![1], vec![]),
        (&ordered, vec![p(&ordered, 0, State::Ready), p(&ordered, 2, State::Ready)], vec![1], vec![]),
        (&ordered, vec![p(&ordered, 0, State::Failed)], vec![], vec!["web-0"]),
        (&parallel, vec![], vec![0, 1, 2], vec![]),
        (&parallel, vec![p(&parallel, 1, State::Starting)], vec![0, 2], vec![]),
        // Scale down: highest first, one at a time, waiting for termination.
        (
            &one,
            vec![p(&one, 0, State::Ready), p(&one, 1, State::Ready), p(&one, 2, State::Ready)],
            vec![],
            vec!["web-2"],
        ),
        (
            &one,
            vec![p(&one, 0, State::Ready), p(&one, 1, State::Ready), p(&one, 2, State::Terminating)],
            vec![],
            vec![],
        ),
        (&one, vec![p(&one, 0, State::Ready), p(&one, 1, State::Ready)], vec![], vec!["web-1"]),
        (&zero_p, vec![p(&zero_p, 0, State::Ready), p(&zero_p, 1, State::Ready)], vec![], vec!["web-1", "web-0"]),
    ];
    assert_eq!(new.len(), pnew.len());
    for (i, (set, pods, create, delete)) in cases.into_iter().enumerate() {
        let plan = plan(set, &pods, &update_revision(set), now());
        assert_eq!(plan.create, create, "case {i}");
        assert_eq!(deleted(&plan), delete, "case {i}");
    }
}

#[test]
fn rolling_update_goes_in_reverse_order_and_respects_the_partition() {
    let set = sts(json!({}));
    let new = update_revision(&set);
    let partitioned = sts(json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}));
    let on_delete = sts(json!({"updateStrategy": {"type": "OnDelete"}}));
    let all_old = |s: &StatefulSet| (0..3).map(|o| pod(s, o, OLD, State::Ready)).collect::<Vec<_>>();
    // (set, pods, deletes)
    let cases: Vec<(&StatefulSet, Pods, Names)> = vec![
        (&set, all_old(&set), vec!["web-2"]),
        // web-2 recreated but not ready yet: wait.
        (
            &set,
            vec![pod(&set, 0, OLD, State::Ready), pod(&set, 1, OLD, State::Ready), pod(&set, 2, &new, State::Starting)],
            vec![],
        ),
        (
            &set,
            vec![pod(&set, 0, OLD, State::Ready), pod(&set, 1, OLD, State::Ready), pod(&set, 2, &new, State::Ready)],
            vec!["web-1"],
        ),
        (
            &partitioned,
            {
                let r = update_revision(&partitioned);
                vec![
                    pod(&partitioned, 0, OLD, State::Ready),
                    pod(&partitioned, 1, OLD, State::Ready),
                    pod(&partitioned, 2, &r, State::Ready),
                ]
            },
            vec![],
        ),
        (&on_delete, all_old(&on_delete), vec![]),
    ];
    for (i, (s, pods, delete)) in cases.into_iter().enumerate() {
        let plan = plan(s, &pods, &update_revision(s), now());
        assert!(plan.create.is_empty(), "case {i}");
        assert_eq!(deleted(&plan), delete, "case {i}");
    }
}

#[test]
fn status_tracks_revisions() {
    let mut set = sts(json!({}));
    set.status = Some(StatefulSetStatus { current_revision: Some(OLD.into()), ..StatefulSetStatus::default() });
    let new = update_revision(&set);
    let pods =
        vec![pod(&set, 0, OLD, State::Ready), pod(&set, 1, OLD, State::Starting), pod(&set, 2, &new, State::Ready)];
    let status = plan(&set, &pods, &new, now()).status;
    assert_eq!(status.replicas, 3);
    assert_eq!(status.ready_replicas, Some(2));
    assert_eq!(status.available_replicas, Some(2));
    assert_eq!(status.current_replicas, Some(2));
    assert_eq!(status.updated_replicas, Some(1));
    assert_eq!(status.current_revision.as_deref(), Some(OLD));
    assert_eq!(status.update_revision.as_deref(), Some(new.as_str()));
    assert_eq!(status.observed_generation, Some(3));
    // All updated and ready: the update revision becomes current.
    let pods: Vec<Arc<Pod>> = (0..3).map(|o| pod(&set, o, &new, State::Ready)).collect();
    let status = plan(&set, &pods, &new, now()).status;
    assert_eq!(status.current_revision.as_deref(), Some(new.as_str()));
    assert_eq!(status.current_replicas, Some(3));
}

#[test]
fn pods_below_the_partition_come_back_at_the_current_revision() {
    let mut set = sts(json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}));
    set.status = Some(StatefulSetStatus { current_revision: Some(OLD.into()), ..StatefulSetStatus::default() });
    assert_eq!(revision_for(&set, 1, "web-new"), OLD);
    assert_eq!(revision_for(&set, 2, "web-new"), "web-new");
    let mut on_delete = sts(json!({"updateStrategy": {"type": "OnDelete"}}));
    on_delete.status = set.status.clone();
    assert_eq!(revision_for(&on_delete, 0, "web-new"), "web-new");
}

#[test]
fn huge_replicas_are_bounded_per_pass() {
    let set =
        sts(json!({"replicas": 2147483647, "podManagementPolicy": "Parallel", "ordinals": {"start": 2147483000}}));
    let plan = plan(&set, &[], &update_revision(&set), now());
    assert_eq!(plan.create.len(), BURST);
}

#[test]
fn pods_have_stable_identity() {
    let set = sts(json!({}));
    let p = stateful_pod(&set, 1, "web-abc");
    assert_eq!(p.metadata.name.as_deref(), Some("web-1"));
    let labels = p.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get(POD_NAME_LABEL).map(String::as_str), Some("web-1"));
    assert_eq!(labels.get(POD_INDEX_LABEL).map(String::as_str), Some("1"));
    let spec = p.spec.expect("spec");
    assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("web-1"), Some("web")));
    for (name, want) in
        [("web-7", Some(7)), ("web-07", None), ("web--1", None), ("webx-1", None), ("web-99999999999", None)]
    {
        let mut q = p.metadata.clone();
        q.name = Some(name.into());
        let pod = Pod { metadata: q, ..Pod::default() };
        assert_eq!(ordinal_of("web", &pod), want, "{name}");
    }
}
