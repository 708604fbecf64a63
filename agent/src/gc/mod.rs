//! Garbage collection of the node's runtime objects, as upstream's
//! container and image GC managers:
//! - every container period (1 min): dead containers (the newest dead
//!   instance per pod and container name stays, for `kubectl logs
//!   --previous`; all of a deleted pod's go) and dead sandboxes
//!   ([`containers::compute_container_gc`]);
//! - every image period (5 min): unused images once the image filesystem
//!   (CRI `ImageFsInfo`, sized with `statvfs`) is above the high threshold,
//!   down to the low one ([`images::compute_image_gc`]), with the Events
//!   `FreeDiskSpaceFailed` and `ImageGCFailed` on the Node as upstream
//!   (`ContainerGCFailed` for a failed container pass).
//!
//! Decisions are pure (`containers`, `images`); [`apply`] lists the runtime,
//! decides and removes through the [`Runtime`] trait. Only exited/created
//! containers and not-ready sandboxes are ever removed: stopping what runs
//! is the pod workers' job (and the pod manager's orphan sweep).
//!
//! Must not: treat a pod as deleted before the agent knows all its pods
//! ([`PodStates::all_known`]), or the dead containers that a restarting
//! agent rebuilds crash-loop backoffs from would be lost.

pub mod apply;
pub mod config;
pub mod containers;
pub mod images;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use config::GcSettings;

use crate::events::EventSink;
use crate::runtime::Runtime;

/// Upstream's `ContainerGCPeriod`.
pub const DEFAULT_CONTAINER_PERIOD: Duration = Duration::from_secs(60);
/// Upstream's `ImageGCPeriod`.
pub const DEFAULT_IMAGE_PERIOD: Duration = Duration::from_secs(300);

/// What the agent knows of its pods.
pub trait PodStates: Send + Sync {
    /// True once the agent has its full list of pods (the API's initial
    /// list): only then is an unknown pod a deleted one.
    fn all_known(&self) -> bool;
    /// True if the agent runs the pod `uid`.
    fn is_known(&self, uid: &str) -> bool;
}

impl PodStates for crate::pod_manager::PodRegistry {
    fn all_known(&self) -> bool {
        self.is_synced()
    }

    fn is_known(&self, uid: &str) -> bool {
        self.contains(uid)
    }
}

/// How often the passes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    pub containers: Duration,
    pub images: Duration,
}

impl Default for Periods {
    fn default() -> Self {
        Self { containers: DEFAULT_CONTAINER_PERIOD, images: DEFAULT_IMAGE_PERIOD }
    }
}

/// What the collector works with.
pub struct Deps {
    pub runtime: Arc<dyn Runtime>,
    pub pods: Arc<dyn PodStates>,
    pub image_fs: Arc<dyn apply::ImageFs>,
    pub events: Arc<dyn EventSink>,
    /// The Node, for Events.
    pub node_name: String,
}

/// Runs container GC every `periods.containers` and image GC every
/// `periods.images` until `token` is cancelled; failures are logged (and
/// reported as Events where upstream does) and retried next period.
pub async fn run(deps: Deps, settings: GcSettings, periods: Periods, token: CancellationToken) {
    let mut collector = apply::Collector::new(deps, settings);
    let mut containers = tokio::time::interval_at(tokio::time::Instant::now() + periods.containers, periods.containers);
    let mut images = tokio::time::interval_at(tokio::time::Instant::now() + periods.images, periods.images);
    containers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    images.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            _ = containers.tick() => collector.collect_containers_or_report().await,
            _ = images.tick() => collector.collect_images().await,
        }
    }
}
