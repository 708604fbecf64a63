//! The pod status decision: `compute_pod_status(&pod, &observed, ...)` turns
//! what the runtime has into the `PodStatus` the API should show (phase,
//! conditions, IPs, container states, QoS class). The pod worker is the
//! single writer of pod status and patches only when this result differs.
//!
//! Must not: talk to the API or the runtime.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP,
    Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::actions::{deadline, init, RestartPolicy, Waiting};
use crate::enums::{is_sidecar, PodFailureReason, PodPhase, TerminatedReason, WaitingReason};
use crate::observed::{ObservedContainer, ObservedPod, RunState};
use crate::prober::ContainerProbes;
use crate::readiness_gates;

/// Runtime prefix of container IDs in pod status.
pub const CONTAINER_ID_PREFIX: &str = "containerd://";

/// Inputs beside the pod and the runtime view.
#[derive(Debug, Clone, Copy)]
pub struct StatusInputs<'a> {
    /// Node IP (status.hostIP).
    pub host_ip: &'a str,
    /// Why containers are held back or failed to start (last sync).
    pub waiting: &'a BTreeMap<String, Waiting>,
    /// Now, for transition times and startTime.
    pub now: Timestamp,
    /// Probe-derived `ready`/`started` by container name; `None` (no
    /// prober) means a running container is ready and started.
    pub probes: Option<&'a BTreeMap<String, ContainerProbes>>,
    /// The status this worker last computed for the pod, if any. The
    /// watch may still show an older status than the one last decided
    /// (our write, or the one before it, has not come back yet), so the
    /// transition times and startTime of the worker's own decisions are
    /// kept from here first and from `pod.status` second, rather than
    /// decided again with a later `now` (one write more, and a time that
    /// moves).
    pub previous: Option<&'a PodStatus>,
}

/// API times have second precision; truncating keeps "unchanged" exact.
fn time(ts: Timestamp) -> Time {
    Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

fn terminated(c: &ObservedContainer) -> ContainerStateTerminated {
    let reason = TerminatedReason::of(c.exit_code, &c.reason);
    ContainerStateTerminated {
        exit_code: c.exit_code,
        reason: Some(reason.as_str().to_string()),
        message: (!c.message.is_empty()).then(|| c.message.clone()),
        started_at: c.started_at.map(time),
        finished_at: c.finished_at.map(time),
        container_id: Some(format!("{CONTAINER_ID_PREFIX}{}", c.id)),
        signal: None,
    }
}

fn terminated_state(c: Option<&ObservedContainer>) -> Option<ContainerState> {
    c.filter(|c| c.state == RunState::Exited)
        .map(|c| ContainerState { terminated: Some(terminated(c)), ..Default::default() })
}

fn waiting_state(reason: WaitingReason, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting { reason: Some(reason.as_str().to_string()), message }),
        ..Default::default()
    }
}

/// Which list a container status goes to, and what that implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `containerStatuses`.
    App,
    /// `initContainerStatuses`, run to completion (ready once it exited 0).
    Init,
    /// `initContainerStatuses`, a native sidecar (ready while running).
    Sidecar,
}

fn container_status(
    name: &str,
    image: &str,
    kind: Kind,
    observed: &ObservedPod,
    waiting: Option<&Waiting>,
    not_yet: WaitingReason,
    probes: Option<ContainerProbes>,
) -> ContainerStatus {
    let latest = observed.latest(name);
    let previous = observed.previous(name);
    let running = latest.is_some_and(|c| c.state == RunState::Running);
    let succeeded = latest.is_some_and(|c| c.state == RunState::Exited && c.exit_code == 0);
    let ready = match kind {
        Kind::App | Kind::Sidecar => running && probes.is_none_or(|p| p.ready),
        Kind::Init => succeeded,
    };
    let (state, last_state) = match (latest, waiting) {
        (Some(c), _) if c.state == RunState::Running => (
            ContainerState {
                running: Some(ContainerStateRunning { started_at: c.started_at.map(time) }),
                ..Default::default()
            },
            terminated_state(previous),
        ),
        (_, Some(w)) => (
            waiting_state(w.reason, Some(w.message.clone())),
            terminated_state(latest).or_else(|| terminated_state(previous)),
        ),
        (Some(c), None) if c.state == RunState::Exited => {
            (ContainerState { terminated: Some(terminated(c)), ..Default::default() }, terminated_state(previous))
        }
        (Some(c), None) if c.state == RunState::Unknown => {
            (waiting_state(WaitingReason::ContainerStatusUnknown, None), terminated_state(previous))
        }
        (_, None) => (waiting_state(not_yet, None), terminated_state(previous)),
    };
    ContainerStatus {
        name: name.to_string(),
        image: image.to_string(),
        image_id: latest.map(|c| c.image_ref.clone()).unwrap_or_default(),
        container_id: latest.map(|c| format!("{CONTAINER_ID_PREFIX}{}", c.id)),
        ready,
        started: Some(running && probes.is_none_or(|p| p.started)),
        restart_count: latest.map(|c| i32::try_from(c.attempt).unwrap_or(i32::MAX)).unwrap_or(0),
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        ..Default::default()
    }
}

/// The pod phase from app container states (the kubelet's rules).
pub fn phase(policy: RestartPolicy, statuses: &[ContainerStatus]) -> PodPhase {
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s.last_state.as_ref().is_some_and(|l| l.terminated.is_some()) {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        return PodPhase::Pending;
    }
    if running > 0 {
        return PodPhase::Running;
    }
    if stopped == 0 {
        return PodPhase::Pending;
    }
    match policy {
        RestartPolicy::Always => PodPhase::Running,
        _ if stopped == succeeded => PodPhase::Succeeded,
        RestartPolicy::Never => PodPhase::Failed,
        RestartPolicy::OnFailure => PodPhase::Running,
    }
}

/// The upstream QoS class (one implementation for both planes, in
/// `bosun-resources`).
pub fn qos_class(pod: &Pod) -> &'static str {
    bosun_resources::pod_qos_class(pod.spec.as_ref())
}

/// The kubelet condition `type_`; its transition time is kept from the
/// first condition of that type in `history` when its status is the same.
fn condition(
    history: &[PodCondition],
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let transition = history
        .iter()
        .find(|c| c.type_ == type_)
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(time(now));
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(transition),
        ..Default::default()
    }
}

/// The probe flags of a container: `None` without a prober (running means
/// ready and started); a probed pod's container missing from the map is
/// neither.
fn probes_of(inputs: &StatusInputs<'_>, name: &str) -> Option<ContainerProbes> {
    let none = ContainerProbes { ready: false, started: false };
    inputs.probes.map(|p| p.get(name).copied().unwrap_or(none))
}

fn init_statuses(pod: &Pod, observed: &ObservedPod, inputs: &StatusInputs<'_>) -> Vec<ContainerStatus> {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .map(|c| {
            let kind = if is_sidecar(c) { Kind::Sidecar } else { Kind::Init };
            let image = c.image.as_deref().unwrap_or_default();
            let waiting = inputs.waiting.get(&c.name);
            let probes = if kind == Kind::Sidecar { probes_of(inputs, &c.name) } else { None };
            container_status(&c.name, image, kind, observed, waiting, WaitingReason::PodInitializing, probes)
        })
        .collect()
}

/// The status the pod should have now.
pub fn compute_pod_status(pod: &Pod, observed: &ObservedPod, inputs: StatusInputs<'_>) -> PodStatus {
    let old = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let now = inputs.now;
    let progress = init::progress(pod, observed, &|c: &ObservedContainer| c.state == RunState::Running);
    let not_yet = match progress {
        init::Progress::Done => WaitingReason::ContainerCreating,
        _ => WaitingReason::PodInitializing,
    };
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| {
            let image = c.image.as_deref().unwrap_or_default();
            let probes = probes_of(&inputs, &c.name);
            container_status(&c.name, image, Kind::App, observed, inputs.waiting.get(&c.name), not_yet, probes)
        })
        .collect();
    let init_statuses = init_statuses(pod, observed, &inputs);
    let (mut reason, mut message) = (old.reason.clone(), old.message.clone());
    let phase = match PodPhase::of(pod) {
        Some(p) if p.is_terminal() => p,
        _ if deadline::check(pod, now) == deadline::Deadline::Exceeded => {
            reason = Some(PodFailureReason::DeadlineExceeded.as_str().to_string());
            message = Some(deadline::MESSAGE.to_string());
            PodPhase::Failed
        }
        _ if progress == init::Progress::Failed => PodPhase::Failed,
        _ if progress == init::Progress::Initializing => PodPhase::Pending,
        _ => phase(RestartPolicy::of(pod), &statuses),
    };
    let previous = old.conditions.clone().unwrap_or_default();
    // Where the kubelet's own conditions keep their transition times from:
    // what this worker last decided, then what the API shows.
    let decided = inputs.previous.and_then(|s| s.conditions.as_ref()).into_iter().flatten();
    let history: Vec<PodCondition> =
        decided.filter(|c| readiness_gates::is_kubelet_condition(&c.type_)).chain(previous.iter()).cloned().collect();
    let unready: Vec<&str> = statuses.iter().filter(|s| !s.ready).map(|s| s.name.as_str()).collect();
    let all_ready = unready.is_empty();
    let (ready_reason, ready_message) = match (all_ready, phase.is_terminal()) {
        (true, _) => (None, None),
        (false, true) => (Some("PodCompleted"), None),
        (false, false) => {
            (Some("ContainersNotReady"), Some(format!("containers with unready status: [{}]", unready.join(" "))))
        }
    };
    // Once app containers ran, the pod was initialized (also after its
    // sandbox stopped, when the init containers' runs are history).
    let initialized = progress == init::Progress::Done
        || (progress == init::Progress::Initializing && statuses.iter().any(|s| s.container_id.is_some()));
    let incomplete: Vec<&str> = init_statuses.iter().filter(|s| !s.ready).map(|s| s.name.as_str()).collect();
    let (init_reason, init_message) = if initialized {
        (None, None)
    } else {
        (
            Some("ContainersNotInitialized"),
            Some(format!("containers with incomplete status: [{}]", incomplete.join(" "))),
        )
    };
    let scheduled = history
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .cloned()
        .unwrap_or_else(|| condition(&history, "PodScheduled", true, None, None, now));
    let sandbox_ready = observed.ready_sandbox().is_some();
    // Ready also waits for the readiness gates (when the containers are).
    let gates = if all_ready { readiness_gates::unmet(pod, &previous) } else { None };
    let (pod_ready, pod_ready_reason, pod_ready_message) = match gates {
        Some(message) => (false, Some(readiness_gates::GATES_NOT_READY), Some(message)),
        None => (all_ready, ready_reason, ready_message.clone()),
    };
    let mut conditions = vec![
        condition(&history, "PodReadyToStartContainers", sandbox_ready, None, None, now),
        condition(&history, "Initialized", initialized, init_reason, init_message, now),
        condition(&history, "Ready", pod_ready, pod_ready_reason, pod_ready_message, now),
        condition(&history, "ContainersReady", all_ready, ready_reason, ready_message, now),
        scheduled,
    ];
    conditions.extend(readiness_gates::foreign_conditions(&previous).cloned());
    let ips: Vec<String> = observed
        .ready_sandbox()
        .map(|s| s.ips.clone())
        .filter(|ips| !ips.is_empty())
        .or_else(|| old.pod_ips.as_ref().map(|ips| ips.iter().map(|ip| ip.ip.clone()).collect()))
        .unwrap_or_default();
    PodStatus {
        phase: Some(phase.as_str().to_string()),
        reason,
        message,
        conditions: Some(conditions),
        host_ip: Some(inputs.host_ip.to_string()),
        host_ips: Some(vec![HostIP { ip: inputs.host_ip.to_string() }]),
        pod_ip: ips.first().cloned(),
        pod_ips: (!ips.is_empty()).then(|| ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        start_time: old
            .start_time
            .clone()
            .or_else(|| inputs.previous.and_then(|s| s.start_time.clone()))
            .or(Some(time(now))),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(statuses),
        qos_class: Some(qos_class(pod).to_string()),
        ..old
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
