//! One task per pod: the level-triggered loop observe (CRI) -> decide
//! (`compute_pod_actions`) -> apply -> compute status -> hand it to the
//! status manager (which writes it if it changed; the worker never waits).
//! Woken by pod updates (latest-update-wins `watch` channel), by runtime
//! changes seen by the manager's relist, and by a timer (fast while the pod
//! is transitioning, slow when steady).
//!
//! Owns the in-memory backoffs of its pod. Everything else is rebuilt from
//! the runtime on every sync, so an agent restart loses nothing but backoff.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::actions::{self, compute_pod_actions, PodActions, Waiting};
use crate::backoff::Backoff;
use crate::enums::WaitingReason;
use crate::events::{pod_reference, EventSink, EventType};
use crate::observed::{observe, ObservedPod};
use crate::pod_api::{ApiError, PodApi};
use crate::prober::{self, PodProber};
use crate::runtime::{Runtime, RuntimeError};
use crate::runtime_spec;
use crate::status::{compute_pod_status, StatusInputs};
use crate::status_manager::StatusHandle;

/// A sync that could not complete; retried with backoff by the loop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A runtime call failed.
    #[error("pod {pod}: {source}")]
    Runtime {
        /// `namespace/name`.
        pod: String,
        /// The failure.
        source: RuntimeError,
    },
    /// An API call failed.
    #[error("pod {pod}: {source}")]
    Api {
        /// `namespace/name`.
        pod: String,
        /// The failure.
        source: ApiError,
    },
}

/// Sync intervals.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// While containers are starting, backing off or terminating.
    pub transitioning: Duration,
    /// When every container is running or finished.
    pub steady: Duration,
    /// Grace period used when the pod vanished from the API.
    pub orphan_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            transitioning: Duration::from_secs(1),
            steady: Duration::from_secs(10),
            orphan_grace: Duration::from_secs(2),
        }
    }
}

/// What every pod worker needs.
pub struct WorkerDeps {
    /// The container runtime.
    pub runtime: Arc<dyn Runtime>,
    /// The API server (deletion, env sources).
    pub api: Arc<dyn PodApi>,
    /// The node's single writer of pod status.
    pub status: StatusHandle,
    /// Event recorder.
    pub events: Arc<dyn EventSink>,
    /// State root (pod logs under `<root>/pods`).
    pub root_dir: PathBuf,
    /// Node IP for `status.hostIP`.
    pub host_ip: String,
    /// Sync intervals.
    pub timing: Timing,
    /// tmpfs mounts of volumes.
    pub mounter: Arc<dyn crate::volumes::Mounter>,
    /// The node's watches of mounted ConfigMaps and Secrets (`None`: poll
    /// them once per steady interval).
    pub objects: Option<Arc<crate::object_watch::ObjectWatches>>,
}

/// How a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The pod was terminated, removed from the runtime and deleted.
    Finished,
    /// The agent is shutting down; the pod keeps running.
    Cancelled,
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn images_of(pod: &Pod) -> Vec<String> {
    let mut images: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten().chain(s.containers.iter()))
        .filter_map(|c| c.image.clone())
        .collect();
    images.sort();
    images.dedup();
    images
}

/// The state of one pod's worker.
pub struct PodWorker {
    deps: Arc<WorkerDeps>,
    uid: String,
    crash: Backoff,
    pull: Backoff,
    next_sandbox_attempt: u32,
    last_held: BTreeMap<String, Waiting>,
    last_pod: Option<Arc<Pod>>,
    /// The node-refusal Event was sent (once per worker).
    refusal_announced: bool,
    termination_messages: messages::TerminationMessages,
    volumes: volumes::VolumeState,
    /// Probe workers of this pod (set when the worker runs).
    prober: Option<PodProber>,
    /// The pod updates (set when the worker runs), watched while
    /// terminating for a shortened grace.
    updates: Option<watch::Receiver<Option<Arc<Pod>>>>,
}

enum Outcome {
    Continue(Duration),
    Finished,
}

impl PodWorker {
    /// A worker for pod `uid`.
    pub fn new(deps: Arc<WorkerDeps>, uid: String) -> Self {
        Self {
            deps,
            uid,
            crash: Backoff::crash_loop(),
            pull: Backoff::image_pull(),
            next_sandbox_attempt: 0,
            last_held: BTreeMap::new(),
            last_pod: None,
            refusal_announced: false,
            termination_messages: messages::TerminationMessages::default(),
            volumes: volumes::VolumeState::default(),
            prober: None,
            updates: None,
        }
    }

    /// Runs until the pod is gone (`None` on `pods`, or a finished deletion)
    /// or `token` is cancelled.
    pub async fn run(
        mut self,
        mut pods: watch::Receiver<Option<Arc<Pod>>>,
        wake: Arc<Notify>,
        token: CancellationToken,
    ) -> Exit {
        let mut failures: u32 = 0;
        self.prober = Some(PodProber::new(
            self.deps.runtime.clone(),
            self.deps.events.clone(),
            wake.clone(),
            token.child_token(),
        ));
        self.updates = Some(pods.clone());
        self.volumes.wake = Some(wake.clone());
        loop {
            let desired = pods.borrow_and_update().clone();
            let result = match desired {
                Some(pod) => {
                    self.last_pod = Some(pod.clone());
                    self.sync(&pod).await
                }
                None => self.remove_all().await.map(|()| Outcome::Finished),
            };
            let wait = match result {
                Ok(Outcome::Finished) => return Exit::Finished,
                Ok(Outcome::Continue(wait)) => {
                    failures = 0;
                    wait
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, uid = %self.uid, failures, "pod sync failed");
                    let secs = 1u64 << (failures - 1).min(5);
                    Duration::from_secs(secs)
                }
            };
            tokio::select! {
                () = token.cancelled() => return Exit::Cancelled,
                changed = pods.changed() => {
                    if changed.is_err() {
                        return Exit::Cancelled;
                    }
                }
                () = wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn observe(&mut self, pod: &Pod) -> Result<ObservedPod, Error> {
        let mut observed = observe(self.deps.runtime.as_ref(), &self.uid, &images_of(pod))
            .await
            .map_err(|source| Error::Runtime { pod: pod_key(pod), source })?;
        self.termination_messages.fill(&mut observed).await;
        Ok(observed)
    }

    async fn sync(&mut self, pod: &Pod) -> Result<Outcome, Error> {
        let mut observed = self.observe(pod).await?;
        if let Some(outcome) = self.refuse_unadmitted(pod, &observed).await? {
            return Ok(outcome);
        }
        if pod.metadata.deletion_timestamp.is_none() && self.act_on_probes(pod, &observed).await? {
            observed = self.observe(pod).await?;
        }
        let now = Timestamp::now();
        self.crash.gc(now);
        self.pull.gc(now);
        let pending = self.prober.as_ref().map(|p| prober::startup_pending(pod, &observed, p.results()));
        let mut ctx = actions::Context::new(now, &self.crash, &self.pull);
        if let Some(pending) = &pending {
            ctx.startup_pending = pending;
        }
        let mut actions = compute_pod_actions(pod, &observed, ctx);
        if actions.terminate.is_some() {
            let grace = crate::termination::deletion_grace(pod, Timestamp::now());
            self.terminate(pod, &observed, grace).await?;
            self.deps
                .api
                .delete_pod(
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    &self.uid,
                )
                .await
                .map_err(|source| Error::Api { pod: pod_key(pod), source })?;
            teardown::remove_log_dirs(&self.deps.root_dir, &self.uid).await;
            self.tear_down_volumes().await;
            return Ok(Outcome::Finished);
        }
        let volume_holds = self.sync_volumes(pod, &mut actions).await;
        let busy = actions != PodActions::default();
        if busy {
            tracing::debug!(pod = %pod_key(pod), ?actions, "applying pod actions");
        }
        let mut held = actions.waiting.clone();
        self.announce_holds(pod, &held).await;
        held.extend(volume_holds);
        if busy {
            self.apply(pod, &observed, &actions, &mut held).await?;
        }
        self.last_held = held.clone();
        let observed = if busy { self.observe(pod).await? } else { observed };
        let probes = self.prober.as_mut().map(|p| {
            p.sync(pod, &observed);
            prober::container_probes(pod, &observed, p.results())
        });
        let status = compute_pod_status(
            pod,
            &observed,
            StatusInputs {
                host_ip: &self.deps.host_ip,
                waiting: &held,
                now: Timestamp::now(),
                probes: probes.as_ref(),
            },
        );
        let steady = !busy
            && held.is_empty()
            && status.container_statuses.iter().flatten().all(|c| {
                let state = c.state.clone().unwrap_or_default();
                state.running.is_some() || state.terminated.is_some()
            });
        self.deps.status.set(pod, status);
        let mut wait = if steady { self.deps.timing.steady } else { self.deps.timing.transitioning };
        if let Some(requeue) = actions.requeue_after {
            wait = wait.min(requeue.max(Duration::from_millis(100)));
        }
        Ok(Outcome::Continue(wait))
    }

    /// Emits a BackOff event when a container newly enters a backoff hold.
    async fn announce_holds(&self, pod: &Pod, held: &BTreeMap<String, Waiting>) {
        for (name, waiting) in held {
            if self.last_held.get(name) == Some(waiting) {
                continue;
            }
            let (type_, message) = match waiting.reason {
                WaitingReason::PodInitializing => continue,
                WaitingReason::CrashLoopBackOff => {
                    (EventType::Warning, format!("Back-off restarting failed container {name} in pod {}", pod_key(pod)))
                }
                WaitingReason::ImagePullBackOff => (EventType::Normal, waiting.message.clone()),
                _ => (EventType::Warning, waiting.message.clone()),
            };
            let reason = if waiting.reason.is_backoff() { "BackOff" } else { "Failed" };
            self.deps.events.record(&pod_reference(pod, Some(name)), type_, reason, &message).await;
        }
    }

    async fn event(&self, pod: &Pod, container: &str, type_: EventType, reason: &str, message: &str) {
        self.deps.events.record(&pod_reference(pod, Some(container)), type_, reason, message).await;
    }

    async fn apply(
        &mut self,
        pod: &Pod,
        observed: &ObservedPod,
        actions: &PodActions,
        held: &mut BTreeMap<String, Waiting>,
    ) -> Result<(), Error> {
        let runtime = self.deps.runtime.clone();
        let rt_err = |source: RuntimeError| Error::Runtime { pod: pod_key(pod), source };
        let grace = actions::grace_period(pod);
        if let Some(failure) = &actions.fail_pod {
            let reason = failure.reason.as_str();
            self.deps.events.record(&pod_reference(pod, None), EventType::Warning, reason, &failure.message).await;
        }
        for id in &actions.kill_containers {
            if let Some(c) = observed.containers.iter().find(|c| &c.id == id) {
                let message =
                    actions.kill_messages.get(id).cloned().unwrap_or_else(|| format!("Stopping container {}", c.name));
                self.event(pod, &c.name, EventType::Normal, "Killing", &message).await;
            }
            ignore_not_found(runtime.stop_container(id, grace).await).map_err(rt_err)?;
        }
        for id in &actions.stop_sandboxes {
            ignore_not_found(runtime.stop_pod_sandbox(id).await).map_err(rt_err)?;
        }
        for id in &actions.remove_containers {
            ignore_not_found(runtime.remove_container(id).await).map_err(rt_err)?;
        }
        for id in &actions.remove_sandboxes {
            ignore_not_found(runtime.remove_pod_sandbox(id).await).map_err(rt_err)?;
        }
        let (sandbox_id, sandbox_config) = match actions.create_sandbox {
            Some(attempt) => {
                let attempt = attempt.max(self.next_sandbox_attempt);
                self.next_sandbox_attempt = attempt + 1;
                let config = runtime_spec::sandbox_config(pod, attempt, &self.deps.root_dir);
                if let Err(error) = std::fs::create_dir_all(&config.log_directory) {
                    tracing::warn!(%error, dir = %config.log_directory, "cannot create pod log directory");
                }
                match runtime.run_pod_sandbox(&config).await {
                    Ok(id) => {
                        tracing::info!(pod = %pod_key(pod), sandbox = %id, attempt, "sandbox created");
                        (id, config)
                    }
                    Err(source) => {
                        let message = format!("Failed to create pod sandbox: {source}");
                        self.deps
                            .events
                            .record(&pod_reference(pod, None), EventType::Warning, "FailedCreatePodSandBox", &message)
                            .await;
                        return Err(rt_err(source));
                    }
                }
            }
            None => match observed.ready_sandbox() {
                Some(s) => {
                    let config = runtime_spec::sandbox_config(pod, s.attempt, &self.deps.root_dir);
                    (s.id.clone(), config)
                }
                None => return Ok(()),
            },
        };
        if actions.start_containers.is_empty() {
            return Ok(());
        }
        let sources = self.env_sources(pod, &sandbox_id).await?;
        for start in &actions.start_containers {
            if let Some(waiting) = self.start_container(pod, start, &sandbox_id, &sandbox_config, &sources).await {
                held.insert(start.name.clone(), waiting);
            }
        }
        Ok(())
    }
}

mod admit;
mod hooks;
mod messages;
mod start;
mod teardown;
mod volumes;

use teardown::ignore_not_found;
pub use teardown::remove_pod_from_runtime;
