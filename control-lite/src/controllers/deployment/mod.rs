//! Deployment controller: rolls a Deployment's pod template out through
//! ReplicaSets (RollingUpdate or Recreate) and reports rollout status.
//!
//! Owns: the informers (Deployments, ReplicaSets) and applying
//! `sync::plan` (create/scale/annotate/delete ReplicaSets, revision
//! annotation, status). Must not: touch pods (the ReplicaSet controller
//! does).

pub mod hash;
pub mod progress;
pub mod proportional;
pub mod rollout;
pub mod status;
pub mod sync;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::events::{self, Recorder};
use super::failures::{self, Reporter};
use super::index::Index;
use super::informer;
use super::queue::{self, ObjectKey, Retry, WorkQueue};
use super::shared::Informers;
use super::{is_conflict, is_not_found, selector};

const RESYNC: Duration = Duration::from_secs(30);

/// A failed Deployment write.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call on a ReplicaSet failed.
    #[error("{action} replicaset {rs} of deployment {deployment}")]
    ReplicaSet {
        /// What was attempted.
        action: &'static str,
        /// ReplicaSet name.
        rs: String,
        /// namespace/name of the Deployment.
        deployment: ObjectKey,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Writing the Deployment (annotations or status) failed.
    #[error("updating {what} of deployment {deployment}")]
    Deployment {
        /// "status" or "revision annotation".
        what: &'static str,
        /// namespace/name of the Deployment.
        deployment: ObjectKey,
        /// Cause.
        #[source]
        source: kube::Error,
    },
}

/// The Deployment controlling a ReplicaSet (the ReplicaSet index key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DeploymentRef {
    namespace: String,
    name: String,
    uid: String,
}

fn deployment_of(rs: &ReplicaSet) -> Vec<DeploymentRef> {
    selector::controller_of(&rs.metadata)
        .filter(|o| o.kind == "Deployment")
        .map(|o| DeploymentRef {
            namespace: rs.namespace().unwrap_or_default(),
            name: o.name.clone(),
            uid: o.uid.clone(),
        })
        .into_iter()
        .collect()
}

struct Ctx {
    client: Client,
    deployments: Store<Deployment>,
    sets: Store<ReplicaSet>,
    sets_by_owner: Index<ReplicaSet, DeploymentRef>,
    recorder: Recorder,
}

/// Runs the Deployment controller until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, token: CancellationToken) {
    let queue: WorkQueue<ObjectKey> = WorkQueue::new(token.clone());
    informers.queue_metrics().track("deployment", queue.stats_probe());
    let deployments: Store<Deployment> = {
        let queue = queue.clone();
        informers.of::<Deployment>().on_change(&token, move |change| {
            if let Some((d, _)) = change {
                queue.add(ObjectKey::of(&d.metadata));
            }
        })
    };
    let sets_by_owner: Index<ReplicaSet, DeploymentRef> = Index::new(deployment_of);
    let sets: Store<ReplicaSet> = {
        let (queue, index) = (queue.clone(), sets_by_owner.clone());
        informers.of::<ReplicaSet>().subscribe(&token, move |store, change| {
            for (_, moved) in index.apply(store, change) {
                for owner in moved.before.into_iter().chain(moved.after) {
                    queue.add(ObjectKey { namespace: owner.namespace, name: owner.name });
                }
            }
        })
    };
    if !informer::wait_ready(&deployments, &token).await || !informer::wait_ready(&sets, &token).await {
        return;
    }
    queue::spawn_resync(queue.clone(), deployments.clone(), RESYNC, token.clone());
    let ctx = Ctx {
        recorder: Recorder::new(client.clone(), "deployment-controller"),
        client,
        deployments,
        sets,
        sets_by_owner,
    };
    let reporter = Reporter::for_store(ctx.recorder.clone(), ctx.deployments.clone());
    let mut retry = Retry::new("deployment").reporting(reporter);
    while let Some(key) = queue.next().await {
        let result = failures::guard(ctx.reconcile(&key)).await;
        retry.finish(&queue, key, result);
    }
}

impl Ctx {
    async fn reconcile(&self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let Some(d) = self.deployments.get(&ObjectRef::new(&key.name).within(&key.namespace)) else {
            return Ok(None);
        };
        if d.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let uid = d.uid().unwrap_or_default();
        let selector = d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        let owner = DeploymentRef { namespace: key.namespace.clone(), name: key.name.clone(), uid: uid.clone() };
        let owned: Vec<Arc<ReplicaSet>> = self
            .sets_by_owner
            .resolve(&self.sets, &owner)
            .into_iter()
            .filter(|rs| selector::controller_of(&rs.metadata).is_some_and(|o| o.uid == uid))
            .filter(|rs| selector::matches(&selector, &selector::labels(&rs.metadata)))
            .collect();
        let plan = sync::plan(&d, &owned, jiff::Timestamp::now());
        let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &key.namespace);
        let rs_error = |action: &'static str, rs: &str| {
            let (rs, deployment) = (rs.to_string(), key.clone());
            move |source| Error::ReplicaSet { action, rs, deployment, source }
        };
        let mut requeue = plan.requeue;
        let mut status = plan.status.clone();
        if let Some(new) = &plan.create {
            let name = new.name_any();
            match rs_api.create(&PostParams::default(), new).await {
                Ok(_) => {
                    let replicas = new.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                    let message = format!("Scaled up replica set {name} from 0 to {replicas}");
                    self.recorder.publish(&*d, events::NORMAL, "ScalingReplicaSet", &message).await;
                }
                Err(e) if is_conflict(&e) => {
                    requeue = Some(Duration::from_secs(1).min(requeue.unwrap_or(Duration::MAX)));
                    let existing = rs_api.get(&name).await.map_err(rs_error("reading", &name))?;
                    let ours = selector::controller_of(&existing.metadata).is_some_and(|o| o.uid == uid);
                    if !ours {
                        // Hash collision with a foreign ReplicaSet: salt the hash.
                        status.collision_count = Some(status.collision_count.unwrap_or(0).saturating_add(1));
                    }
                }
                Err(source) => return Err(rs_error("creating", &name)(source)),
            }
        }
        for update in &plan.update {
            let mut patch = json!({"metadata": {"annotations": update.annotations}});
            if let Some(replicas) = update.replicas {
                patch["spec"] = json!({"replicas": replicas});
            }
            match rs_api.patch(&update.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => self.announce_scale(&d, &owned, &update.name, update.replicas).await,
                Err(e) if is_not_found(&e) => {}
                Err(source) => return Err(rs_error("scaling", &update.name)(source)),
            }
        }
        for name in &plan.delete {
            match rs_api.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(source) => return Err(rs_error("deleting", name)(source)),
            }
        }
        let d_api: Api<Deployment> = Api::namespaced(self.client.clone(), &key.namespace);
        if let Some(revision) = &plan.revision {
            let patch = json!({"metadata": {"annotations": {sync::REVISION: revision}}});
            d_api
                .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|source| Error::Deployment { what: "revision annotation", deployment: key.clone(), source })?;
        }
        self.write_status(&d, &d_api, key, status).await?;
        Ok(requeue)
    }

    async fn announce_scale(&self, d: &Deployment, owned: &[Arc<ReplicaSet>], name: &str, replicas: Option<i32>) {
        let Some(to) = replicas else { return };
        let from = owned
            .iter()
            .find(|rs| rs.metadata.name.as_deref() == Some(name))
            .and_then(|rs| rs.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(0);
        let direction = if to > from { "up" } else { "down" };
        let message = format!("Scaled {direction} replica set {name} from {from} to {to}");
        self.recorder.publish(d, events::NORMAL, "ScalingReplicaSet", &message).await;
    }

    async fn write_status(
        &self,
        d: &Deployment,
        api: &Api<Deployment>,
        key: &ObjectKey,
        status: DeploymentStatus,
    ) -> Result<(), Error> {
        if d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let patch = json!({"status": status});
        match api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(source) => Err(Error::Deployment { what: "status", deployment: key.clone(), source }),
        }
    }
}
