//! Table tests of compute_pod_actions for init containers, native sidecars,
//! image changes (spec hash) and activeDeadlineSeconds.

use super::*;
use crate::observed::ObservedSandbox;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).expect("valid")
}

const IMAGE: &str = "busybox:1.36";

fn pod(policy: &str, init: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {
            "restartPolicy": policy,
            "initContainers": init,
            "containers": [{"name": "app", "image": IMAGE}]
        }
    }))
    .expect("pod")
}

fn two_inits(policy: &str) -> Pod {
    pod(policy, json!([{"name": "i1", "image": IMAGE}, {"name": "i2", "image": IMAGE}]))
}

fn with_sidecar(policy: &str) -> Pod {
    pod(policy, json!([{"name": "side", "image": IMAGE, "restartPolicy": "Always"}, {"name": "i2", "image": IMAGE}]))
}

fn c(name: &str, attempt: u32, state: RunState, exit_code: i32) -> ObservedContainer {
    ObservedContainer {
        id: format!("{name}-{attempt}"),
        sandbox_id: "s0".into(),
        name: name.into(),
        attempt,
        state,
        created_at: Some(t(0)),
        started_at: Some(t(1)),
        finished_at: (state == RunState::Exited).then(|| t(100)),
        exit_code,
        reason: String::new(),
        message: String::new(),
        image: IMAGE.into(),
        image_ref: "sha256:abc".into(),
        log_path: String::new(),
        spec_hash: None,
        termination: None,
    }
}

fn observed(containers: Vec<ObservedContainer>) -> ObservedPod {
    let mut containers = containers;
    containers.sort_by(|a, b| (a.name.as_str(), b.attempt).cmp(&(b.name.as_str(), a.attempt)));
    ObservedPod {
        sandboxes: vec![ObservedSandbox { id: "s0".into(), attempt: 0, ready: true, created_at: 0, ips: vec![] }],
        containers,
        images: BTreeMap::from([(IMAGE.to_string(), Some("sha256:abc".to_string()))]),
    }
}

fn decide(pod: &Pod, obs: &ObservedPod, now: Timestamp) -> PodActions {
    let (crash, pull) = (Backoff::crash_loop(), Backoff::image_pull());
    compute_pod_actions(pod, obs, Context::new(now, &crash, &pull))
}

fn started(actions: &PodActions) -> Vec<(&str, u32)> {
    actions.start_containers.iter().map(|s| (s.name.as_str(), s.attempt)).collect()
}

#[test]
fn init_containers_run_one_at_a_time_before_app_containers() {
    use RunState::{Exited, Running};
    let p = two_inits("Always");
    // (observed, started, app waits for init)
    type Case = (Vec<ObservedContainer>, Vec<(&'static str, u32)>, bool);
    let cases: Vec<Case> = vec![
        (vec![], vec![("i1", 0)], true),
        (vec![c("i1", 0, Running, 0)], vec![], true),
        (vec![c("i1", 0, Exited, 0)], vec![("i2", 0)], true),
        (vec![c("i1", 0, Exited, 0), c("i2", 0, Running, 0)], vec![], true),
        (vec![c("i1", 0, Exited, 0), c("i2", 0, Exited, 0)], vec![("app", 0)], false),
        (vec![c("i1", 0, Exited, 0), c("i2", 0, Exited, 0), c("app", 0, Running, 0)], vec![], false),
    ];
    for (containers, want, initializing) in cases {
        let got = decide(&p, &observed(containers.clone()), t(200));
        assert_eq!(started(&got), want, "{containers:?}");
        let app_wait = got.waiting.get("app").map(|w| w.reason);
        assert_eq!(app_wait == Some(WaitingReason::PodInitializing), initializing, "{containers:?}");
    }
}

#[test]
fn failed_init_container_follows_the_pod_restart_policy() {
    // Never: the pod fails, nothing starts.
    let got = decide(&two_inits("Never"), &observed(vec![c("i1", 0, RunState::Exited, 3)]), t(200));
    assert!(got.start_containers.is_empty(), "{got:?}");
    assert!(!got.waiting.contains_key("app"));
    // OnFailure and Always: the init container restarts (crash backoff applies).
    for policy in ["OnFailure", "Always"] {
        let got = decide(&two_inits(policy), &observed(vec![c("i1", 0, RunState::Exited, 3)]), t(200));
        assert_eq!(started(&got), vec![("i1", 1)], "{policy}");
        assert_eq!(got.start_containers[0].after_exit, Some(t(100)), "{policy}");
    }
    let mut crash = Backoff::crash_loop();
    crash.record(&crash_key(&two_inits("OnFailure"), "i1"), t(95));
    let pull = Backoff::image_pull();
    let obs = observed(vec![c("i1", 1, RunState::Exited, 3)]);
    let got = compute_pod_actions(&two_inits("OnFailure"), &obs, Context::new(t(101), &crash, &pull));
    assert_eq!(got.waiting.get("i1").map(|w| w.reason), Some(WaitingReason::CrashLoopBackOff));
    assert!(got.start_containers.is_empty());
}

#[test]
fn sidecar_must_be_started_before_the_next_init_container() {
    let p = with_sidecar("Never");
    let got = decide(&p, &observed(vec![]), t(0));
    assert_eq!(started(&got), vec![("side", 0)]);
    let running = observed(vec![c("side", 0, RunState::Running, 0)]);
    assert_eq!(started(&decide(&p, &running, t(1))), vec![("i2", 0)]);
    // A startup probe still pending holds the next init container back.
    let pending = BTreeSet::from(["side-0".to_string()]);
    let (crash, pull) = (Backoff::crash_loop(), Backoff::image_pull());
    let ctx = Context { startup_pending: &pending, ..Context::new(t(1), &crash, &pull) };
    assert!(compute_pod_actions(&p, &running, ctx).start_containers.is_empty());
}

#[test]
fn sidecar_restarts_whatever_the_pod_policy_until_the_app_finished() {
    use RunState::{Exited, Running};
    let p = with_sidecar("Never");
    let obs = observed(vec![c("side", 0, Exited, 0), c("i2", 0, Exited, 0), c("app", 0, Running, 0)]);
    assert_eq!(started(&decide(&p, &obs, t(200))), vec![("side", 1)]);
    // App done (Never): the pod completes; the running sidecar is stopped.
    let obs = observed(vec![c("side", 0, Running, 0), c("i2", 0, Exited, 0), c("app", 0, Exited, 0)]);
    let got = decide(&p, &obs, t(200));
    assert!(got.start_containers.is_empty(), "{got:?}");
    assert_eq!(got.kill_containers, vec!["side-0".to_string()]);
}

#[test]
fn termination_stops_app_containers_before_sidecars_in_reverse_order() {
    let p = pod(
        "Always",
        json!([{"name": "s1", "image": IMAGE, "restartPolicy": "Always"},
               {"name": "s2", "image": IMAGE, "restartPolicy": "Always"}]),
    );
    let obs = observed(vec![
        c("s1", 0, RunState::Running, 0),
        c("s2", 0, RunState::Running, 0),
        c("app", 0, RunState::Running, 0),
    ]);
    let waves = init::termination_waves(&p, &obs);
    assert_eq!(waves, vec![vec!["app-0".to_string()], vec!["s2-0".to_string()], vec!["s1-0".to_string()]]);
}

#[test]
fn changed_image_restarts_only_that_container() {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"containers": [{"name": "a", "image": "busybox:1.37"}, {"name": "b", "image": IMAGE}]}
    }))
    .expect("pod");
    let spec = p.spec.clone().expect("spec");
    let old_a = Container { image: Some(IMAGE.into()), ..spec.containers[0].clone() };
    let mut a = c("a", 0, RunState::Running, 0);
    a.spec_hash = Some(crate::spec_hash::Recorded::Hash(crate::spec_hash::of(&old_a)));
    let mut b = c("b", 0, RunState::Running, 0);
    b.spec_hash = Some(crate::spec_hash::Recorded::Hash(crate::spec_hash::of(&spec.containers[1])));
    let mut obs = observed(vec![a, b]);
    obs.images.insert("busybox:1.37".into(), Some("sha256:def".into()));
    let got = decide(&p, &obs, t(200));
    assert_eq!(got.kill_containers, vec!["a-0".to_string()]);
    assert_eq!(
        got.kill_messages.get("a-0").map(String::as_str),
        Some("Container a definition changed, will be restarted")
    );
    assert_eq!(started(&got), vec![("a", 1)]);
}

#[test]
fn active_deadline_kills_everything_and_fails_the_pod() {
    let mut p = two_inits("Always");
    let spec = p.spec.as_mut().expect("spec");
    spec.active_deadline_seconds = Some(30);
    p.status = Some(k8s_openapi::api::core::v1::PodStatus { start_time: Some(Time(t(0))), ..Default::default() });
    let obs = observed(vec![c("i1", 0, RunState::Exited, 0), c("i2", 0, RunState::Running, 0)]);
    let before = decide(&p, &obs, t(10));
    assert_eq!(before.requeue_after, Some(Duration::from_secs(20)));
    assert!(before.fail_pod.is_none());
    let after = decide(&p, &obs, t(30));
    assert_eq!(after.kill_containers, vec!["i2-0".to_string()]);
    assert_eq!(after.fail_pod.map(|f| f.reason), Some(PodFailureReason::DeadlineExceeded));
    assert!(after.start_containers.is_empty());
}
