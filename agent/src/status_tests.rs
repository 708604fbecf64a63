//! Table tests of compute_pod_status: waiting reasons, phases, conditions, QoS, stability of unchanged status.

use super::*;
use crate::enums::WaitingReason;
use crate::observed::ObservedSandbox;
use serde_json::json;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).expect("valid")
}

fn pod(policy: &str, resources: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"restartPolicy": policy, "containers": [{"name": "app", "image": "busybox:1.36", "resources": resources}]}
    }))
    .expect("pod")
}

fn sandbox(ready: bool) -> ObservedSandbox {
    ObservedSandbox { id: "s".into(), attempt: 0, ready, created_at: 1, ips: vec!["10.244.0.9".into()] }
}

fn container(id: &str, attempt: u32, state: RunState, exit_code: i32, reason: &str) -> ObservedContainer {
    ObservedContainer {
        id: id.into(),
        sandbox_id: "s".into(),
        name: "app".into(),
        attempt,
        state,
        created_at: Some(t(0)),
        started_at: Some(t(1)),
        finished_at: (state == RunState::Exited).then(|| t(5)),
        exit_code,
        reason: reason.into(),
        message: String::new(),
        image: "busybox:1.36".into(),
        image_ref: "sha256:abc".into(),
        log_path: String::new(),
        spec_hash: None,
        termination: None,
    }
}

fn observed(containers: Vec<ObservedContainer>) -> ObservedPod {
    ObservedPod { sandboxes: vec![sandbox(true)], containers, images: BTreeMap::new() }
}

fn compute(pod: &Pod, observed: &ObservedPod, waiting: &BTreeMap<String, Waiting>) -> PodStatus {
    compute_pod_status(
        pod,
        observed,
        StatusInputs { host_ip: "192.0.2.1", waiting, now: t(10), probes: None, previous: None },
    )
}

fn cond<'a>(status: &'a PodStatus, type_: &str) -> &'a str {
    status.conditions.iter().flatten().find(|c| c.type_ == type_).map(|c| c.status.as_str()).unwrap_or("missing")
}

fn waiting_reason(status: &PodStatus) -> Option<String> {
    status.container_statuses.as_ref()?[0].state.as_ref()?.waiting.as_ref()?.reason.clone()
}

#[test]
fn running_pod_is_ready_with_ips_and_container_id() {
    let p = pod("Always", json!({}));
    let s = compute(
        &p,
        &observed(vec![container("c1", 1, RunState::Running, 0, ""), container("c0", 0, RunState::Exited, 2, "")]),
        &BTreeMap::new(),
    );
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(s.pod_ip.as_deref(), Some("10.244.0.9"));
    assert_eq!(s.host_ip.as_deref(), Some("192.0.2.1"));
    for type_ in ["Ready", "ContainersReady", "Initialized", "PodScheduled", "PodReadyToStartContainers"] {
        assert_eq!(cond(&s, type_), "True", "{type_}");
    }
    let cs = &s.container_statuses.as_ref().expect("statuses")[0];
    assert_eq!(cs.container_id.as_deref(), Some("containerd://c1"));
    assert_eq!(cs.restart_count, 1);
    assert!(cs.ready);
    let last = cs.last_state.as_ref().and_then(|l| l.terminated.as_ref()).expect("last terminated");
    assert_eq!((last.exit_code, last.reason.as_deref()), (2, Some("Error")));
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    assert_eq!(s.start_time, Some(Time(t(10))));
}

#[test]
fn waiting_reasons_table() {
    let p = pod("Always", json!({}));
    let hold = |reason: WaitingReason| BTreeMap::from([("app".to_string(), Waiting { reason, message: "m".into() })]);
    // (observed containers, waiting, reason, phase)
    let cases = [
        (vec![], BTreeMap::new(), "ContainerCreating", "Pending"),
        (vec![], hold(WaitingReason::ErrImagePull), "ErrImagePull", "Pending"),
        (vec![], hold(WaitingReason::ImagePullBackOff), "ImagePullBackOff", "Pending"),
        (
            vec![container("c0", 0, RunState::Exited, 1, "")],
            hold(WaitingReason::CrashLoopBackOff),
            "CrashLoopBackOff",
            "Running",
        ),
        (vec![container("c0", 0, RunState::Created, 0, "")], BTreeMap::new(), "ContainerCreating", "Pending"),
    ];
    for (containers, waiting, reason, phase) in cases {
        let s = compute(&p, &observed(containers), &waiting);
        assert_eq!(waiting_reason(&s).as_deref(), Some(reason), "{reason}");
        assert_eq!(s.phase.as_deref(), Some(phase), "{reason}");
        assert_eq!(cond(&s, "Ready"), "False", "{reason}");
    }
}

#[test]
fn phases_of_finished_pods() {
    // (policy, exit code, CRI reason, phase, terminated reason)
    let cases = [
        ("Never", 0, "", "Succeeded", "Completed"),
        ("Never", 1, "", "Failed", "Error"),
        ("Never", 137, "OOMKilled", "Failed", "OOMKilled"),
        ("OnFailure", 0, "", "Succeeded", "Completed"),
        ("Always", 0, "", "Running", "Completed"),
    ];
    for (policy, code, cri_reason, phase, reason) in cases {
        let s = compute(
            &pod(policy, json!({})),
            &observed(vec![container("c0", 0, RunState::Exited, code, cri_reason)]),
            &BTreeMap::new(),
        );
        assert_eq!(s.phase.as_deref(), Some(phase), "{policy} {code}");
        let term = s.container_statuses.as_ref().expect("cs")[0]
            .state
            .as_ref()
            .and_then(|st| st.terminated.clone())
            .expect("terminated");
        assert_eq!(term.reason.as_deref(), Some(reason));
        assert_eq!(term.finished_at, Some(Time(t(5))));
    }
}

#[test]
fn unchanged_inputs_give_identical_status() {
    let mut p = pod("Always", json!({}));
    let obs = observed(vec![container("c0", 0, RunState::Running, 0, "")]);
    let first = compute(&p, &obs, &BTreeMap::new());
    p.status = Some(first.clone());
    let later = compute_pod_status(
        &p,
        &obs,
        StatusInputs { host_ip: "192.0.2.1", waiting: &BTreeMap::new(), now: t(99), probes: None, previous: None },
    );
    assert_eq!(first, later);
}

/// The watch has not shown our first write yet (the pod still has no
/// status): the status this worker last decided is the previous one, so a
/// later pass decides the same transition times and startTime rather than
/// stamping a later `now` (which would be one more write).
#[test]
fn last_decided_status_keeps_transition_times() {
    let p = pod("Always", json!({}));
    let obs = observed(vec![container("c0", 0, RunState::Running, 0, "")]);
    let first = compute(&p, &obs, &BTreeMap::new());
    let none_waiting = BTreeMap::new();
    let inputs =
        |previous| StatusInputs { host_ip: "192.0.2.1", waiting: &none_waiting, now: t(99), probes: None, previous };
    let stale = compute_pod_status(&p, &obs, inputs(None));
    assert_ne!(first, stale, "without the previous status, times move to the later now");
    let kept = compute_pod_status(&p, &obs, inputs(Some(&first)));
    assert_eq!(first, kept);
}

/// The watch shows an older write of ours (the container not ready yet)
/// while the worker already decided Ready: a later pass keeps the time it
/// decided, not the API's older False, and not a new `now`.
#[test]
fn a_stale_api_status_does_not_move_decided_transition_times() {
    let mut p = pod("Always", json!({}));
    let none_waiting = BTreeMap::new();
    let at = |now, previous| StatusInputs { host_ip: "192.0.2.1", waiting: &none_waiting, now, probes: None, previous };
    let creating = observed(vec![]);
    let running = observed(vec![container("c0", 0, RunState::Running, 0, "")]);
    let first = compute_pod_status(&p, &creating, at(t(5), None));
    assert_eq!(cond(&first, "Ready"), "False");
    p.status = Some(first.clone());
    let decided = compute_pod_status(&p, &running, at(t(10), Some(&first)));
    assert_eq!(cond(&decided, "Ready"), "True");
    let later = compute_pod_status(&p, &running, at(t(20), Some(&decided)));
    assert_eq!(later, decided, "same inputs, same status, whatever the watch still shows");
    // A real change still moves the time.
    let exited = observed(vec![container("c0", 0, RunState::Exited, 1, "Error")]);
    let changed = compute_pod_status(&p, &exited, at(t(30), Some(&decided)));
    let ready = |s: &PodStatus| s.conditions.iter().flatten().find(|c| c.type_ == "Ready").cloned().expect("Ready");
    assert_eq!(ready(&changed).status, "False");
    assert_eq!(ready(&changed).last_transition_time, Some(time(t(30))));
}

#[test]
fn qos_classes() {
    let cases = [
        (json!({}), "BestEffort"),
        (json!({"requests": {"cpu": "100m"}}), "Burstable"),
        (json!({"limits": {"cpu": "1", "memory": "64Mi"}}), "Guaranteed"),
        (json!({"requests": {"cpu": "1", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}}), "Guaranteed"),
        (json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "64Mi"}}), "Burstable"),
    ];
    for (resources, want) in cases {
        assert_eq!(qos_class(&pod("Always", resources.clone())), want, "{resources}");
    }
}

fn named(name: &str, state: RunState, exit_code: i32) -> ObservedContainer {
    ObservedContainer { id: name.into(), name: name.into(), ..container(name, 0, state, exit_code, "") }
}

fn init_pod(policy: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"restartPolicy": policy,
                 "initContainers": [{"name": "i1", "image": "busybox:1.36"},
                                    {"name": "side", "image": "busybox:1.36", "restartPolicy": "Always"}],
                 "containers": [{"name": "app", "image": "busybox:1.36"}]}
    }))
    .expect("pod")
}

fn reason_of(statuses: &Option<Vec<ContainerStatus>>, name: &str) -> Option<String> {
    let s = statuses.as_ref()?.iter().find(|s| s.name == name)?;
    let state = s.state.as_ref()?;
    state.waiting.as_ref().and_then(|w| w.reason.clone()).or_else(|| state.terminated.as_ref()?.reason.clone())
}

#[test]
fn init_container_statuses_conditions_and_phase() {
    use RunState::{Exited, Running};
    // (policy, observed, phase, Initialized, i1 reason, app reason)
    let cases = [
        ("Always", vec![], "Pending", "False", Some("PodInitializing"), Some("PodInitializing")),
        ("Always", vec![named("i1", Running, 0)], "Pending", "False", None, Some("PodInitializing")),
        ("Never", vec![named("i1", Exited, 3)], "Failed", "False", Some("Error"), Some("PodInitializing")),
        ("OnFailure", vec![named("i1", Exited, 3)], "Pending", "False", Some("Error"), Some("PodInitializing")),
        (
            "Never",
            vec![named("i1", Exited, 0), named("side", Running, 0), named("app", Running, 0)],
            "Running",
            "True",
            Some("Completed"),
            None,
        ),
        (
            "Never",
            vec![named("i1", Exited, 0), named("side", Running, 0), named("app", Exited, 0)],
            "Succeeded",
            "True",
            Some("Completed"),
            Some("Completed"),
        ),
    ];
    for (policy, containers, phase, initialized, i1, app) in cases {
        let what = format!("{policy} {containers:?}");
        let s = compute(&init_pod(policy), &observed(containers), &BTreeMap::new());
        assert_eq!(s.phase.as_deref(), Some(phase), "{what}");
        assert_eq!(cond(&s, "Initialized"), initialized, "{what}");
        assert_eq!(reason_of(&s.init_container_statuses, "i1").as_deref(), i1, "{what}");
        assert_eq!(reason_of(&s.container_statuses, "app").as_deref(), app, "{what}");
    }
    // A completed init container is ready; a running sidecar is ready and started.
    let obs = observed(vec![named("i1", Exited, 0), named("side", Running, 0)]);
    let s = compute(&init_pod("Always"), &obs, &BTreeMap::new());
    let inits = s.init_container_statuses.expect("init statuses");
    assert!(inits.iter().all(|s| s.ready), "{inits:?}");
    assert_eq!(inits[1].started, Some(true));
}

#[test]
fn exceeded_deadline_fails_the_pod_and_terminal_phase_sticks() {
    let mut p = pod("Always", json!({}));
    p.spec.as_mut().expect("spec").active_deadline_seconds = Some(5);
    p.status = Some(PodStatus { start_time: Some(Time(t(0))), ..Default::default() });
    let obs = observed(vec![container("c0", 0, RunState::Running, 0, "")]);
    let s = compute(&p, &obs, &BTreeMap::new());
    assert_eq!(s.phase.as_deref(), Some("Failed"));
    assert_eq!(s.reason.as_deref(), Some("DeadlineExceeded"));
    p.spec.as_mut().expect("spec").active_deadline_seconds = None;
    p.status = Some(s);
    let again = compute(&p, &obs, &BTreeMap::new());
    assert_eq!(again.phase.as_deref(), Some("Failed"));
}

#[test]
fn readiness_gates_hold_ready_and_foreign_conditions_are_kept() {
    let mut p = pod("Always", json!({}));
    p.spec.as_mut().expect("spec").readiness_gates =
        Some(vec![k8s_openapi::api::core::v1::PodReadinessGate { condition_type: "example.com/lb".into() }]);
    let running = observed(vec![container("c1", 0, RunState::Running, 0, "")]);
    let s = compute(&p, &running, &BTreeMap::new());
    assert_eq!((cond(&s, "ContainersReady"), cond(&s, "Ready")), ("True", "False"));
    let ready = s.conditions.iter().flatten().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!(ready.reason.as_deref(), Some("ReadinessGatesNotReady"));
    // Someone sets the gate's condition: Ready, and the condition is kept after the kubelet's own.
    let gate = PodCondition { type_: "example.com/lb".into(), status: "True".into(), ..Default::default() };
    let mut conditions = s.conditions.clone().expect("conditions");
    conditions.push(gate.clone());
    p.status = Some(PodStatus { conditions: Some(conditions), ..s });
    let s = compute(&p, &running, &BTreeMap::new());
    assert_eq!(cond(&s, "Ready"), "True");
    assert_eq!(s.conditions.as_ref().and_then(|c| c.last()), Some(&gate));
    // Computing again from what we wrote changes nothing.
    p.status = Some(s.clone());
    assert_eq!(compute(&p, &running, &BTreeMap::new()), s);
}
