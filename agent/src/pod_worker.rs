//! One task per pod: the level-triggered loop observe (CRI) -> decide
//! (`compute_pod_actions`) -> apply -> compute status -> hand it to the
//! status manager (which writes it if it changed; the worker never waits
//! but for the final status of a deleted pod). One pass is [`sync`], its
//! apply step [`apply`], termination [`teardown`].
//! Woken by pod updates (latest-update-wins `watch` channel), by runtime
//! changes seen by the manager's relist, and by a timer (fast while the pod
//! is transitioning, slow when steady).
//!
//! Owns the backoffs of its pod (saved under the pod directory, see
//! `recovery`). Everything else is rebuilt from the runtime on every sync,
//! so an agent restart loses nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::actions::Waiting;
use crate::backoff::Backoff;
use crate::events::EventSink;
use crate::kubelet_metrics::WorkerOperation;
use crate::pod_api::{ApiError, PodApi};
use crate::prober::PodProber;
use crate::runtime::{Runtime, RuntimeError};
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
    /// The pod's cgroup could not be created.
    #[error("pod {pod}: {source}")]
    Cgroup {
        /// `namespace/name`.
        pod: String,
        /// The failure.
        source: crate::pod_cgroups::Error,
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
    /// What pods' resolv.conf is built from.
    pub dns: crate::dns::PodDnsSettings,
    /// Sync intervals.
    pub timing: Timing,
    /// tmpfs mounts of volumes.
    pub mounter: Arc<dyn crate::volumes::Mounter>,
    /// The node's watches of mounted ConfigMaps and Secrets (`None`: poll
    /// them once per steady interval).
    pub objects: Option<Arc<crate::object_watch::ObjectWatches>>,
    /// The node's pod cgroups (sandbox `cgroup_parent`, pod limits).
    pub cgroups: crate::pod_cgroups::PodCgroups,
    /// Node allocatable (in-place resize checks, `resourceFieldRef` defaults).
    pub allocatable: crate::node::NodeAllocatable,
    /// Where passes, pod starts and relists are recorded.
    pub metrics: crate::kubelet_metrics::PodMetrics,
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
    /// The status last handed to the status manager (the watch may show
    /// an older one for a while).
    last_status: Option<PodStatus>,
    /// The node-refusal Event was sent (once per worker).
    refusal_announced: bool,
    termination_messages: messages::TerminationMessages,
    volumes: volumes::VolumeState,
    /// Probe workers of this pod (set when the worker runs).
    prober: Option<PodProber>,
    /// The pod updates (set when the worker runs), watched while
    /// terminating for a shortened grace.
    updates: Option<watch::Receiver<Option<Arc<Pod>>>>,
    /// In-place resize: the running containers' cgroup values.
    resize: crate::resize::ResizeState,
    /// Times the pod's start (set at the first pass).
    start_clock: Option<crate::kubelet_metrics::StartClock>,
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
            last_status: None,
            refusal_announced: false,
            termination_messages: messages::TerminationMessages::default(),
            volumes: volumes::VolumeState::default(),
            prober: None,
            updates: None,
            resize: crate::resize::ResizeState::default(),
            start_clock: None,
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
        self.restore_backoffs().await;
        let mut first = true;
        loop {
            let desired = pods.borrow_and_update().clone();
            let operation = WorkerOperation::of(first, desired.is_some());
            first = false;
            let started = Instant::now();
            let result = match desired {
                Some(pod) => {
                    self.last_pod = Some(pod.clone());
                    self.sync(&pod).await
                }
                None => self.remove_all().await.map(|()| Outcome::Finished),
            };
            self.deps.metrics.record_worker_pass(operation, started.elapsed());
            let wait = match result {
                Ok(Outcome::Finished) => {
                    self.remove_cgroup(&token).await;
                    return Exit::Finished;
                }
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
}

mod admit;
mod apply;
mod backoffs;
mod cgroup_removal;
mod hooks;
mod messages;
mod pull;
mod start;
mod sync;
mod teardown;
mod volumes;

use teardown::ignore_not_found;
pub use teardown::remove_pod_from_runtime;
