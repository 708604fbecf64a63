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

use crate::actions::{RestartPolicy, Waiting};
use crate::observed::{ObservedContainer, ObservedPod, RunState};

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
}

/// API times have second precision; truncating keeps "unchanged" exact.
fn time(ts: Timestamp) -> Time {
    Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

fn terminated(c: &ObservedContainer) -> ContainerStateTerminated {
    let reason = if c.reason == "OOMKilled" {
        "OOMKilled"
    } else if c.exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    ContainerStateTerminated {
        exit_code: c.exit_code,
        reason: Some(reason.to_string()),
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

fn waiting_state(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting { reason: Some(reason.to_string()), message }),
        ..Default::default()
    }
}

fn container_status(name: &str, image: &str, observed: &ObservedPod, waiting: Option<&Waiting>) -> ContainerStatus {
    let latest = observed.latest(name);
    let previous = observed.previous(name);
    let running = latest.is_some_and(|c| c.state == RunState::Running);
    let (state, last_state) = match (latest, waiting) {
        (Some(c), _) if c.state == RunState::Running => (
            ContainerState {
                running: Some(ContainerStateRunning { started_at: c.started_at.map(time) }),
                ..Default::default()
            },
            terminated_state(previous),
        ),
        (_, Some(w)) => (
            waiting_state(&w.reason, Some(w.message.clone())),
            terminated_state(latest).or_else(|| terminated_state(previous)),
        ),
        (Some(c), None) if c.state == RunState::Exited => {
            (ContainerState { terminated: Some(terminated(c)), ..Default::default() }, terminated_state(previous))
        }
        (Some(c), None) if c.state == RunState::Unknown => {
            (waiting_state("ContainerStatusUnknown", None), terminated_state(previous))
        }
        (_, None) => (waiting_state("ContainerCreating", None), terminated_state(previous)),
    };
    ContainerStatus {
        name: name.to_string(),
        image: image.to_string(),
        image_id: latest.map(|c| c.image_ref.clone()).unwrap_or_default(),
        container_id: latest.map(|c| format!("{CONTAINER_ID_PREFIX}{}", c.id)),
        ready: running,
        started: Some(running),
        restart_count: latest.map(|c| i32::try_from(c.attempt).unwrap_or(i32::MAX)).unwrap_or(0),
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        ..Default::default()
    }
}

/// The pod phase from container states (the kubelet's rules).
pub fn phase(policy: RestartPolicy, statuses: &[ContainerStatus]) -> &'static str {
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
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == 0 {
        return "Pending";
    }
    match policy {
        RestartPolicy::Always => "Running",
        _ if stopped == succeeded => "Succeeded",
        RestartPolicy::Never => "Failed",
        RestartPolicy::OnFailure => "Running",
    }
}

/// The upstream QoS class (one implementation for both planes, in
/// `bosun-resources`).
pub fn qos_class(pod: &Pod) -> &'static str {
    bosun_resources::pod_qos_class(pod.spec.as_ref())
}

fn condition(
    previous: &[PodCondition],
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let transition = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
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

/// The status the pod should have now.
pub fn compute_pod_status(pod: &Pod, observed: &ObservedPod, inputs: StatusInputs<'_>) -> PodStatus {
    let old = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let now = inputs.now;
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| {
            container_status(&c.name, c.image.as_deref().unwrap_or_default(), observed, inputs.waiting.get(&c.name))
        })
        .collect();
    let phase = match old.phase.as_deref() {
        Some(p @ ("Succeeded" | "Failed")) if observed.live_container_ids().is_empty() => p,
        _ => phase(RestartPolicy::of(pod), &statuses),
    };
    let previous = old.conditions.clone().unwrap_or_default();
    let unready: Vec<&str> = statuses.iter().filter(|s| !s.ready).map(|s| s.name.as_str()).collect();
    let all_ready = unready.is_empty();
    let (reason, message) = match (all_ready, phase) {
        (true, _) => (None, None),
        (false, "Succeeded" | "Failed") => (Some("PodCompleted"), None),
        (false, _) => {
            (Some("ContainersNotReady"), Some(format!("containers with unready status: [{}]", unready.join(" "))))
        }
    };
    let scheduled = previous
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .cloned()
        .unwrap_or_else(|| condition(&previous, "PodScheduled", true, None, None, now));
    let sandbox_ready = observed.ready_sandbox().is_some();
    let conditions = vec![
        condition(&previous, "PodReadyToStartContainers", sandbox_ready, None, None, now),
        condition(&previous, "Initialized", true, None, None, now),
        condition(&previous, "Ready", all_ready, reason, message.clone(), now),
        condition(&previous, "ContainersReady", all_ready, reason, message, now),
        scheduled,
    ];
    let ips: Vec<String> = observed
        .ready_sandbox()
        .map(|s| s.ips.clone())
        .filter(|ips| !ips.is_empty())
        .or_else(|| old.pod_ips.as_ref().map(|ips| ips.iter().map(|ip| ip.ip.clone()).collect()))
        .unwrap_or_default();
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(inputs.host_ip.to_string()),
        host_ips: Some(vec![HostIP { ip: inputs.host_ip.to_string() }]),
        pod_ip: ips.first().cloned(),
        pod_ips: (!ips.is_empty()).then(|| ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        start_time: old.start_time.clone().or(Some(time(now))),
        container_statuses: Some(statuses),
        qos_class: Some(qos_class(pod).to_string()),
        ..old
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
