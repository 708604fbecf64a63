//! DaemonSet controller: one daemon pod on every eligible node.
//!
//! Owns: the informers (DaemonSets, Pods, Nodes; a node change re-syncs
//! every DaemonSet), expectations, and applying `plan::plan` (creates,
//! deletes, status). The scheduler places each pod: it is pinned to its
//! node by a required node affinity (see [`pods`]). Pods are matched to
//! their DaemonSet by controller owner reference (no adoption of orphans).

pub mod plan;
pub mod pods;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::deployment::hash::pod_template_hash;
use super::events::{self, Recorder};
use super::expectations::Expectations;
use super::failures::{self, Reporter};
use super::history;
use super::index::Index;
use super::informer;
use super::queue::{self, ObjectKey, Retry, WorkQueue};
use super::shared::Informers;
use super::{is_not_found, selector};

/// Periodic full resync.
const RESYNC: Duration = Duration::from_secs(30);
/// Retry while expectations are unmet.
const EXPECTATION_RETRY: Duration = Duration::from_secs(1);

/// A failed DaemonSet write.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call on a pod failed.
    #[error("{action} pod for daemonset {ds}")]
    Pod {
        /// What was attempted.
        action: &'static str,
        /// namespace/name of the DaemonSet.
        ds: ObjectKey,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Writing the DaemonSet's ControllerRevisions failed.
    #[error("writing the history of daemonset {ds}")]
    History {
        /// namespace/name of the DaemonSet.
        ds: ObjectKey,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Writing the DaemonSet status failed.
    #[error("updating status of daemonset {ds}")]
    Status {
        /// namespace/name of the DaemonSet.
        ds: ObjectKey,
        /// Cause.
        #[source]
        source: kube::Error,
    },
}

/// The DaemonSet controlling a pod, if any.
fn owner_key(pod: &Pod) -> Vec<ObjectKey> {
    match selector::controller_of(&pod.metadata) {
        Some(owner) if owner.kind == "DaemonSet" => {
            vec![ObjectKey { namespace: pod.namespace().unwrap_or_default(), name: owner.name.clone() }]
        }
        _ => Vec::new(),
    }
}

struct Ctx {
    client: Client,
    sets: Store<DaemonSet>,
    nodes: Store<Node>,
    pods: Store<Pod>,
    pods_by_owner: Index<Pod, ObjectKey>,
    revisions: Store<ControllerRevision>,
    revisions_by_owner: Index<ControllerRevision, ObjectKey>,
    recorder: Recorder,
    expectations: Expectations<ObjectKey>,
}

/// Runs the DaemonSet controller until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, token: CancellationToken) {
    let queue: WorkQueue<ObjectKey> = WorkQueue::new(token.clone());
    informers.queue_metrics().track("daemonset", queue.stats_probe());
    let sets: Store<DaemonSet> = {
        let queue = queue.clone();
        informers.of::<DaemonSet>().on_change(&token, move |change| {
            if let Some((ds, _)) = change {
                queue.add(ObjectKey::of(&ds.metadata));
            }
        })
    };
    let nodes: Store<Node> = {
        let (queue, sets) = (queue.clone(), sets.clone());
        informers.of::<Node>().on_change(&token, move |change| {
            if change.is_some() {
                for ds in sets.state() {
                    queue.add(ObjectKey::of(&ds.metadata));
                }
            }
        })
    };
    let pods_by_owner: Index<Pod, ObjectKey> = Index::new(owner_key);
    let pods: Store<Pod> = informers.of::<Pod>().owned_by(&token, &pods_by_owner, &queue);
    let revisions_by_owner: Index<ControllerRevision, ObjectKey> = Index::new(history::owner_key("DaemonSet"));
    let revisions: Store<ControllerRevision> =
        informers.of::<ControllerRevision>().owned_by(&token, &revisions_by_owner, &queue);
    let ready = informer::wait_ready(&sets, &token).await
        && informer::wait_ready(&revisions, &token).await
        && informer::wait_ready(&nodes, &token).await
        && informer::wait_ready(&pods, &token).await;
    if !ready {
        return;
    }
    queue::spawn_resync(queue.clone(), sets.clone(), RESYNC, token.clone());
    let mut ctx = Ctx {
        recorder: Recorder::new(client.clone(), "daemonset-controller"),
        client,
        sets,
        nodes,
        pods,
        pods_by_owner,
        revisions,
        revisions_by_owner,
        expectations: Expectations::default(),
    };
    let reporter = Reporter::for_store(ctx.recorder.clone(), ctx.sets.clone());
    let mut retry = Retry::new("daemonset").reporting(reporter);
    while let Some(key) = queue.next().await {
        let result = failures::guard(ctx.reconcile(&key)).await;
        retry.finish(&queue, key, result);
    }
}

impl Ctx {
    async fn reconcile(&mut self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let Some(ds) = self.sets.get(&ObjectRef::new(&key.name).within(&key.namespace)) else {
            self.expectations.forget(key);
            return Ok(None);
        };
        let uid = ds.metadata.uid.as_deref().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods_by_owner
            .resolve(&self.pods, key)
            .into_iter()
            .filter(|p| selector::controller_of(&p.metadata).is_some_and(|o| o.uid == uid))
            .collect();
        let mut nodes = self.nodes.state();
        nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let spec = ds.spec.clone().unwrap_or_default();
        let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
        let hash = pod_template_hash(&spec.template, collisions);
        let plan = plan::plan(&ds, &nodes, &pods, &hash, jiff::Timestamp::now());
        let settled = self.expectations.met(key, &pods);
        if ds.metadata.deletion_timestamp.is_none() {
            self.write_history(&ds, key, &spec, &hash, &pods).await?;
        }
        if settled && ds.metadata.deletion_timestamp.is_none() {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
            self.delete(&ds, &api, key, &plan.delete).await?;
            self.create(&ds, &api, key, &plan.create, &hash).await?;
        }
        self.write_status(&ds, key, plan.status).await?;
        let retry = (!settled).then_some(EXPECTATION_RETRY);
        Ok(match (plan.requeue_after, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn write_history(
        &self,
        ds: &DaemonSet,
        key: &ObjectKey,
        spec: &k8s_openapi::api::apps::v1::DaemonSetSpec,
        hash: &str,
        pods: &[Arc<Pod>],
    ) -> Result<(), Error> {
        let uid = ds.metadata.uid.as_deref().unwrap_or_default();
        let existing: Vec<Arc<ControllerRevision>> = self
            .revisions_by_owner
            .resolve(&self.revisions, key)
            .into_iter()
            .filter(|r| selector::controller_of(&r.metadata).is_some_and(|o| o.uid == uid))
            .collect();
        let in_use: HashSet<String> =
            pods.iter().filter_map(|p| pods::revision_of(p)).map(|h| format!("{}-{h}", key.name)).collect();
        let owner = history::Owner {
            kind: "DaemonSet",
            meta: &ds.metadata,
            template: &spec.template,
            limit: spec.revision_history_limit.unwrap_or(10),
        };
        let plan = history::plan(&owner, &format!("{}-{hash}", key.name), hash, &existing, &in_use);
        if plan == history::Plan::default() {
            return Ok(());
        }
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &key.namespace);
        history::apply(&api, plan).await.map_err(|source| Error::History { ds: key.clone(), source })
    }

    async fn create(
        &mut self,
        ds: &DaemonSet,
        api: &Api<Pod>,
        key: &ObjectKey,
        nodes: &[String],
        hash: &str,
    ) -> Result<(), Error> {
        for node in nodes {
            let pod = pods::daemon_pod(ds, node, hash);
            match api.create(&PostParams::default(), &pod).await {
                Ok(created) => {
                    let name = created.name_any();
                    self.expectations.created(key, name.clone());
                    let message = format!("Created pod: {name}");
                    self.recorder.publish(ds, events::NORMAL, "SuccessfulCreate", &message).await;
                }
                Err(source) => return Err(Error::Pod { action: "creating", ds: key.clone(), source }),
            }
        }
        Ok(())
    }

    async fn delete(
        &mut self,
        ds: &DaemonSet,
        api: &Api<Pod>,
        key: &ObjectKey,
        pods: &[Arc<Pod>],
    ) -> Result<(), Error> {
        for pod in pods {
            let name = pod.name_any();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(source) => return Err(Error::Pod { action: "deleting", ds: key.clone(), source }),
            }
            self.expectations.deleted(key, pod.uid().unwrap_or_default());
            let message = format!("Deleted pod: {name}");
            self.recorder.publish(ds, events::NORMAL, "SuccessfulDelete", &message).await;
        }
        Ok(())
    }

    async fn write_status(&self, ds: &DaemonSet, key: &ObjectKey, status: DaemonSetStatus) -> Result<(), Error> {
        if ds.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &key.namespace);
        // A merge patch leaves fields absent from `status` alone: write nulls explicitly.
        let mut body = serde_json::to_value(&status).unwrap_or_default();
        for field in ["numberAvailable", "numberUnavailable", "updatedNumberScheduled"] {
            if let Some(m) = body.as_object_mut() {
                m.entry(field).or_insert(serde_json::Value::Null);
            }
        }
        let patch = json!({"status": body});
        match api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(source) => Err(Error::Status { ds: key.clone(), source }),
        }
    }
}
