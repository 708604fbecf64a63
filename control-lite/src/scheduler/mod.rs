//! The scheduler: binds unscheduled pods to nodes, like kube-scheduler.
//!
//! Owns: watching nodes and pods (`informer`s), the scheduling loop, and
//! retrying unschedulable pods when the cluster changes or every
//! `RETRY_INTERVAL`. The decision itself is the pure `decision::schedule`;
//! writes go through `binder`. A pod the decision cannot evaluate (even a
//! panic) is reported and retried like an unschedulable one; the others
//! keep being placed. Must not: touch pods of other schedulers or
//! pods already bound.

pub mod binder;
pub mod cache;
pub mod decision;
pub mod plugins;
pub mod preemption;
pub mod resources;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::controllers::index::Index;
use crate::controllers::informer::{self, Change};
use crate::controllers::shared::Informers;
use crate::metrics::{ScheduleResult, SchedulerMetrics};
use crate::supervisor::panic_message;
use binder::Binder;
use cache::AssumedCache;
use decision::Snapshot;

/// Unschedulable pods are retried at least this often.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(15);
/// Bindings written at once. Decisions stay one at a time (each sees the
/// pods assumed before it); their bindings are written concurrently, as
/// upstream's binding cycle, so a backlog is not paced by one store commit
/// per pod.
pub const BINDS_IN_FLIGHT: usize = 32;

/// The last failed attempt to place one pod.
struct Failure {
    /// Cluster epoch the attempt saw; a newer epoch means "try again".
    epoch: u64,
    at: Instant,
    message: String,
    announced_at: Instant,
}

/// Runs the scheduler until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, token: CancellationToken) -> anyhow::Result<()> {
    run_with_metrics(client, informers, SchedulerMetrics::default(), token).await
}

/// [`run`], recording each attempt in `metrics`.
pub async fn run_with_metrics(
    client: Client,
    informers: Informers,
    metrics: SchedulerMetrics,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let kick = Arc::new(Notify::new());
    // Bumped whenever capacity may have changed: any node event, any event
    // of a bound pod. Failed pods are retried when it moves.
    let epoch = Arc::new(AtomicU64::new(0));
    let nodes: Store<Node> = {
        let (kick, epoch) = (kick.clone(), epoch.clone());
        informers.of::<Node>().on_change(&token, move |_| {
            epoch.fetch_add(1, Ordering::SeqCst);
            kick.notify_one();
        })
    };
    let places: Index<Pod, Place> = Index::new(place);
    let pods: Store<Pod> = {
        let (kick, epoch, index) = (kick.clone(), epoch.clone(), places.clone());
        informers.of::<Pod>().subscribe(&token, move |store, change| {
            index.apply(store, change);
            let frees = match change {
                Some((pod, Change::Applied)) => cache::node_name(pod).is_some(),
                Some((_, Change::Deleted)) | None => true,
            };
            if frees {
                epoch.fetch_add(1, Ordering::SeqCst);
            }
            kick.notify_one();
        })
    };
    let namespaces: Store<Namespace> = {
        let (kick, epoch) = (kick.clone(), epoch.clone());
        informers.of::<Namespace>().on_change(&token, move |_| {
            epoch.fetch_add(1, Ordering::SeqCst);
            kick.notify_one();
        })
    };
    let ready = informer::wait_ready(&nodes, &token).await
        && informer::wait_ready(&pods, &token).await
        && informer::wait_ready(&namespaces, &token).await;
    if !ready {
        return Ok(());
    }
    tracing::info!("scheduler started");
    let mut state = Scheduler {
        binder: Arc::new(Binder::new(client)),
        places,
        assumed: AssumedCache::default(),
        failures: HashMap::new(),
        metrics,
    };
    loop {
        state.pass(&nodes, &pods, &namespaces, epoch.load(Ordering::SeqCst)).await;
        tokio::select! {
            () = token.cancelled() => break,
            () = kick.notified() => {}
            () = tokio::time::sleep(RETRY_INTERVAL) => {}
        }
    }
    Ok(())
}

/// Where a pod stands for the scheduler (its index key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Place {
    /// Waiting to be scheduled by us.
    Pending,
    /// Bound to this node.
    Node(String),
}

fn place(pod: &Pod) -> Vec<Place> {
    if cache::needs_scheduling(pod) {
        return vec![Place::Pending];
    }
    cache::node_name(pod).map(|n| Place::Node(n.to_string())).into_iter().collect()
}

struct Scheduler {
    binder: Arc<Binder>,
    places: Index<Pod, Place>,
    assumed: AssumedCache,
    failures: HashMap<String, Failure>,
    metrics: SchedulerMetrics,
}

impl Scheduler {
    /// One scheduling pass over every pending pod.
    async fn pass(&mut self, nodes: &Store<Node>, pods: &Store<Pod>, namespaces: &Store<Namespace>, epoch: u64) {
        let now = Instant::now();
        self.assumed.prune(|pod| pods.get(&ObjectRef::from_obj(pod)), now);
        let pending = cache::pending_pods(&self.places.resolve(pods, &Place::Pending));
        let pending_uids: HashSet<&str> = pending.iter().filter_map(|p| p.metadata.uid.as_deref()).collect();
        self.failures.retain(|uid, _| pending_uids.contains(uid.as_str()));
        if pending.is_empty() {
            return;
        }
        let nodes = nodes.state();
        let bound: Vec<Arc<Pod>> =
            nodes.iter().flat_map(|n| self.places.resolve(pods, &Place::Node(n.name_any()))).collect();
        let mut snapshot = Snapshot {
            nodes: cache::node_infos(&nodes, &bound, &self.assumed),
            namespaces: cache::namespace_labels(&namespaces.state()),
        };
        let nominated: Vec<Arc<Pod>> = pending.iter().filter(|p| cache::nominated_node(p).is_some()).cloned().collect();
        let mut binds = JoinSet::new();
        for pod in pending {
            let uid = pod.uid().unwrap_or_default();
            // Bound by us a moment ago; the watch is just behind. Deciding
            // again would mark a bound pod unschedulable (it would count
            // against itself) and bind it twice.
            if self.assumed.contains(&uid) {
                continue;
            }
            if let Some(failure) = self.failures.get(&uid) {
                if failure.epoch == epoch && now.duration_since(failure.at) < RETRY_INTERVAL {
                    continue;
                }
            }
            let attempt = Instant::now();
            // Room promised to more important pods by preemption is taken.
            let view = cache::with_nominated(&snapshot, &nominated, &pod);
            let view = view.as_ref().unwrap_or(&snapshot);
            // A bug that panics on one pod must not stop scheduling the
            // others: that pod is reported and retried like an unschedulable one.
            let decided = std::panic::catch_unwind(AssertUnwindSafe(|| decide(&pod, view)))
                .map_err(|payload| format!("scheduler could not evaluate this pod: {}", panic_message(payload)));
            let failed_as = if decided.is_err() { ScheduleResult::Error } else { ScheduleResult::Unschedulable };
            let decided = match decided {
                Ok(Decided::Bind(node)) => Ok(node),
                Ok(Decided::Preempt(plan, message)) => {
                    self.preempt(&pod, &plan).await;
                    Err(message)
                }
                Ok(Decided::Unschedulable(message, clear_nomination)) => {
                    if clear_nomination {
                        if let Err(error) = self.binder.clear_nomination(&pod).await {
                            tracing::warn!(%error, "clearing a stale nomination failed");
                        }
                    }
                    Err(message)
                }
                Err(message) => {
                    tracing::error!(pod = %pod.name_any(), %message, "scheduling panicked");
                    Err(message)
                }
            };
            match decided {
                Ok(node) => {
                    // Assumed before the binding is written, so the next
                    // decisions count it; a failed binding is forgotten.
                    let bound = self.assumed.assume(&pod, &node, now);
                    if let Some(info) = snapshot.nodes.iter_mut().find(|i| i.name() == node.as_str()) {
                        info.add_pod(bound);
                    }
                    if binds.len() >= BINDS_IN_FLIGHT {
                        if let Some(done) = binds.join_next().await {
                            self.bound(done);
                        }
                    }
                    let binder = self.binder.clone();
                    binds.spawn(async move {
                        let result = binder.bind(&pod, &node).await;
                        Bound { uid, pod: pod.name_any(), node, attempt, result }
                    });
                }
                Err(message) => {
                    self.metrics.record_attempt(failed_as, attempt.elapsed());
                    let announce = self
                        .failures
                        .get(&uid)
                        .is_none_or(|f| f.message != message || now.duration_since(f.announced_at) >= RETRY_INTERVAL);
                    let announced_at = match self.failures.get(&uid) {
                        Some(f) if !announce => f.announced_at,
                        _ => now,
                    };
                    if let Err(error) = self.binder.unschedulable(&pod, &message, announce).await {
                        tracing::warn!(%error, "recording unschedulable pod failed");
                    }
                    tracing::debug!(pod = %pod.name_any(), %message, "unschedulable");
                    self.failures.insert(uid, Failure { epoch, at: now, message, announced_at });
                }
            }
        }
        while let Some(done) = binds.join_next().await {
            self.bound(done);
        }
    }

    /// Records a finished binding: a failed one is forgotten, so the pod is
    /// pending again at the next pass.
    fn bound(&mut self, done: Result<Bound, tokio::task::JoinError>) {
        let done = match done {
            Ok(done) => done,
            Err(error) => {
                tracing::error!(%error, "binding task failed");
                return;
            }
        };
        match done.result {
            Ok(()) => {
                self.metrics.record_attempt(ScheduleResult::Scheduled, done.attempt.elapsed());
                tracing::info!(pod = %done.pod, node = %done.node, "scheduled");
                self.failures.remove(&done.uid);
            }
            Err(error) => {
                tracing::warn!(%error, "bind failed");
                self.metrics.record_attempt(ScheduleResult::Error, done.attempt.elapsed());
                self.assumed.forget(&done.uid);
            }
        }
    }
}

/// The outcome of one binding written in the background.
struct Bound {
    uid: String,
    pod: String,
    node: String,
    attempt: Instant,
    result: Result<(), binder::BindError>,
}

/// What one pass decided for one pod.
enum Decided {
    Bind(String),
    /// Evict, nominate, and report the pod unschedulable for now.
    Preempt(preemption::Plan, String),
    /// Report the pod unschedulable; `true` also clears its stale nomination.
    Unschedulable(String, bool),
}

/// Filter and score; if nothing fits, try preemption.
fn decide(pod: &Pod, snapshot: &Snapshot) -> Decided {
    match decision::schedule(pod, snapshot) {
        Ok(node) => Decided::Bind(node),
        Err(mut unschedulable) => {
            if unschedulable.nodes == 0 {
                return Decided::Unschedulable(unschedulable.to_string(), false);
            }
            let outcome = preemption::select(pod, snapshot, &unschedulable);
            let clear_nomination = outcome.clears_nomination(pod);
            match outcome {
                preemption::Outcome::Preempt(plan) => Decided::Preempt(plan, unschedulable.to_string()),
                preemption::Outcome::NotPossible(message) | preemption::Outcome::Ineligible(message) => {
                    unschedulable.post_filter = Some(message);
                    Decided::Unschedulable(unschedulable.to_string(), clear_nomination)
                }
            }
        }
    }
}

impl Scheduler {
    /// Applies a preemption plan; failures are logged (the next pass retries).
    async fn preempt(&self, pod: &Pod, plan: &preemption::Plan) {
        tracing::info!(pod = %pod.name_any(), node = %plan.node, victims = plan.victims.len(), "preempting");
        if let Err(error) = self.binder.preempt(pod, plan).await {
            tracing::warn!(%error, "preemption failed");
        }
    }
}
