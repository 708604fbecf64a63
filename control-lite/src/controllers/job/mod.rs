//! Job controller: runs each Job's pods to completion.
//!
//! Owns: the informers (Jobs, and Pods indexed by the Job controlling
//! them), expectations (pods created or deleted that the watch has not
//! shown yet, so a sync never double-creates), and applying `plan::plan`:
//! pod creates and deletes, the status (written with the resourceVersion
//! it was computed from, so a stale cache cannot overwrite newer counts),
//! events, and deleting a Job whose `ttlSecondsAfterFinished` ran out.
//! Must not: decide anything itself (that is `plan`), adopt pods it did not
//! create (the generated selector names the Job's uid, so none match).

pub mod plan;
pub mod pods;

use futures::future::join_all;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::events::Recorder;
use super::expectations::Expectations;
use super::failures::{self, Reporter};
use super::index::Index;
use super::informer;
use super::queue::{self, ObjectKey, Retry, WorkQueue};
use super::shared::Informers;
use super::{is_conflict, is_not_found, selector};

/// Periodic full resync.
const RESYNC: Duration = Duration::from_secs(30);

/// A failed Job write.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call on a pod failed.
    #[error("{action} pod for job {job}")]
    Pod {
        /// What was attempted.
        action: &'static str,
        /// namespace/name of the Job.
        job: ObjectKey,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Writing the Job (status, or deleting it after its TTL) failed.
    #[error("{action} job {job}")]
    Job {
        /// What was attempted.
        action: &'static str,
        /// namespace/name of the Job.
        job: ObjectKey,
        /// Cause.
        #[source]
        source: kube::Error,
    },
}

/// The Job controlling a pod (namespace, name).
fn pod_job(pod: &Pod) -> Vec<ObjectKey> {
    match selector::controller_of(&pod.metadata) {
        Some(owner) if owner.kind == "Job" => {
            vec![ObjectKey { namespace: pod.namespace().unwrap_or_default(), name: owner.name.clone() }]
        }
        _ => Vec::new(),
    }
}

struct Ctx {
    client: Client,
    jobs: Store<Job>,
    pods: Store<Pod>,
    pods_by_job: Index<Pod, ObjectKey>,
    recorder: Recorder,
    expectations: Expectations<ObjectKey>,
}

/// Runs the Job controller until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, token: CancellationToken) {
    let queue: WorkQueue<ObjectKey> = WorkQueue::new(token.clone());
    informers.queue_metrics().track("job", queue.stats_probe());
    let jobs: Store<Job> = {
        let queue = queue.clone();
        informers.of::<Job>().subscribe(&token, move |store, change| match change {
            Some((job, _)) => queue.add(ObjectKey::of(&job.metadata)),
            None => store.state().iter().for_each(|job| queue.add(ObjectKey::of(&job.metadata))),
        })
    };
    let pods_by_job: Index<Pod, ObjectKey> = Index::new(pod_job);
    let pods: Store<Pod> = informers.of::<Pod>().owned_by(&token, &pods_by_job, &queue);
    if !informer::wait_ready(&jobs, &token).await || !informer::wait_ready(&pods, &token).await {
        return;
    }
    queue::spawn_resync(queue.clone(), jobs.clone(), RESYNC, token.clone());
    let recorder = Recorder::new(client.clone(), "job-controller");
    let mut ctx = Ctx { recorder, client, jobs, pods, pods_by_job, expectations: Expectations::default() };
    let reporter = Reporter::for_store(ctx.recorder.clone(), ctx.jobs.clone());
    let mut retry = Retry::new("job").reporting(reporter);
    while let Some(key) = queue.next().await {
        let result = failures::guard(ctx.reconcile(&key)).await;
        retry.finish(&queue, key, result);
    }
}

impl Ctx {
    async fn reconcile(&mut self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let Some(job) = self.jobs.get(&ObjectRef::new(&key.name).within(&key.namespace)) else {
            self.expectations.forget(key);
            return Ok(None);
        };
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods_by_job
            .resolve(&self.pods, key)
            .into_iter()
            .filter(|p| selector::controller_of(&p.metadata).is_some_and(|o| o.uid == uid))
            .collect();
        if !self.expectations.met(key, &pods) {
            return Ok(Some(Duration::from_secs(1)));
        }
        let plan = plan::plan(&job, &pods, jiff::Timestamp::now());
        if plan.delete_job {
            let api: Api<Job> = Api::namespaced(self.client.clone(), &key.namespace);
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                preconditions: Some(kube::api::Preconditions { uid: Some(uid), resource_version: None }),
                ..DeleteParams::default()
            };
            return match api.delete(&key.name, &params).await {
                Ok(_) => Ok(None),
                Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(None),
                Err(source) => Err(Error::Job { action: "deleting expired", job: key.clone(), source }),
            };
        }
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        self.create(&job, &pod_api, key, &plan.create).await?;
        self.delete(&job, &pod_api, key, &plan.delete).await?;
        if job.status.as_ref() != Some(&plan.status) {
            let mut next = (*job).clone();
            next.status = Some(plan.status);
            let api: Api<Job> = Api::namespaced(self.client.clone(), &key.namespace);
            match api.replace_status(&key.name, &PostParams::default(), &next).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(None),
                // The cache was behind: the watch brings the newer Job and queues it again.
                Err(e) if is_conflict(&e) => return Ok(Some(Duration::from_millis(500))),
                Err(source) => return Err(Error::Job { action: "updating status of", job: key.clone(), source }),
            }
        }
        for e in &plan.events {
            self.recorder.publish(job.as_ref(), e.type_, e.reason, &e.message).await;
        }
        Ok(plan.requeue_after)
    }

    async fn create(
        &mut self,
        job: &Job,
        api: &Api<Pod>,
        key: &ObjectKey,
        indexes: &[Option<i32>],
    ) -> Result<(), Error> {
        let params = PostParams::default();
        let templates: Vec<Pod> = indexes.iter().map(|ix| pods::pod_for(job, *ix)).collect();
        let results = join_all(templates.iter().map(|pod| api.create(&params, pod))).await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(pod) => {
                    let name = pod.name_any();
                    self.expectations.created(key, name.clone());
                    let message = format!("Created pod: {name}");
                    self.recorder.publish(job, super::events::NORMAL, "SuccessfulCreate", &message).await;
                }
                Err(source) => {
                    first_error.get_or_insert(Error::Pod { action: "creating", job: key.clone(), source });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn delete(&mut self, job: &Job, api: &Api<Pod>, key: &ObjectKey, pods: &[Arc<Pod>]) -> Result<(), Error> {
        for pod in pods {
            let name = pod.name_any();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(source) => return Err(Error::Pod { action: "deleting", job: key.clone(), source }),
            }
            self.expectations.deleted(key, pod.uid().unwrap_or_default());
            let message = format!("Deleted pod: {name}");
            self.recorder.publish(job, super::events::NORMAL, "SuccessfulDelete", &message).await;
        }
        Ok(())
    }
}
