//! Dispatches pod updates from the API watch to one worker task per pod UID
//! (latest-update-wins through a `watch` channel), keeps the registry of pods
//! this node runs (read by the kubelet API), wakes the worker whose
//! container changed state (from containerd's events, see `pleg`, with a
//! periodic relist as the safety net), and sweeps orphans: runtime
//! sandboxes whose pod is no longer assigned to this node. Static pods
//! (`static_pods`) are a second source of pods beside the API; the API's
//! mirror pods of them are not run (their static pods are).
//!
//! Must not: touch a pod's containers itself (workers do), except orphans.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::kubelet_metrics::RuntimeCounts;
use crate::labels;
use crate::pleg::{Relister, Signal};
use crate::pod_worker::{remove_pod_from_runtime, Exit, PodWorker, WorkerDeps};

mod lifecycle;
use lifecycle::next_signal;

/// Pods this agent runs, by UID. One writer (the manager), many readers.
#[derive(Debug, Clone, Default)]
pub struct PodRegistry {
    pods: Arc<RwLock<BTreeMap<String, Arc<Pod>>>>,
    /// Set once the API's initial list of pods is in.
    synced: Arc<std::sync::atomic::AtomicBool>,
}

impl PodRegistry {
    /// All pods, ordered by UID.
    pub fn list(&self) -> Vec<Arc<Pod>> {
        self.pods.read().map(|p| p.values().cloned().collect()).unwrap_or_default()
    }

    /// The pod `namespace/name`, if this agent runs it.
    pub fn find(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        let pods = self.pods.read().ok()?;
        pods.values()
            .find(|p| p.metadata.namespace.as_deref() == Some(namespace) && p.metadata.name.as_deref() == Some(name))
            .cloned()
    }

    /// True if this agent runs the pod `uid`.
    pub fn contains(&self, uid: &str) -> bool {
        self.pods.read().is_ok_and(|p| p.contains_key(uid))
    }

    /// True once the API's initial list of pods is in: from then on a pod
    /// that is not here is not this node's.
    pub fn is_synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::Acquire)
    }

    fn mark_synced(&self) {
        self.synced.store(true, std::sync::atomic::Ordering::Release);
    }

    fn insert(&self, uid: &str, pod: Arc<Pod>) {
        if let Ok(mut pods) = self.pods.write() {
            pods.insert(uid.to_string(), pod);
        }
    }

    fn remove(&self, uid: &str) {
        if let Ok(mut pods) = self.pods.write() {
            pods.remove(uid);
        }
    }
}

/// Intervals of the manager's own loops.
#[derive(Debug, Clone, Copy)]
pub struct ManagerTiming {
    /// Runtime relist (wakes workers on container state changes).
    pub relist: Duration,
    /// Orphan sweep.
    pub sweep: Duration,
}

impl Default for ManagerTiming {
    fn default() -> Self {
        Self { relist: Duration::from_secs(1), sweep: Duration::from_secs(45) }
    }
}

struct Worker {
    pods: watch::Sender<Option<Arc<Pod>>>,
    wake: Arc<Notify>,
    /// Distinguishes a worker from an earlier one of the same UID.
    generation: u64,
}

/// Routes pods to workers.
pub struct PodManager {
    deps: Arc<WorkerDeps>,
    node_name: String,
    registry: PodRegistry,
    timing: ManagerTiming,
    workers: HashMap<String, Worker>,
    tracker: TaskTracker,
    finished_tx: mpsc::UnboundedSender<(String, u64)>,
    finished_rx: mpsc::UnboundedReceiver<(String, u64)>,
    generation: u64,
    init_seen: Option<BTreeSet<String>>,
    relister: Relister,
    lifecycle: Option<mpsc::Receiver<Signal>>,
    statics: Option<watch::Receiver<Vec<Arc<Pod>>>>,
    static_uids: BTreeSet<String>,
}

fn uid_of(pod: &Pod) -> Option<String> {
    pod.metadata.uid.clone()
}

impl PodManager {
    /// A manager for pods bound to `node_name`.
    pub fn new(deps: Arc<WorkerDeps>, node_name: &str, registry: PodRegistry, timing: ManagerTiming) -> Self {
        let (finished_tx, finished_rx) = mpsc::unbounded_channel();
        Self {
            deps,
            node_name: node_name.to_string(),
            registry,
            timing,
            workers: HashMap::new(),
            tracker: TaskTracker::new(),
            finished_tx,
            finished_rx,
            generation: 0,
            init_seen: None,
            relister: Relister::default(),
            lifecycle: None,
            statics: None,
            static_uids: BTreeSet::new(),
        }
    }

    /// Also runs the static pods published on `pods` (the whole set each time).
    pub fn with_static_pods(mut self, pods: watch::Receiver<Vec<Arc<Pod>>>) -> Self {
        self.statics = Some(pods);
        self
    }

    /// Also wakes workers from container events (the evented PLEG).
    pub fn with_lifecycle(mut self, signals: mpsc::Receiver<Signal>) -> Self {
        self.lifecycle = Some(signals);
        self
    }

    /// Consumes watch events until `token` is cancelled, then waits for the
    /// workers to stop (they leave pods running).
    pub async fn run<S>(mut self, events: S, token: CancellationToken)
    where
        S: Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Send,
    {
        let mut events = std::pin::pin!(events);
        let mut relist = tokio::time::interval(self.timing.relist);
        let mut sweep = tokio::time::interval(self.timing.sweep);
        relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first sweep waits for the initial list, so a pod that is
        // still assigned is never mistaken for an orphan; the static pods
        // known at start are taken first for the same reason.
        let mut listed = false;
        if let Some(initial) = self.statics.as_mut().map(|rx| rx.borrow_and_update().clone()) {
            self.apply_statics(initial, &token);
        }
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                event = events.next() => match event {
                    Some(Ok(event)) => {
                        if matches!(event, watcher::Event::InitDone) {
                            listed = true;
                        }
                        self.handle(event, &token);
                    }
                    Some(Err(error)) => tracing::warn!(%error, "pod watch failed; retrying"),
                    None => break,
                },
                Some((uid, generation)) = self.finished_rx.recv() => {
                    if self.workers.get(&uid).is_some_and(|w| w.generation == generation) {
                        self.workers.remove(&uid);
                        self.registry.remove(&uid);
                        self.deps.status.forget(&uid);
                    }
                }
                Some(signal) = next_signal(&mut self.lifecycle) => self.on_signals(signal, &token).await,
                Some(pods) = next_statics(&mut self.statics) => self.apply_statics(pods, &token),
                _ = relist.tick() => self.relist().await,
                _ = sweep.tick(), if listed => self.sweep(&token).await,
            }
        }
        self.tracker.close();
        self.tracker.wait().await;
    }

    fn handle(&mut self, event: watcher::Event<Pod>, token: &CancellationToken) {
        match event {
            watcher::Event::Init => self.init_seen = Some(BTreeSet::new()),
            watcher::Event::InitApply(pod) => {
                if let (Some(seen), Some(uid)) = (self.init_seen.as_mut(), uid_of(&pod)) {
                    seen.insert(uid);
                }
                self.apply_from_api(pod, token);
            }
            watcher::Event::InitDone => {
                let seen = self.init_seen.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .workers
                    .keys()
                    .filter(|uid| !seen.contains(*uid) && !self.static_uids.contains(*uid))
                    .cloned()
                    .collect();
                for uid in gone {
                    self.forget(&uid);
                }
                self.registry.mark_synced();
            }
            watcher::Event::Apply(pod) => self.apply_from_api(pod, token),
            watcher::Event::Delete(pod) => {
                if let Some(uid) = uid_of(&pod).filter(|uid| !self.static_uids.contains(uid)) {
                    self.forget(&uid);
                }
            }
        }
    }

    /// A pod from the API watch. Mirror pods are the API's copies of static
    /// pods: their static pods run, not they.
    fn apply_from_api(&mut self, pod: Pod, token: &CancellationToken) {
        if crate::static_pods::is_mirror(&pod) {
            return;
        }
        self.apply(pod, token);
    }

    /// The static pods now: pods that left the set are stopped and removed,
    /// new ones started (a changed manifest is a new UID: both at once).
    fn apply_statics(&mut self, pods: Vec<Arc<Pod>>, token: &CancellationToken) {
        let now: BTreeSet<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        for uid in self.static_uids.difference(&now).cloned().collect::<Vec<_>>() {
            tracing::info!(%uid, "static pod removed");
            self.forget(&uid);
        }
        for pod in pods {
            self.apply(Pod::clone(&pod), token);
        }
        self.static_uids = now;
    }

    fn apply(&mut self, pod: Pod, token: &CancellationToken) {
        let Some(uid) = uid_of(&pod) else { return };
        let on_node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(self.node_name.as_str());
        if !on_node {
            self.forget(&uid);
            return;
        }
        let pod = Arc::new(pod);
        self.registry.insert(&uid, pod.clone());
        if let Some(worker) = self.workers.get(&uid) {
            if !worker.pods.is_closed() {
                worker.pods.send_replace(Some(pod));
                return;
            }
        }
        let (tx, rx) = watch::channel(Some(pod));
        let wake = Arc::new(Notify::new());
        let worker = PodWorker::new(self.deps.clone(), uid.clone());
        let finished = self.finished_tx.clone();
        let task_wake = wake.clone();
        let task_token = token.clone();
        let task_uid = uid.clone();
        self.generation += 1;
        let generation = self.generation;
        self.tracker.spawn(async move {
            if worker.run(rx, task_wake, task_token).await == Exit::Finished {
                let _ = finished.send((task_uid, generation));
            }
        });
        self.workers.insert(uid, Worker { pods: tx, wake, generation });
    }

    /// The pod left this node (deleted or re-bound): its worker removes it
    /// from the runtime and exits.
    fn forget(&mut self, uid: &str) {
        self.registry.remove(uid);
        self.deps.status.forget(uid);
        if let Some(worker) = self.workers.get(uid) {
            worker.pods.send_replace(None);
        }
    }

    /// Lists all containers once and wakes the workers of pods whose
    /// containers changed (the PLEG's safety net).
    async fn relist(&mut self) {
        let started = std::time::Instant::now();
        let relisted = self.relister.relist(self.deps.runtime.as_ref()).await;
        let counts = relisted.is_ok().then(|| RuntimeCounts::of(self.relister.last()));
        self.deps.metrics.record_relist(started.elapsed(), counts);
        match relisted {
            Ok(changed) => {
                for uid in changed {
                    if let Some(worker) = self.workers.get(&uid) {
                        worker.wake.notify_one();
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "relist failed"),
        }
    }

    /// Removes runtime pods (by UID label) that no worker owns, and the
    /// volume directories of pods that are gone (e.g. deleted while the
    /// agent was down).
    async fn sweep(&mut self, token: &CancellationToken) {
        self.sweep_volume_dirs().await;
        self.deps.cgroups.sweep(self.registry.list()).await;
        let sandboxes = match self.deps.runtime.list_pod_sandboxes(None).await {
            Ok(sandboxes) => sandboxes,
            Err(error) => {
                tracing::warn!(%error, "orphan sweep: listing sandboxes failed");
                return;
            }
        };
        let orphans: BTreeSet<String> = sandboxes
            .iter()
            .filter(|s| s.labels.get(labels::MANAGED_BY).map(String::as_str) == Some("true"))
            .filter_map(|s| s.labels.get(labels::POD_UID))
            .filter(|uid| !self.workers.contains_key(*uid))
            .cloned()
            .collect();
        for uid in orphans {
            tracing::info!(%uid, "removing orphaned pod from the runtime");
            let deps = self.deps.clone();
            let token = token.clone();
            self.tracker.spawn(async move {
                tokio::select! {
                    () = token.cancelled() => {}
                    result = remove_pod_from_runtime(deps, uid.clone()) => {
                        if let Err(error) = result {
                            tracing::warn!(%error, %uid, "orphan removal failed; next sweep retries");
                        }
                    }
                }
            });
        }
    }

    /// Tears down `<root>/pods/<uid>` of UIDs no worker owns. Listed first,
    /// then filtered against the workers of this moment: a UID never comes
    /// back, so a dir listed as orphaned cannot gain a worker meanwhile.
    async fn sweep_volume_dirs(&mut self) {
        let root = self.deps.root_dir.clone();
        let listed =
            tokio::task::spawn_blocking(move || crate::volumes::apply::orphaned_pod_dirs(&root, &BTreeSet::new()))
                .await
                .unwrap_or_default();
        let orphans: Vec<String> = listed.into_iter().filter(|uid| !self.workers.contains_key(uid)).collect();
        if orphans.is_empty() {
            return;
        }
        let (root, mounter) = (self.deps.root_dir.clone(), self.deps.mounter.clone());
        self.tracker.spawn_blocking(move || {
            for uid in orphans {
                tracing::info!(%uid, "removing volumes of a pod that is gone");
                if let Err(error) = crate::volumes::apply::teardown_pod(&root, &uid, mounter.as_ref()) {
                    tracing::warn!(%error, %uid, "orphaned volume teardown failed; next sweep retries");
                }
            }
        });
    }
}

/// The next set of static pods, or never when there is no manifest dir.
async fn next_statics(pods: &mut Option<watch::Receiver<Vec<Arc<Pod>>>>) -> Option<Vec<Arc<Pod>>> {
    match pods {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
