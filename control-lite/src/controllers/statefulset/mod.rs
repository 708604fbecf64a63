//! StatefulSet controller: pods with stable names (`<set>-<ordinal>`),
//! brought up, scaled down and updated in ordinal order.
//!
//! Owns: the informers (StatefulSets, Pods), expectations, and applying
//! `plan::plan` (creates, deletes, status). Pods are matched to their set by
//! controller owner reference (no adoption of orphans).

pub mod plan;
pub mod pods;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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

/// A failed StatefulSet write.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call on a pod failed.
    #[error("{action} pod {pod} of statefulset {sts}")]
    Pod {
        /// What was attempted.
        action: &'static str,
        /// The pod's name.
        pod: String,
        /// namespace/name of the StatefulSet.
        sts: ObjectKey,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Writing the StatefulSet's ControllerRevisions failed.
    #[error("writing the history of statefulset {sts}")]
    History {
        /// namespace/name of the StatefulSet.
        sts: ObjectKey,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Writing the StatefulSet status failed.
    #[error("updating status of statefulset {sts}")]
    Status {
        /// namespace/name of the StatefulSet.
        sts: ObjectKey,
        /// Cause.
        #[source]
        source: kube::Error,
    },
}

/// The StatefulSet controlling a pod, if any.
fn owner_key(pod: &Pod) -> Vec<ObjectKey> {
    match selector::controller_of(&pod.metadata) {
        Some(owner) if owner.kind == "StatefulSet" => {
            vec![ObjectKey { namespace: pod.namespace().unwrap_or_default(), name: owner.name.clone() }]
        }
        _ => Vec::new(),
    }
}

struct Ctx {
    client: Client,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    pods_by_owner: Index<Pod, ObjectKey>,
    revisions: Store<ControllerRevision>,
    revisions_by_owner: Index<ControllerRevision, ObjectKey>,
    recorder: Recorder,
    expectations: Expectations<ObjectKey>,
}

/// Runs the StatefulSet controller until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, token: CancellationToken) {
    let queue: WorkQueue<ObjectKey> = WorkQueue::new(token.clone());
    informers.queue_metrics().track("statefulset", queue.stats_probe());
    let sets: Store<StatefulSet> = {
        let queue = queue.clone();
        informers.of::<StatefulSet>().on_change(&token, move |change| {
            if let Some((sts, _)) = change {
                queue.add(ObjectKey::of(&sts.metadata));
            }
        })
    };
    let pods_by_owner: Index<Pod, ObjectKey> = Index::new(owner_key);
    let pods: Store<Pod> = informers.of::<Pod>().owned_by(&token, &pods_by_owner, &queue);
    let revisions_by_owner: Index<ControllerRevision, ObjectKey> = Index::new(history::owner_key("StatefulSet"));
    let revisions: Store<ControllerRevision> =
        informers.of::<ControllerRevision>().owned_by(&token, &revisions_by_owner, &queue);
    let ready = informer::wait_ready(&sets, &token).await
        && informer::wait_ready(&revisions, &token).await
        && informer::wait_ready(&pods, &token).await;
    if !ready {
        return;
    }
    queue::spawn_resync(queue.clone(), sets.clone(), RESYNC, token.clone());
    let mut ctx = Ctx {
        recorder: Recorder::new(client.clone(), "statefulset-controller"),
        client,
        sets,
        pods,
        pods_by_owner,
        revisions,
        revisions_by_owner,
        expectations: Expectations::default(),
    };
    let reporter = Reporter::for_store(ctx.recorder.clone(), ctx.sets.clone());
    let mut retry = Retry::new("statefulset").reporting(reporter);
    while let Some(key) = queue.next().await {
        let result = failures::guard(ctx.reconcile(&key)).await;
        retry.finish(&queue, key, result);
    }
}

impl Ctx {
    async fn reconcile(&mut self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let Some(sts) = self.sets.get(&ObjectRef::new(&key.name).within(&key.namespace)) else {
            self.expectations.forget(key);
            return Ok(None);
        };
        let uid = sts.metadata.uid.as_deref().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods_by_owner
            .resolve(&self.pods, key)
            .into_iter()
            .filter(|p| selector::controller_of(&p.metadata).is_some_and(|o| o.uid == uid))
            .collect();
        let revision = pods::update_revision(&sts);
        let plan = plan::plan(&sts, &pods, &revision, jiff::Timestamp::now());
        if sts.metadata.deletion_timestamp.is_none() {
            self.write_history(&sts, key, &revision, &pods).await?;
        }
        let settled = self.expectations.met(key, &pods);
        if settled {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
            self.delete(&sts, &api, key, &plan.delete).await?;
            self.create(&sts, &api, key, &plan.create, &revision).await?;
        }
        self.write_status(&sts, key, plan.status).await?;
        Ok((!settled).then_some(EXPECTATION_RETRY))
    }

    async fn write_history(
        &self,
        sts: &StatefulSet,
        key: &ObjectKey,
        revision: &str,
        pods: &[Arc<Pod>],
    ) -> Result<(), Error> {
        let uid = sts.metadata.uid.as_deref().unwrap_or_default();
        let existing: Vec<Arc<ControllerRevision>> = self
            .revisions_by_owner
            .resolve(&self.revisions, key)
            .into_iter()
            .filter(|r| selector::controller_of(&r.metadata).is_some_and(|o| o.uid == uid))
            .collect();
        let status = sts.status.clone().unwrap_or_default();
        let in_use: HashSet<String> = pods
            .iter()
            .filter_map(|p| pods::revision_of(p).map(str::to_string))
            .chain(status.current_revision)
            .chain(status.update_revision)
            .collect();
        let spec = sts.spec.clone().unwrap_or_default();
        let hash = revision.strip_prefix(&format!("{}-", key.name)).unwrap_or(revision);
        let owner = history::Owner {
            kind: "StatefulSet",
            meta: &sts.metadata,
            template: &spec.template,
            limit: spec.revision_history_limit.unwrap_or(10),
        };
        let plan = history::plan(&owner, revision, hash, &existing, &in_use);
        if plan == history::Plan::default() {
            return Ok(());
        }
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &key.namespace);
        history::apply(&api, plan).await.map_err(|source| Error::History { sts: key.clone(), source })
    }

    /// The pod for `ordinal` at the revision [`plan::revision_for`] picks,
    /// from that revision's template when it is an older one we still have.
    fn pod_at(&self, sts: &StatefulSet, key: &ObjectKey, ordinal: i32, update_revision: &str) -> Pod {
        let revision = plan::revision_for(sts, ordinal, update_revision);
        let older = (revision != update_revision)
            .then(|| self.revisions.get(&ObjectRef::new(&revision).within(&key.namespace)))
            .flatten()
            .filter(|r| selector::controller_of(&r.metadata).map(|o| &o.uid) == sts.metadata.uid.as_ref())
            .and_then(|r| history::template_of(&r));
        match older {
            Some(template) => pods::stateful_pod_from(sts, template, ordinal, &revision),
            None => pods::stateful_pod(sts, ordinal, update_revision),
        }
    }

    async fn create(
        &mut self,
        sts: &StatefulSet,
        api: &Api<Pod>,
        key: &ObjectKey,
        ordinals: &[i32],
        revision: &str,
    ) -> Result<(), Error> {
        for ordinal in ordinals {
            let pod = self.pod_at(sts, key, *ordinal, revision);
            let name = pod.name_any();
            match api.create(&PostParams::default(), &pod).await {
                Ok(_) => {
                    self.expectations.created(key, name.clone());
                    let message = format!("create Pod {name} in StatefulSet {} successful", key.name);
                    self.recorder.publish(sts, events::NORMAL, "SuccessfulCreate", &message).await;
                }
                Err(source) => return Err(Error::Pod { action: "creating", pod: name, sts: key.clone(), source }),
            }
        }
        Ok(())
    }

    async fn delete(
        &mut self,
        sts: &StatefulSet,
        api: &Api<Pod>,
        key: &ObjectKey,
        pods: &[Arc<Pod>],
    ) -> Result<(), Error> {
        for pod in pods {
            let name = pod.name_any();
            // Preconditioned on the uid: never delete a newer pod of the same name.
            let params = DeleteParams {
                preconditions: Some(kube::api::Preconditions { uid: pod.uid(), resource_version: None }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) || super::is_conflict(&e) => {}
                Err(source) => return Err(Error::Pod { action: "deleting", pod: name, sts: key.clone(), source }),
            }
            self.expectations.deleted(key, pod.uid().unwrap_or_default());
            let message = format!("delete Pod {name} in StatefulSet {} successful", key.name);
            self.recorder.publish(sts, events::NORMAL, "SuccessfulDelete", &message).await;
        }
        Ok(())
    }

    async fn write_status(&self, sts: &StatefulSet, key: &ObjectKey, status: StatefulSetStatus) -> Result<(), Error> {
        if sts.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &key.namespace);
        let patch = json!({"status": status});
        match api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(source) => Err(Error::Status { sts: key.clone(), source }),
        }
    }
}
