//! Disruption controller: keeps each PodDisruptionBudget's status (expected
//! and healthy pods, how many may be disrupted now, the `DisruptionAllowed`
//! condition, the evictions still pending in `disruptedPods`), which the
//! `pods/eviction` subresource reads and decrements.
//!
//! Owns: subscriptions to the shared informers of PodDisruptionBudgets and
//! Pods (both indexed by namespace: a pod's change queues the budgets of its
//! namespace), and of ReplicaSets, Deployments and StatefulSets (their
//! scales are the expected pod counts; a change queues the budgets of its
//! namespace); writing `plan::plan`'s status with the
//! resourceVersion it was computed from, only when it changed; requeueing
//! when a recorded eviction expires. Must not: decide anything itself (that
//! is `plan`), or write anything but the budgets' status.

pub mod plan;
#[cfg(test)]
mod plan_tests;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use super::events::Recorder;
use super::failures::{self, Reporter};
use super::index::Index;
use super::informer;
use super::queue::{self, ObjectKey, Retry, WorkQueue};
use super::shared::Informers;
use super::{is_conflict, is_not_found, selector};

/// Periodic full resync (controller scales change without a pod changing).
const RESYNC: Duration = Duration::from_secs(30);

/// A failed status write.
#[derive(Debug, thiserror::Error)]
#[error("updating the status of poddisruptionbudget {pdb}")]
pub struct Error {
    pdb: ObjectKey,
    #[source]
    source: kube::Error,
}

fn namespace_of(meta: &ObjectMeta) -> Vec<String> {
    vec![meta.namespace.clone().unwrap_or_default()]
}

/// Queues the budgets of the namespace of `meta`'s object.
fn queue_budgets(queue: &WorkQueue<ObjectKey>, index: &Index<PodDisruptionBudget, String>, meta: &ObjectMeta) {
    for ns in namespace_of(meta) {
        index.get(&ns).into_iter().for_each(|key| queue.add(key));
    }
}

struct Ctx {
    client: Client,
    pdbs: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    pods_by_namespace: Index<Pod, String>,
    replicasets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    statefulsets: Store<StatefulSet>,
}

/// Runs the disruption controller until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, token: CancellationToken) {
    let queue: WorkQueue<ObjectKey> = WorkQueue::new(token.clone());
    informers.queue_metrics().track("disruption", queue.stats_probe());
    let pdbs_by_namespace: Index<PodDisruptionBudget, String> =
        Index::new(|p: &PodDisruptionBudget| namespace_of(&p.metadata));
    let pdbs: Store<PodDisruptionBudget> = {
        let (queue, index) = (queue.clone(), pdbs_by_namespace.clone());
        informers.of::<PodDisruptionBudget>().subscribe(&token, move |store, change| {
            index.apply(store, change);
            match change {
                Some((pdb, _)) => queue.add(ObjectKey::of(&pdb.metadata)),
                None => store.state().iter().for_each(|p| queue.add(ObjectKey::of(&p.metadata))),
            }
        })
    };
    let pods_by_namespace: Index<Pod, String> = Index::new(|p: &Pod| namespace_of(&p.metadata));
    let pods: Store<Pod> = {
        let (queue, index, budgets) = (queue.clone(), pods_by_namespace.clone(), pdbs_by_namespace.clone());
        informers.of::<Pod>().subscribe(&token, move |store, change| {
            for (_, moved) in index.apply(store, change) {
                for ns in moved.before.iter().chain(&moved.after) {
                    budgets.get(ns).into_iter().for_each(|key| queue.add(key));
                }
            }
        })
    };
    // A controller's scale changes `expectedPods`: queue the budgets of its namespace.
    let (q, i) = (queue.clone(), pdbs_by_namespace.clone());
    let replicasets = informers
        .of::<ReplicaSet>()
        .on_change(&token, move |change| change.into_iter().for_each(|(rs, _)| queue_budgets(&q, &i, &rs.metadata)));
    let (q, i) = (queue.clone(), pdbs_by_namespace.clone());
    let deployments = informers
        .of::<Deployment>()
        .on_change(&token, move |change| change.into_iter().for_each(|(d, _)| queue_budgets(&q, &i, &d.metadata)));
    let (q, i) = (queue.clone(), pdbs_by_namespace.clone());
    let statefulsets = informers
        .of::<StatefulSet>()
        .on_change(&token, move |change| change.into_iter().for_each(|(sts, _)| queue_budgets(&q, &i, &sts.metadata)));
    let ready = informer::wait_ready(&pdbs, &token).await
        && informer::wait_ready(&pods, &token).await
        && informer::wait_ready(&replicasets, &token).await
        && informer::wait_ready(&deployments, &token).await
        && informer::wait_ready(&statefulsets, &token).await;
    if !ready {
        return;
    }
    queue::spawn_resync(queue.clone(), pdbs.clone(), RESYNC, token.clone());
    let ctx = Ctx { client: client.clone(), pdbs, pods, pods_by_namespace, replicasets, deployments, statefulsets };
    let reporter = Reporter::for_store(Recorder::new(client, "disruption-controller"), ctx.pdbs.clone());
    let mut retry = Retry::new("disruption").reporting(reporter);
    while let Some(key) = queue.next().await {
        let result = failures::guard(ctx.reconcile(&key)).await;
        retry.finish(&queue, key, result);
    }
}

impl Ctx {
    async fn reconcile(&self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let Some(pdb) = self.pdbs.get(&ObjectRef::new(&key.name).within(&key.namespace)) else {
            return Ok(None);
        };
        let pods: Vec<Arc<Pod>> = self.pods_by_namespace.resolve(&self.pods, &key.namespace);
        let pods: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
        let scale_of = |pod: &Pod| self.scale_of(pod);
        let plan = plan::plan(&pdb, &pods, &scale_of, jiff::Timestamp::now());
        if pdb.status.as_ref() != Some(&plan.status) {
            let mut next = (*pdb).clone();
            next.status = Some(plan.status);
            let api: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), &key.namespace);
            match api.replace_status(&key.name, &PostParams::default(), &next).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) if is_conflict(&e) => return Ok(Some(Duration::from_millis(200))),
                Err(source) => return Err(Error { pdb: key.clone(), source }),
            }
        }
        Ok(plan.requeue_after)
    }

    /// The pod's controller with a scale (a ReplicaSet's Deployment if it
    /// has one) and its replica count.
    fn scale_of(&self, pod: &Pod) -> Option<(String, i32)> {
        let owner = selector::controller_of(&pod.metadata)?;
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        match owner.kind.as_str() {
            "ReplicaSet" => {
                let rs = self.replicasets.get(&ObjectRef::new(&owner.name).within(&ns))?;
                if rs.metadata.uid.as_deref() != Some(owner.uid.as_str()) {
                    return None;
                }
                if let Some(d) = selector::controller_of(&rs.metadata).filter(|o| o.kind == "Deployment") {
                    let deployment = self.deployments.get(&ObjectRef::new(&d.name).within(&ns))?;
                    let replicas = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    return Some((d.uid.clone(), replicas));
                }
                Some((owner.uid.clone(), rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)))
            }
            "StatefulSet" => {
                let sts = self.statefulsets.get(&ObjectRef::new(&owner.name).within(&ns))?;
                (sts.metadata.uid.as_deref() == Some(owner.uid.as_str()))
                    .then(|| (owner.uid.clone(), sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)))
            }
            _ => None,
        }
    }
}
