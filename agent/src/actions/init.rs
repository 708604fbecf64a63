//! Init containers and native sidecars, as upstream orders them:
//!
//! - init containers run one at a time in spec order, each to completion
//!   (exit 0) before the next, and all before any app container;
//! - a failed init container is restarted with the crash backoff, unless the
//!   pod's restartPolicy is Never: then the pod fails;
//! - a native sidecar (an init container with `restartPolicy: Always`) lets
//!   the next init container start once it is started (running, and not in
//!   [`Context::startup_pending`]), keeps running, and is restarted whenever
//!   it exits;
//! - when the app containers of a pod that does not restart them have all
//!   finished, the sidecars are stopped; at termination they stop after the
//!   app containers, in reverse order.
//!
//! A new sandbox runs the init containers again.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::{decide_container, start_or_hold, Context, PodActions, RestartPolicy};
use crate::enums::is_sidecar;
use crate::observed::{ObservedContainer, ObservedPod, RunState};

/// Where the pod stands with its init containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Every init container succeeded and every sidecar started.
    Done,
    /// Still initializing: app containers wait.
    Initializing,
    /// An init container failed and the pod never restarts: the pod fails.
    Failed,
}

fn init_containers(pod: &Pod) -> &[Container] {
    pod.spec.as_ref().and_then(|s| s.init_containers.as_deref()).unwrap_or_default()
}

/// True when `name` is a native sidecar of `pod`.
pub fn is_sidecar_name(pod: &Pod, name: &str) -> bool {
    init_containers(pod).iter().any(|c| c.name == name && is_sidecar(c))
}

/// The newest attempt of `name` in `sandbox` (none without a sandbox).
fn latest_in<'a>(observed: &'a ObservedPod, name: &str, sandbox: Option<&str>) -> Option<&'a ObservedContainer> {
    observed.latest(name).filter(|c| Some(c.sandbox_id.as_str()) == sandbox)
}

/// Where the init containers stand, without deciding anything (for status).
pub fn progress(pod: &Pod, observed: &ObservedPod, started: &dyn Fn(&ObservedContainer) -> bool) -> Progress {
    let sandbox = observed.ready_sandbox().map(|s| s.id.as_str());
    let policy = RestartPolicy::of(pod).for_init();
    for container in init_containers(pod) {
        let latest = latest_in(observed, &container.name, sandbox);
        let passed = match latest {
            None => false,
            Some(c) if is_sidecar(container) => started(c) || c.state == RunState::Exited,
            Some(c) if c.state == RunState::Exited && c.exit_code == 0 => true,
            Some(c) if c.state == RunState::Exited && !policy.restarts(c.exit_code) => return Progress::Failed,
            Some(_) => false,
        };
        if !passed {
            return Progress::Initializing;
        }
    }
    Progress::Done
}

/// Decides the init containers: keeps sidecars that passed running, starts
/// or restarts the first init container that has not passed, and reports
/// the progress.
pub fn decide(
    pod: &Pod,
    observed: &ObservedPod,
    sandbox: Option<&str>,
    ctx: Context<'_>,
    actions: &mut PodActions,
) -> Progress {
    let policy = RestartPolicy::of(pod).for_init();
    for container in init_containers(pod) {
        let name = container.name.as_str();
        let latest = latest_in(observed, name, sandbox);
        if let (None, Some(old)) = (latest, observed.latest(name)) {
            // Ran in an older sandbox: run again in this one.
            if matches!(old.state, RunState::Running | RunState::Created | RunState::Unknown) {
                actions.kill_containers.push(old.id.clone());
            }
            start_or_hold(container, observed, old.attempt + 1, None, ctx, actions);
            return Progress::Initializing;
        }
        if is_sidecar(container) {
            decide_container(pod, container, observed, sandbox, RestartPolicy::Always, ctx, actions);
            let passed = latest.is_some_and(|c| ctx.started(c) || c.state == RunState::Exited);
            if !passed {
                return Progress::Initializing;
            }
            continue;
        }
        match latest {
            Some(c) if c.state == RunState::Exited && c.exit_code == 0 => continue,
            Some(c) if c.state == RunState::Exited && !policy.restarts(c.exit_code) => return Progress::Failed,
            _ => {
                decide_container(pod, container, observed, sandbox, policy, ctx, actions);
                return Progress::Initializing;
            }
        }
    }
    Progress::Done
}

/// True when the pod does not restart its app containers and all of them
/// have finished (for good): the pod is complete, its sidecars may stop.
pub fn app_containers_finished(pod: &Pod, observed: &ObservedPod) -> bool {
    let policy = RestartPolicy::of(pod);
    if policy == RestartPolicy::Always {
        return false;
    }
    let Some(spec) = pod.spec.as_ref() else { return false };
    spec.containers
        .iter()
        .all(|c| observed.latest(&c.name).is_some_and(|o| o.state == RunState::Exited && !policy.restarts(o.exit_code)))
}

/// Live containers in the order they stop: app containers (and anything
/// unknown to the spec) first, then init containers and sidecars in reverse
/// spec order.
pub fn termination_order(pod: &Pod, observed: &ObservedPod) -> Vec<String> {
    let live = observed.live_container_ids();
    let init = init_containers(pod);
    let rank = |c: &ObservedContainer| init.iter().position(|i| i.name == c.name).map_or(0, |p| init.len() - p);
    let mut ordered: Vec<&ObservedContainer> = observed.containers.iter().filter(|c| live.contains(&c.id)).collect();
    ordered.sort_by_key(|c| rank(c));
    ordered.into_iter().map(|c| c.id.clone()).collect()
}

/// [`termination_order`] grouped into waves that may stop in parallel: all
/// app containers together, then one wave per init container or sidecar.
pub fn termination_waves(pod: &Pod, observed: &ObservedPod) -> Vec<Vec<String>> {
    let init = init_containers(pod);
    let mut waves: Vec<Vec<String>> = Vec::new();
    let mut last_rank = None;
    for id in termination_order(pod, observed) {
        let name = observed.containers.iter().find(|c| c.id == id).map(|c| c.name.as_str()).unwrap_or_default();
        let rank = init.iter().position(|i| i.name == name).map_or(0, |p| init.len() - p);
        match waves.last_mut() {
            Some(wave) if last_rank == Some(rank) => wave.push(id),
            _ => waves.push(vec![id]),
        }
        last_rank = Some(rank);
    }
    waves
}
