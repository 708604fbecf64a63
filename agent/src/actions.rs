//! The pod decision: given the desired Pod and what the runtime has for it,
//! what to do next (`compute_pod_actions`). Level-triggered: the same inputs
//! always give the same actions, and applying them moves toward the spec.
//!
//! Init containers and native sidecars are ordered by [`init`]; the
//! `activeDeadlineSeconds` clock is [`deadline`]; a container whose spec
//! changed (its image: the one mutable field) is recognised by the spec hash
//! the agent puts on every CRI container ([`crate::spec_hash`]).
//!
//! Must not: perform any of the actions. `pod_worker` applies them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::backoff::Backoff;
pub use crate::enums::RestartPolicy;
use crate::enums::{PodFailureReason, PodPhase, PullPolicy, WaitingReason};
use crate::observed::{ObservedContainer, ObservedPod, RunState};

pub mod deadline;
pub mod init;

/// Why a container is not running, as shown in `state.waiting`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// `CrashLoopBackOff`, `ImagePullBackOff`, `ErrImagePull`, ...
    pub reason: WaitingReason,
    /// Human-readable detail.
    pub message: String,
}

/// One container to (re)create and start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartContainer {
    /// Container name in the spec.
    pub name: String,
    /// Attempt number of the new container (= its restart count).
    pub attempt: u32,
    /// Pull the image first.
    pub pull: bool,
    /// When restarting after an exit: the exit time, recorded in the crash
    /// backoff once the restart is attempted.
    pub after_exit: Option<Timestamp>,
}

/// What the worker should do in this sync, in order: kill, remove, create
/// the sandbox, start containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodActions {
    /// The pod is being deleted: stop everything within this grace (what
    /// is left at `Context::now` until the deletion deadline; one budget for
    /// every termination wave), remove it, and delete the pod object.
    /// Nothing else is set then.
    pub terminate: Option<Duration>,
    /// Containers to stop (running in a dead sandbox, or in unknown state),
    /// in this order.
    pub kill_containers: Vec<String>,
    /// Killing Event messages for kills that have a specific reason (by
    /// container id), e.g. a changed definition.
    pub kill_messages: BTreeMap<String, String>,
    /// The whole pod fails now (its containers are in `kill_containers`).
    pub fail_pod: Option<PodFailure>,
    /// Sandboxes to stop (older, not ready ones still holding resources).
    pub stop_sandboxes: Vec<String>,
    /// Containers to remove (never started, or attempts older than previous).
    pub remove_containers: Vec<String>,
    /// Old sandboxes to remove (no containers of interest left in them).
    pub remove_sandboxes: Vec<String>,
    /// Create a new sandbox with this attempt.
    pub create_sandbox: Option<u32>,
    /// Containers to start, in spec order.
    pub start_containers: Vec<StartContainer>,
    /// Containers held back, with the reason.
    pub waiting: BTreeMap<String, Waiting>,
    /// Sync again after this long (the nearest backoff expiry).
    pub requeue_after: Option<Duration>,
}

impl PodActions {
    /// Whether applying these changes anything in the runtime (so the
    /// worker must observe it again before computing the status). Holds
    /// and requeues alone do not.
    pub fn changes_runtime(&self) -> bool {
        self.terminate.is_some()
            || !self.kill_containers.is_empty()
            || !self.stop_sandboxes.is_empty()
            || !self.remove_containers.is_empty()
            || !self.remove_sandboxes.is_empty()
            || self.create_sandbox.is_some()
            || !self.start_containers.is_empty()
    }
}

/// Backoff state and clock the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Now.
    pub now: Timestamp,
    /// Crash-loop backoff keyed by [`crash_key`].
    pub crash: &'a Backoff,
    /// Image pull backoff keyed by image.
    pub pull: &'a Backoff,
    /// Ids of running containers whose startup is not confirmed yet (a
    /// startup probe still pending). A sidecar in this set does not let the
    /// next init container start. Empty without probes.
    pub startup_pending: &'a BTreeSet<String>,
    /// Ids of running containers an in-place resize must restart
    /// (`resizePolicy: RestartContainer`, see [`crate::resize`]).
    pub resize_restarts: &'a BTreeSet<String>,
}

static NO_CONTAINERS: BTreeSet<String> = BTreeSet::new();

impl<'a> Context<'a> {
    /// A context where every running container counts as started.
    pub fn new(now: Timestamp, crash: &'a Backoff, pull: &'a Backoff) -> Self {
        Self { now, crash, pull, startup_pending: &NO_CONTAINERS, resize_restarts: &NO_CONTAINERS }
    }

    /// Whether running container `c` counts as started.
    pub fn started(&self, c: &ObservedContainer) -> bool {
        c.state == RunState::Running && !self.startup_pending.contains(&c.id)
    }
}

/// Why the agent fails a whole pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFailure {
    /// `status.reason`.
    pub reason: PodFailureReason,
    /// `status.message` and the Event's message.
    pub message: String,
}

/// Key of a container in the crash-loop backoff.
pub fn crash_key(pod: &Pod, container: &str) -> String {
    format!("{}/{}", pod.metadata.uid.as_deref().unwrap_or_default(), container)
}

/// Grace period for stopping the pod's containers.
pub fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

fn pod_ref(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    )
}

/// Decides the next actions for `desired` given `observed`.
pub fn compute_pod_actions(desired: &Pod, observed: &ObservedPod, ctx: Context<'_>) -> PodActions {
    let mut actions = PodActions::default();
    if desired.metadata.deletion_timestamp.is_some() {
        actions.terminate = Some(crate::termination::deletion_grace(desired, ctx.now));
        return actions;
    }
    let spec = desired.spec.clone().unwrap_or_default();
    let policy = RestartPolicy::of(desired);
    let ready = observed.ready_sandbox();

    if PodPhase::of(desired).is_some_and(PodPhase::is_terminal) {
        actions.kill_containers = init::termination_order(desired, observed);
        return actions;
    }
    match deadline::check(desired, ctx.now) {
        deadline::Deadline::Exceeded => {
            actions.kill_containers = init::termination_order(desired, observed);
            actions.fail_pod =
                Some(PodFailure { reason: PodFailureReason::DeadlineExceeded, message: deadline::MESSAGE.to_string() });
            return actions;
        }
        deadline::Deadline::Remaining(wait) => requeue(&mut actions, wait),
        deadline::Deadline::None => {}
    }

    let current_sandbox = match ready {
        Some(sandbox) => Some(sandbox.id.clone()),
        None => {
            // A sandbox died (or never existed). Without restarts, a pod whose
            // containers already ran is finished rather than re-created.
            let ran = spec.containers.iter().any(|c| observed.latest(&c.name).is_some());
            let all_succeeded = spec
                .containers
                .iter()
                .all(|c| observed.latest(&c.name).is_some_and(|o| o.state == RunState::Exited && o.exit_code == 0));
            let recreate = match policy {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => !all_succeeded,
                RestartPolicy::Never => !ran,
            };
            actions.kill_containers = observed.live_container_ids();
            actions.stop_sandboxes = observed.sandboxes.iter().filter(|s| s.ready).map(|s| s.id.clone()).collect();
            if !recreate {
                return actions;
            }
            let attempt = observed.latest_sandbox().map(|s| s.attempt + 1).unwrap_or(0);
            actions.create_sandbox = Some(attempt);
            None
        }
    };

    let progress = init::decide(desired, observed, current_sandbox.as_deref(), ctx, &mut actions);
    match progress {
        init::Progress::Done => {
            for container in &spec.containers {
                let sandbox = current_sandbox.as_deref();
                decide_container(desired, container, observed, sandbox, policy, ctx, &mut actions);
            }
            if init::app_containers_finished(desired, observed) {
                // A Job-style pod is complete: its sidecars stop too.
                actions.start_containers.retain(|s| !init::is_sidecar_name(desired, &s.name));
                actions.kill_containers.extend(init::termination_order(desired, observed));
            }
        }
        init::Progress::Initializing => {
            for container in &spec.containers {
                let message = "waiting for init containers to complete".to_string();
                hold(&mut actions, &container.name, WaitingReason::PodInitializing, message, None);
            }
        }
        init::Progress::Failed => {
            actions.start_containers.clear();
            actions.kill_containers = init::termination_order(desired, observed);
            return actions;
        }
    }
    let mut seen = BTreeSet::new();
    actions.kill_containers.retain(|id| seen.insert(id.clone()));
    actions
}

fn requeue(actions: &mut PodActions, wait: Duration) {
    actions.requeue_after = Some(actions.requeue_after.map_or(wait, |r| r.min(wait)));
}

fn hold(actions: &mut PodActions, name: &str, reason: WaitingReason, message: String, wait: Option<Duration>) {
    actions.waiting.insert(name.to_string(), Waiting { reason, message });
    if let Some(wait) = wait {
        requeue(actions, wait);
    }
}

/// Decides one container under `policy`: nothing while it runs unchanged,
/// a (re)start when it is missing, exited and restartable, or its
/// definition changed; a hold while a backoff runs.
pub(crate) fn decide_container(
    pod: &Pod,
    container: &Container,
    observed: &ObservedPod,
    sandbox: Option<&str>,
    policy: RestartPolicy,
    ctx: Context<'_>,
    actions: &mut PodActions,
) {
    let name = container.name.as_str();
    let latest: Option<&ObservedContainer> = observed.latest(name);
    let in_current = |c: &ObservedContainer| Some(c.sandbox_id.as_str()) == sandbox;
    let (attempt, after_exit) = match latest {
        None => (0, None),
        Some(c) if !in_current(c) => {
            // Left over from a dead sandbox: it ran once, so restart per policy.
            if matches!(c.state, RunState::Running | RunState::Created | RunState::Unknown) {
                actions.kill_containers.push(c.id.clone());
            }
            let exit_code = if c.state == RunState::Exited { c.exit_code } else { 137 };
            if !policy.restarts(exit_code) {
                return;
            }
            (c.attempt + 1, None)
        }
        Some(c) => match c.state {
            RunState::Running => {
                let resized = ctx.resize_restarts.contains(&c.id);
                if resized || !crate::spec_hash::matches(container, c.spec_hash.as_ref()) {
                    actions.kill_containers.push(c.id.clone());
                    let message = if resized {
                        format!("Container {name} resize requires a restart, will be restarted")
                    } else {
                        format!("Container {name} definition changed, will be restarted")
                    };
                    actions.kill_messages.insert(c.id.clone(), message);
                    start_or_hold(container, observed, c.attempt + 1, None, ctx, actions);
                }
                return;
            }
            RunState::Unknown => {
                actions.kill_containers.push(c.id.clone());
                return;
            }
            RunState::Created => {
                actions.remove_containers.push(c.id.clone());
                (c.attempt, None)
            }
            RunState::Exited => {
                if !policy.restarts(c.exit_code) {
                    return;
                }
                let key = crash_key(pod, name);
                let finished = c.finished_at.unwrap_or(ctx.now);
                if let Some(wait) = ctx.crash.remaining_since(&key, finished, ctx.now) {
                    let delay = ctx.crash.delay(&key).unwrap_or(wait);
                    let message = format!(
                        "back-off {}s restarting failed container={name} pod={}",
                        delay.as_secs(),
                        pod_ref(pod)
                    );
                    hold(actions, name, WaitingReason::CrashLoopBackOff, message, Some(wait));
                    return;
                }
                (c.attempt + 1, Some(finished))
            }
        },
    };
    start_or_hold(container, observed, attempt, after_exit, ctx, actions);
}

/// Starts `container` as `attempt` (pulling per its pull policy), or holds
/// it while the image is absent with policy Never or its pull backs off.
pub(crate) fn start_or_hold(
    container: &Container,
    observed: &ObservedPod,
    attempt: u32,
    after_exit: Option<Timestamp>,
    ctx: Context<'_>,
    actions: &mut PodActions,
) {
    let name = container.name.as_str();
    let image = container.image.clone().unwrap_or_default();
    let present = observed.images.get(&image).is_some_and(Option::is_some);
    let pull = match PullPolicy::of(container) {
        PullPolicy::Always => true,
        PullPolicy::Never => {
            if !present {
                let message = format!("Container image \"{image}\" is not present with pull policy of Never");
                hold(actions, name, WaitingReason::ErrImageNeverPull, message, None);
                return;
            }
            false
        }
        PullPolicy::IfNotPresent => !present,
    };
    if pull {
        if let Some(wait) = ctx.pull.remaining(&image, ctx.now) {
            let message = format!("Back-off pulling image \"{image}\"");
            hold(actions, name, WaitingReason::ImagePullBackOff, message, Some(wait));
            return;
        }
    }
    actions.start_containers.push(StartContainer { name: name.to_string(), attempt, pull, after_exit });
}

#[cfg(test)]
#[path = "actions_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "actions_lifecycle_tests.rs"]
mod lifecycle_tests;
