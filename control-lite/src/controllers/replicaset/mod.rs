//! ReplicaSet controller: keeps `spec.replicas` pods alive per ReplicaSet.
//!
//! Owns: the informers (ReplicaSets, Pods), expectations (pods we created or
//! deleted that the watch has not shown yet, so we never double-create), and
//! applying `plan::plan` (creates, deletes, adoption, release, status).

pub mod plan;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::events::{self, Recorder};
use super::expectations::Expectations;
use super::failures::{self, Reporter};
use super::index::Index;
use super::informer;
use super::queue::{self, ObjectKey, Retry, WorkQueue};
use super::shared::Informers;
use super::{is_not_found, selector};

/// Periodic full resync.
const RESYNC: Duration = Duration::from_secs(30);

/// A failed ReplicaSet write.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call on a pod failed.
    #[error("{action} pod for replicaset {rs}")]
    Pod {
        /// What was attempted.
        action: &'static str,
        /// namespace/name of the ReplicaSet.
        rs: ObjectKey,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Writing the ReplicaSet status failed.
    #[error("updating status of replicaset {rs}")]
    Status {
        /// namespace/name of the ReplicaSet.
        rs: ObjectKey,
        /// Cause.
        #[source]
        source: kube::Error,
    },
}

/// Index key of a pod for this controller: the ReplicaSet controlling it,
/// or "orphan in this namespace" (adoption candidates).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PodOwner {
    ReplicaSet { namespace: String, name: String, uid: String },
    Orphan { namespace: String },
}

fn pod_owner(pod: &Pod) -> Vec<PodOwner> {
    let namespace = pod.namespace().unwrap_or_default();
    match selector::controller_of(&pod.metadata) {
        Some(owner) if owner.kind == "ReplicaSet" => {
            vec![PodOwner::ReplicaSet { namespace, name: owner.name.clone(), uid: owner.uid.clone() }]
        }
        Some(_) => Vec::new(),
        None => vec![PodOwner::Orphan { namespace }],
    }
}

struct Ctx {
    client: Client,
    sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    pods_by_owner: Index<Pod, PodOwner>,
    recorder: Recorder,
    expectations: Expectations<ObjectKey>,
}

/// Runs the ReplicaSet controller until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, token: CancellationToken) {
    let queue: WorkQueue<ObjectKey> = WorkQueue::new(token.clone());
    informers.queue_metrics().track("replicaset", queue.stats_probe());
    let sets_by_namespace: Index<ReplicaSet, String> =
        Index::new(|rs: &ReplicaSet| rs.namespace().into_iter().collect());
    let sets: Store<ReplicaSet> = {
        let (queue, index) = (queue.clone(), sets_by_namespace.clone());
        informers.of::<ReplicaSet>().subscribe(&token, move |store, change| {
            for (key, _) in index.apply(store, change) {
                queue.add(key);
            }
        })
    };
    let pods_by_owner: Index<Pod, PodOwner> = Index::new(pod_owner);
    let pods: Store<Pod> = {
        let (queue, sets, by_namespace, index) =
            (queue.clone(), sets.clone(), sets_by_namespace.clone(), pods_by_owner.clone());
        informers.of::<Pod>().subscribe(&token, move |store, change| {
            for (_, moved) in index.apply(store, change) {
                for owner in moved.before.iter().chain(&moved.after) {
                    for key in owners_to_sync(owner, change.map(|(pod, _)| pod), &sets, &by_namespace) {
                        queue.add(key);
                    }
                }
            }
        })
    };
    if !informer::wait_ready(&sets, &token).await || !informer::wait_ready(&pods, &token).await {
        return;
    }
    queue::spawn_resync(queue.clone(), sets.clone(), RESYNC, token.clone());
    let mut ctx = Ctx {
        recorder: Recorder::new(client.clone(), "replicaset-controller"),
        client,
        sets,
        pods,
        pods_by_owner,
        expectations: Expectations::default(),
    };
    let reporter = Reporter::for_store(ctx.recorder.clone(), ctx.sets.clone());
    let mut retry = Retry::new("replicaset").reporting(reporter);
    while let Some(key) = queue.next().await {
        let result = failures::guard(ctx.reconcile(&key)).await;
        retry.finish(&queue, key, result);
    }
}

/// The ReplicaSets a pod change concerns: its (old or new) controller, or
/// for an orphan every ReplicaSet of the namespace whose selector matches.
fn owners_to_sync(
    owner: &PodOwner,
    pod: Option<&Pod>,
    sets: &Store<ReplicaSet>,
    by_namespace: &Index<ReplicaSet, String>,
) -> Vec<ObjectKey> {
    match owner {
        PodOwner::ReplicaSet { namespace, name, .. } => {
            vec![ObjectKey { namespace: namespace.clone(), name: name.clone() }]
        }
        PodOwner::Orphan { namespace } => {
            let labels = pod.map(|p| selector::labels(&p.metadata)).unwrap_or_default();
            by_namespace
                .resolve(sets, namespace)
                .iter()
                .filter(|rs| {
                    rs.spec
                        .as_ref()
                        .is_some_and(|s| !selector::is_empty(&s.selector) && selector::matches(&s.selector, &labels))
                })
                .map(|rs| ObjectKey::of(&rs.metadata))
                .collect()
        }
    }
}

impl Ctx {
    async fn reconcile(&mut self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let Some(rs) = self.sets.get(&ObjectRef::new(&key.name).within(&key.namespace)) else {
            self.expectations.forget(key);
            return Ok(None);
        };
        let owned = PodOwner::ReplicaSet {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            uid: rs.metadata.uid.clone().unwrap_or_default(),
        };
        let orphans = PodOwner::Orphan { namespace: key.namespace.clone() };
        let mut pods = self.pods_by_owner.resolve(&self.pods, &owned);
        pods.extend(self.pods_by_owner.resolve(&self.pods, &orphans));
        let plan = plan::plan(&rs, &pods, jiff::Timestamp::now());
        let settled = self.expectations.met(key, &pods);
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        for pod in &plan.release {
            let remaining: Vec<&OwnerReference> =
                pod.owner_references().iter().filter(|r| Some(r.uid.as_str()) != rs.metadata.uid.as_deref()).collect();
            let patch = json!({"metadata": {"ownerReferences": remaining}});
            self.patch_pod(&pod_api, key, pod, &patch, "releasing").await?;
        }
        if settled {
            self.adopt(&rs, &pod_api, key, &plan.adopt).await?;
            self.create(&rs, &pod_api, key, plan.create).await?;
            self.delete(&rs, &pod_api, key, &plan.delete).await?;
        }
        self.write_status(&rs, key, plan.status).await?;
        let retry = (!settled).then_some(Duration::from_secs(1));
        Ok(match (plan.requeue_after, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn patch_pod(
        &self,
        api: &Api<Pod>,
        key: &ObjectKey,
        pod: &Pod,
        patch: &serde_json::Value,
        action: &'static str,
    ) -> Result<(), Error> {
        match api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(source) => Err(Error::Pod { action, rs: key.clone(), source }),
        }
    }

    async fn adopt(&self, rs: &ReplicaSet, api: &Api<Pod>, key: &ObjectKey, pods: &[Arc<Pod>]) -> Result<(), Error> {
        let ours = selector::controller_ref("apps/v1", "ReplicaSet", &rs.name_any(), &rs.uid().unwrap_or_default());
        for pod in pods {
            let mut refs = pod.owner_references().to_vec();
            refs.push(ours.clone());
            let patch = json!({"metadata": {"ownerReferences": refs}});
            self.patch_pod(api, key, pod, &patch, "adopting").await?;
        }
        Ok(())
    }

    async fn create(&mut self, rs: &ReplicaSet, api: &Api<Pod>, key: &ObjectKey, count: usize) -> Result<(), Error> {
        if count == 0 {
            return Ok(());
        }
        let template = plan::pod_from_template(rs);
        let params = PostParams::default();
        let results = join_all((0..count).map(|_| api.create(&params, &template))).await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(pod) => {
                    let name = pod.name_any();
                    self.expectations.created(key, name.clone());
                    let message = format!("Created pod: {name}");
                    self.recorder.publish(rs, events::NORMAL, "SuccessfulCreate", &message).await;
                }
                Err(source) => {
                    first_error.get_or_insert(Error::Pod { action: "creating", rs: key.clone(), source });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn delete(
        &mut self,
        rs: &ReplicaSet,
        api: &Api<Pod>,
        key: &ObjectKey,
        pods: &[Arc<Pod>],
    ) -> Result<(), Error> {
        for pod in pods {
            let name = pod.name_any();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(source) => return Err(Error::Pod { action: "deleting", rs: key.clone(), source }),
            }
            self.expectations.deleted(key, pod.uid().unwrap_or_default());
            let message = format!("Deleted pod: {name}");
            self.recorder.publish(rs, events::NORMAL, "SuccessfulDelete", &message).await;
        }
        Ok(())
    }

    async fn write_status(
        &self,
        rs: &ReplicaSet,
        key: &ObjectKey,
        status: k8s_openapi::api::apps::v1::ReplicaSetStatus,
    ) -> Result<(), Error> {
        if rs.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &key.namespace);
        let patch = json!({"status": status});
        match api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(source) => Err(Error::Status { rs: key.clone(), source }),
        }
    }
}
