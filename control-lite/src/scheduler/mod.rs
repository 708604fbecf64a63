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
pub mod resources;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::controllers::index::Index;
use crate::controllers::informer::{self, Change};
use crate::controllers::shared::Informers;
use crate::supervisor::panic_message;
use binder::Binder;
use cache::AssumedCache;

/// Unschedulable pods are retried at least this often.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(15);

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
    if !informer::wait_ready(&nodes, &token).await || !informer::wait_ready(&pods, &token).await {
        return Ok(());
    }
    tracing::info!("scheduler started");
    let mut state =
        Scheduler { binder: Binder::new(client), places, assumed: AssumedCache::default(), failures: HashMap::new() };
    loop {
        state.pass(&nodes, &pods, epoch.load(Ordering::SeqCst)).await;
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
    binder: Binder,
    places: Index<Pod, Place>,
    assumed: AssumedCache,
    failures: HashMap<String, Failure>,
}

impl Scheduler {
    /// One scheduling pass over every pending pod.
    async fn pass(&mut self, nodes: &Store<Node>, pods: &Store<Pod>, epoch: u64) {
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
        let mut infos = cache::node_infos(&nodes, &bound, &self.assumed);
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
            // A bug that panics on one pod must not stop scheduling the
            // others: that pod is reported and retried like an unschedulable one.
            let decided = std::panic::catch_unwind(AssertUnwindSafe(|| decision::schedule(&pod, &infos)))
                .map_err(|payload| format!("scheduler could not evaluate this pod: {}", panic_message(payload)));
            let decided = match decided {
                Ok(decided) => decided.map_err(|unschedulable| unschedulable.to_string()),
                Err(message) => {
                    tracing::error!(pod = %pod.name_any(), %message, "scheduling panicked");
                    Err(message)
                }
            };
            match decided {
                Ok(node) => {
                    if let Err(error) = self.binder.bind(&pod, &node).await {
                        tracing::warn!(%error, "bind failed");
                        continue;
                    }
                    tracing::info!(pod = %pod.name_any(), %node, "scheduled");
                    self.failures.remove(&uid);
                    let bound = self.assumed.assume(&pod, &node, now);
                    if let Some(info) =
                        infos.iter_mut().find(|i| i.node.metadata.name.as_deref() == Some(node.as_str()))
                    {
                        info.pods.push(bound);
                    }
                }
                Err(message) => {
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
    }
}
