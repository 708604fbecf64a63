//! Garbage collector: deletes objects whose owners are gone.
//!
//! Owns: subscriptions to the shared informers of every kind it collects or
//! that can own those objects (Deployments, ReplicaSets, DaemonSets, StatefulSets, ControllerRevisions, Services, Nodes,
//! Pods, EndpointSlices, Jobs, CronJobs) feeding the owner `graph` (which keeps only the
//! metadata it needs; the objects stay in the shared stores), a sweep of only what changed whenever any of them
//! changes (unfinished actions are looked at again every `RESYNC`), and
//! applying `plan::plan` after confirming with a live GET that an owner is
//! really gone (caches of different kinds lag each other). Must not: collect
//! kinds it does not watch.

pub mod graph;
pub mod plan;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::index;
use super::informer::{self, Change};
use super::is_not_found;
use super::queue::ObjectKey;
use super::shared::Informers;
use graph::Graph;
use plan::Action;

const RESYNC: Duration = Duration::from_secs(30);
/// Let a burst of watch events settle before sweeping.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Do not repeat an action on the same object more often than this.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// A failed collector call.
#[derive(Debug, thiserror::Error)]
#[error("{action} {kind} {namespace}/{name}")]
pub struct Error {
    action: &'static str,
    kind: String,
    namespace: String,
    name: String,
    #[source]
    source: kube::Error,
}

/// A watched kind and how to reach it generically.
struct Watched {
    kind: &'static str,
    resource: ApiResource,
    namespaced: bool,
}

fn watch<K>(
    informers: &Informers,
    token: &CancellationToken,
    kick: &Arc<Notify>,
    graph: &Graph,
    namespaced: bool,
) -> (Watched, Store<K>)
where
    K: Resource<DynamicType = ()> + k8s_openapi::Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (kick, graph) = (kick.clone(), graph.clone());
    let kind = <K as k8s_openapi::Resource>::KIND;
    let store: Store<K> = informers.of::<K>().subscribe(token, move |store, change| {
        match change {
            Some((object, Change::Applied)) => graph.applied(plan::Node::of(kind, object.meta())),
            Some((object, Change::Deleted)) => graph.deleted(object.meta().uid.as_deref().unwrap_or_default()),
            None => graph.relisted(kind, |node| {
                let key = ObjectKey { namespace: node.namespace.clone(), name: node.name.clone() };
                store.get(&index::object_ref(&key)).is_some_and(|o| o.meta().uid.as_deref() == Some(node.uid.as_str()))
            }),
        }
        kick.notify_one();
    });
    (Watched { kind, resource: ApiResource::erase::<K>(&()), namespaced }, store)
}

/// Runs the garbage collector until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, token: CancellationToken) {
    let kick = Arc::new(Notify::new());
    let graph = Graph::default();
    let (deployments, d_store) = watch::<Deployment>(&informers, &token, &kick, &graph, true);
    let (sets, rs_store) = watch::<ReplicaSet>(&informers, &token, &kick, &graph, true);
    let (daemons, ds_store) = watch::<DaemonSet>(&informers, &token, &kick, &graph, true);
    let (stateful, sts_store) = watch::<StatefulSet>(&informers, &token, &kick, &graph, true);
    let (revisions, rev_store) = watch::<ControllerRevision>(&informers, &token, &kick, &graph, true);
    let (services, svc_store) = watch::<Service>(&informers, &token, &kick, &graph, true);
    let (nodes, node_store) = watch::<Node>(&informers, &token, &kick, &graph, false);
    let (pods, pod_store) = watch::<Pod>(&informers, &token, &kick, &graph, true);
    let (slices, slice_store) = watch::<EndpointSlice>(&informers, &token, &kick, &graph, true);
    let (jobs, job_store) = watch::<Job>(&informers, &token, &kick, &graph, true);
    let (cronjobs, cronjob_store) = watch::<CronJob>(&informers, &token, &kick, &graph, true);
    let ready = informer::wait_ready(&d_store, &token).await
        && informer::wait_ready(&rs_store, &token).await
        && informer::wait_ready(&ds_store, &token).await
        && informer::wait_ready(&sts_store, &token).await
        && informer::wait_ready(&rev_store, &token).await
        && informer::wait_ready(&svc_store, &token).await
        && informer::wait_ready(&node_store, &token).await
        && informer::wait_ready(&pod_store, &token).await
        && informer::wait_ready(&slice_store, &token).await
        && informer::wait_ready(&job_store, &token).await
        && informer::wait_ready(&cronjob_store, &token).await;
    if !ready {
        return;
    }
    let watched = vec![deployments, sets, daemons, stateful, revisions, services, nodes, pods, slices, jobs, cronjobs];
    let mut collector = Collector { client, watched, graph, attempted: HashMap::new(), unfinished: HashSet::new() };
    // Every store completed its first list: look at everything once.
    collector.graph.dirty_all();
    let mut retried = Instant::now();
    loop {
        if retried.elapsed() >= RESYNC {
            collector.graph.retry(std::mem::take(&mut collector.unfinished));
            retried = Instant::now();
        }
        collector.sweep().await;
        tokio::select! {
            () = token.cancelled() => break,
            () = kick.notified() => tokio::time::sleep(DEBOUNCE).await,
            () = tokio::time::sleep(RESYNC) => {}
        }
    }
}

struct Collector {
    client: Client,
    watched: Vec<Watched>,
    graph: Graph,
    attempted: HashMap<String, Instant>,
    /// Objects whose action did not finish (failed, not yet confirmed, or
    /// recently attempted): looked at again every `RESYNC`.
    unfinished: HashSet<String>,
}

impl Collector {
    /// Plans over what changed since the last sweep and applies the actions
    /// on those objects.
    async fn sweep(&mut self) {
        let batch = self.graph.take();
        if batch.focus.is_empty() {
            return;
        }
        let group_kinds: Vec<String> =
            self.watched.iter().map(|w| plan::group_kind(&w.resource.api_version, w.kind)).collect();
        let kinds: HashSet<&str> = group_kinds.iter().map(String::as_str).collect();
        let now = Instant::now();
        self.attempted.retain(|_, at| now.duration_since(*at) < RETRY_AFTER);
        for action in plan::plan(&batch.objects, &kinds) {
            let object = match &action {
                Action::Delete { object, .. }
                | Action::RemoveOwners { object, .. }
                | Action::RemoveFinalizer { object, .. } => object.clone(),
            };
            if !batch.focus.contains(&object.uid) {
                continue;
            }
            let attempt_key = format!("{}/{:?}", object.uid, std::mem::discriminant(&action));
            if self.attempted.contains_key(&attempt_key) {
                self.unfinished.insert(object.uid.clone());
                continue;
            }
            self.attempted.insert(attempt_key, now);
            let outcome = self.apply(&action, &object).await;
            if !matches!(outcome, Ok(true)) {
                self.unfinished.insert(object.uid.clone());
            }
            match outcome {
                Ok(true) => tracing::info!(
                    kind = %object.kind,
                    namespace = %object.namespace,
                    name = %object.name,
                    action = action_name(&action),
                    "collected"
                ),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "garbage collection failed"),
            }
        }
    }

    /// The generic API of watched kind `w` in `namespace`.
    fn api(&self, w: &Watched, namespace: &str) -> Api<DynamicObject> {
        if w.namespaced {
            Api::namespaced_with(self.client.clone(), namespace, &w.resource)
        } else {
            Api::all_with(self.client.clone(), &w.resource)
        }
    }

    /// The watched kind an owner reference names: its group must match too
    /// (a custom resource may reuse a built-in kind's name).
    fn owner_kind(&self, reference: &OwnerReference) -> Option<&Watched> {
        let wanted = plan::group_kind(&reference.api_version, &reference.kind);
        self.watched.iter().find(|w| plan::group_kind(&w.resource.api_version, w.kind) == wanted)
    }

    /// True if the owner is confirmed gone (absent, or replaced by a new uid).
    async fn owner_gone(&self, reference: &OwnerReference, namespace: &str) -> Result<bool, Error> {
        let Some(watched) = self.owner_kind(reference) else {
            return Ok(false);
        };
        let api = self.api(watched, namespace);
        match api.get(&reference.name).await {
            Ok(owner) => Ok(owner.metadata.uid.as_deref() != Some(reference.uid.as_str())),
            Err(e) if is_not_found(&e) => Ok(true),
            Err(source) => Err(Error {
                action: "reading owner",
                kind: reference.kind.clone(),
                namespace: namespace.to_string(),
                name: reference.name.clone(),
                source,
            }),
        }
    }

    async fn all_gone(&self, verify: &[OwnerReference], namespace: &str) -> Result<bool, Error> {
        for reference in verify {
            if !self.owner_gone(reference, namespace).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Applies one action; false if verification showed it was not needed.
    async fn apply(&self, action: &Action, object: &plan::Node) -> Result<bool, Error> {
        // Objects come from the watched kinds' informers: their kind is one of them.
        let Some(watched) = self.watched.iter().find(|w| w.kind == object.kind) else {
            return Ok(false);
        };
        let api = self.api(watched, &object.namespace);
        let fail = |action: &'static str| {
            move |source| Error {
                action,
                kind: object.kind.clone(),
                namespace: object.namespace.clone(),
                name: object.name.clone(),
                source,
            }
        };
        let result = match action {
            Action::Delete { verify, .. } => {
                if !self.all_gone(verify, &object.namespace).await? {
                    return Ok(false);
                }
                api.delete(&object.name, &DeleteParams::background()).await.map(|_| ()).map_err(fail("deleting"))
            }
            Action::RemoveOwners { uids, verify, .. } => {
                if !self.all_gone(verify, &object.namespace).await? {
                    return Ok(false);
                }
                let remaining: Vec<&OwnerReference> = object.owners.iter().filter(|r| !uids.contains(&r.uid)).collect();
                let patch = json!({"metadata": {"ownerReferences": remaining}});
                api.patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
                    .map_err(fail("removing owner references of"))
            }
            Action::RemoveFinalizer { finalizer, .. } => {
                let remaining: Vec<&String> = object.finalizers.iter().filter(|f| f != finalizer).collect();
                let patch = json!({"metadata": {"finalizers": remaining}});
                api.patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
                    .map_err(fail("removing finalizer of"))
            }
        };
        match result {
            Ok(()) => Ok(true),
            Err(Error { source, .. }) if is_not_found(&source) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Delete { .. } => "delete",
        Action::RemoveOwners { .. } => "remove owner references",
        Action::RemoveFinalizer { .. } => "remove finalizer",
    }
}
