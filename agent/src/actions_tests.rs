//! Table tests of compute_pod_actions: fresh pods, dead sandboxes, restart policies, backoffs, deletion, pull policy, GC.

use super::*;
use crate::observed::ObservedSandbox;
use serde_json::json;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).expect("valid")
}

fn pod(restart_policy: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {
            "restartPolicy": restart_policy,
            "containers": [{"name": "app", "image": "busybox:1.36"}]
        }
    }))
    .expect("pod")
}

fn sandbox(id: &str, attempt: u32, ready: bool) -> ObservedSandbox {
    ObservedSandbox { id: id.into(), attempt, ready, created_at: i64::from(attempt), ips: vec![] }
}

fn container(id: &str, sandbox: &str, attempt: u32, state: RunState, exit_code: i32) -> ObservedContainer {
    ObservedContainer {
        id: id.into(),
        sandbox_id: sandbox.into(),
        name: "app".into(),
        attempt,
        state,
        created_at: Some(t(0)),
        started_at: Some(t(1)),
        finished_at: (state == RunState::Exited).then(|| t(100)),
        exit_code,
        reason: String::new(),
        message: String::new(),
        image: "busybox:1.36".into(),
        image_ref: "sha256:abc".into(),
        log_path: String::new(),
        spec_hash: None,
        termination: None,
    }
}

fn observed(sandboxes: Vec<ObservedSandbox>, containers: Vec<ObservedContainer>, image_present: bool) -> ObservedPod {
    ObservedPod {
        sandboxes,
        containers,
        images: BTreeMap::from([("busybox:1.36".to_string(), image_present.then(|| "sha256:abc".to_string()))]),
    }
}

fn start(attempt: u32, pull: bool, after_exit: Option<Timestamp>) -> Vec<StartContainer> {
    vec![StartContainer { name: "app".into(), attempt, pull, after_exit }]
}

#[test]
fn fresh_pod_creates_sandbox_pulls_and_starts() {
    let crash = Backoff::crash_loop();
    let pull = Backoff::image_pull();
    let ctx = Context::new(t(0), &crash, &pull);
    let got = compute_pod_actions(&pod("Always"), &observed(vec![], vec![], false), ctx);
    assert_eq!(
        got,
        PodActions { create_sandbox: Some(0), start_containers: start(0, true, None), ..Default::default() }
    );
    let got = compute_pod_actions(&pod("Always"), &observed(vec![], vec![], true), ctx);
    assert_eq!(got.start_containers, start(0, false, None));
}

#[test]
fn dead_sandbox_is_replaced_with_next_attempt() {
    let crash = Backoff::crash_loop();
    let pull = Backoff::image_pull();
    let ctx = Context::new(t(200), &crash, &pull);
    let obs = observed(vec![sandbox("s0", 0, false)], vec![container("c0", "s0", 0, RunState::Running, 0)], true);
    let got = compute_pod_actions(&pod("Always"), &obs, ctx);
    assert_eq!(got.create_sandbox, Some(1));
    assert_eq!(got.kill_containers, vec!["c0".to_string()]);
    assert_eq!(got.start_containers, start(1, false, None));
}

#[test]
fn exited_container_follows_restart_policy() {
    let crash = Backoff::crash_loop();
    let pull = Backoff::image_pull();
    let ctx = Context::new(t(200), &crash, &pull);
    // (policy, exit code, restarts)
    let cases = [
        ("Always", 0, true),
        ("Always", 1, true),
        ("OnFailure", 0, false),
        ("OnFailure", 2, true),
        ("Never", 0, false),
        ("Never", 1, false),
    ];
    for (policy, code, restarts) in cases {
        let obs = observed(vec![sandbox("s0", 0, true)], vec![container("c0", "s0", 0, RunState::Exited, code)], true);
        let got = compute_pod_actions(&pod(policy), &obs, ctx);
        let want = if restarts { start(1, false, Some(t(100))) } else { vec![] };
        assert_eq!(got.start_containers, want, "{policy} exit {code}");
        assert!(got.create_sandbox.is_none() && got.kill_containers.is_empty(), "{policy} exit {code}");
    }
}

#[test]
fn never_restarts_a_running_container() {
    let crash = Backoff::crash_loop();
    let pull = Backoff::image_pull();
    let ctx = Context::new(t(200), &crash, &pull);
    let obs = observed(vec![sandbox("s0", 0, true)], vec![container("c0", "s0", 4, RunState::Running, 0)], true);
    assert_eq!(compute_pod_actions(&pod("Always"), &obs, ctx), PodActions::default());
}

#[test]
fn crash_backoff_not_expired_holds_with_crash_loop_back_off() {
    let mut crash = Backoff::crash_loop();
    crash.record(&crash_key(&pod("Always"), "app"), t(50));
    let pull = Backoff::image_pull();
    let obs = observed(vec![sandbox("s0", 0, true)], vec![container("c0", "s0", 1, RunState::Exited, 1)], true);
    // Exited at 100 s with a 10 s delay: held at 104 s, restarted at 110 s.
    let held = compute_pod_actions(&pod("Always"), &obs, Context::new(t(104), &crash, &pull));
    assert!(held.start_containers.is_empty());
    assert_eq!(held.requeue_after, Some(Duration::from_secs(6)));
    let waiting = held.waiting.get("app").expect("waiting");
    assert_eq!(waiting.reason, WaitingReason::CrashLoopBackOff);
    assert_eq!(waiting.message, "back-off 10s restarting failed container=app pod=p_ns(u)");
    let go = compute_pod_actions(&pod("Always"), &obs, Context::new(t(110), &crash, &pull));
    assert_eq!(go.start_containers, start(2, false, Some(t(100))));
    // Only the restart changes the runtime: a pass that holds does not
    // observe the runtime a second time.
    assert!(!held.changes_runtime(), "a hold and a requeue change nothing");
    assert!(go.changes_runtime());
}

#[test]
fn only_runtime_actions_count_as_changing_the_runtime() {
    assert!(!PodActions::default().changes_runtime());
    let mut fresh = PodActions { create_sandbox: Some(0), ..Default::default() };
    assert!(fresh.changes_runtime());
    fresh = PodActions { terminate: Some(Duration::ZERO), ..Default::default() };
    assert!(fresh.changes_runtime());
    for kill in [
        PodActions { kill_containers: vec!["c".into()], ..Default::default() },
        PodActions { remove_containers: vec!["c".into()], ..Default::default() },
        PodActions { stop_sandboxes: vec!["s".into()], ..Default::default() },
        PodActions { remove_sandboxes: vec!["s".into()], ..Default::default() },
    ] {
        assert!(kill.changes_runtime(), "{kill:?}");
    }
    let waiting = PodActions { requeue_after: Some(Duration::from_secs(1)), ..Default::default() };
    assert!(!waiting.changes_runtime());
}

#[test]
fn failing_image_pull_backs_off() {
    let crash = Backoff::crash_loop();
    let mut pull = Backoff::image_pull();
    pull.record("busybox:1.36", t(0));
    let obs = observed(vec![sandbox("s0", 0, true)], vec![], false);
    let held = compute_pod_actions(&pod("Always"), &obs, Context::new(t(3), &crash, &pull));
    assert_eq!(held.waiting.get("app").map(|w| w.reason.as_str()), Some("ImagePullBackOff"));
    assert_eq!(held.requeue_after, Some(Duration::from_secs(7)));
    let retry = compute_pod_actions(&pod("Always"), &obs, Context::new(t(10), &crash, &pull));
    assert_eq!(retry.start_containers, start(0, true, None));
}

#[test]
fn pull_policy_defaults_and_never() {
    let container = |image: &str, policy: Option<&str>| Container {
        name: "c".into(),
        image: Some(image.into()),
        image_pull_policy: policy.map(str::to_string),
        ..Default::default()
    };
    let cases = [
        (container("busybox", None), "Always"),
        (container("busybox:latest", None), "Always"),
        (container("busybox:1.36", None), "IfNotPresent"),
        (container("127.0.0.1:5000/app", None), "Always"),
        (container("127.0.0.1:5000/app:v1", None), "IfNotPresent"),
        (container("app@sha256:00", None), "IfNotPresent"),
        (container("busybox", Some("Never")), "Never"),
    ];
    for (c, want) in cases {
        assert_eq!(PullPolicy::of(&c).as_str(), want, "{:?}", c.image);
    }
    let mut never = pod("Always");
    if let Some(spec) = never.spec.as_mut() {
        spec.containers[0].image_pull_policy = Some("Never".into());
    }
    let crash = Backoff::crash_loop();
    let pull = Backoff::image_pull();
    let got = compute_pod_actions(
        &never,
        &observed(vec![sandbox("s0", 0, true)], vec![], false),
        Context::new(t(0), &crash, &pull),
    );
    assert_eq!(got.waiting.get("app").map(|w| w.reason.as_str()), Some("ErrImageNeverPull"));
    assert!(got.start_containers.is_empty());
}

#[test]
fn deletion_terminates_with_grace_period() {
    let mut deleting = pod("Always");
    deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(6)));
    deleting.metadata.deletion_grace_period_seconds = Some(5);
    let crash = Backoff::crash_loop();
    let pull = Backoff::image_pull();
    let obs = observed(vec![sandbox("s0", 0, true)], vec![container("c0", "s0", 0, RunState::Running, 0)], true);
    let got = compute_pod_actions(&deleting, &obs, Context::new(t(1), &crash, &pull));
    assert_eq!(got, PodActions { terminate: Some(Duration::from_secs(5)), ..Default::default() });
}

#[test]
fn deletion_grace_is_decided_once_as_what_is_left_until_the_deadline() {
    let mut deleting = pod("Always");
    deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(31)));
    deleting.metadata.deletion_grace_period_seconds = Some(30);
    let crash = Backoff::crash_loop();
    let pull = Backoff::image_pull();
    let obs = observed(vec![sandbox("s0", 0, true)], vec![container("c0", "s0", 0, RunState::Running, 0)], true);
    let later = compute_pod_actions(&deleting, &obs, Context::new(t(21), &crash, &pull));
    assert_eq!(later.terminate, Some(Duration::from_secs(10)), "the agent saw the deletion 20 s late");
    let past = compute_pod_actions(&deleting, &obs, Context::new(t(40), &crash, &pull));
    assert_eq!(past.terminate, Some(Duration::ZERO), "past the deadline: no grace left");
}

#[test]
fn finished_never_pod_is_not_recreated_after_sandbox_death() {
    let crash = Backoff::crash_loop();
    let pull = Backoff::image_pull();
    let obs = observed(vec![sandbox("s0", 0, false)], vec![container("c0", "s0", 0, RunState::Exited, 0)], true);
    let got = compute_pod_actions(&pod("Never"), &obs, Context::new(t(200), &crash, &pull));
    assert_eq!(got.create_sandbox, None);
    assert!(got.start_containers.is_empty());
}

#[test]
fn leaves_dead_instances_and_sandboxes_to_the_garbage_collector() {
    // Node-wide container GC (`gc`) applies upstream's policy to them.
    let crash = Backoff::crash_loop();
    let pull = Backoff::image_pull();
    let obs = observed(
        vec![sandbox("s1", 1, true), sandbox("s0", 0, false)],
        vec![
            container("c3", "s1", 3, RunState::Running, 0),
            container("c2", "s1", 2, RunState::Exited, 1),
            container("c1", "s1", 1, RunState::Exited, 1),
            container("c0", "s0", 0, RunState::Exited, 1),
        ],
        true,
    );
    let got = compute_pod_actions(&pod("Always"), &obs, Context::new(t(200), &crash, &pull));
    assert!(got.remove_containers.is_empty(), "{:?}", got.remove_containers);
    assert!(got.remove_sandboxes.is_empty(), "{:?}", got.remove_sandboxes);
    assert!(got.start_containers.is_empty());
}
