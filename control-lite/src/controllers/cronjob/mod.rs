//! CronJob controller: starts a Job at each schedule time.
//!
//! Owns: the informers (CronJobs, and Jobs indexed by the CronJob
//! controlling them), the clock (`Clock`, injected so a test can set the
//! time), and applying `plan::plan`: deleting replaced and expired Jobs,
//! creating the Job of the latest missed schedule time (a 409 means it
//! exists already), writing the status with the resourceVersion it was
//! computed from, posting events, and requeueing at the next schedule time.
//! Must not: decide anything itself (that is `plan`).

pub mod plan;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::events::{Recorder, NORMAL};
use super::failures::{self, Reporter};
use super::index::Index;
use super::informer;
use super::queue::{self, ObjectKey, Retry, WorkQueue};
use super::shared::Informers;
use super::{is_conflict, is_not_found, selector};

/// Periodic full resync.
const RESYNC: Duration = Duration::from_secs(30);

/// The time source of the controller.
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// A failed CronJob write.
#[derive(Debug, thiserror::Error)]
#[error("{action} for cronjob {cronjob}")]
pub struct Error {
    action: &'static str,
    cronjob: ObjectKey,
    #[source]
    source: kube::Error,
}

/// The CronJob controlling a Job.
fn job_owner(job: &Job) -> Vec<ObjectKey> {
    match selector::controller_of(&job.metadata) {
        Some(owner) if owner.kind == "CronJob" => {
            vec![ObjectKey { namespace: job.namespace().unwrap_or_default(), name: owner.name.clone() }]
        }
        _ => Vec::new(),
    }
}

struct Ctx {
    client: Client,
    cronjobs: Store<CronJob>,
    jobs: Store<Job>,
    jobs_by_owner: Index<Job, ObjectKey>,
    recorder: Recorder,
    clock: Clock,
}

/// Runs the CronJob controller on the system clock until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, token: CancellationToken) {
    run_with_clock(client, informers, token, Arc::new(jiff::Timestamp::now)).await;
}

/// Runs the CronJob controller with `clock` until `token` is cancelled.
pub async fn run_with_clock(client: Client, informers: Informers, token: CancellationToken, clock: Clock) {
    let queue: WorkQueue<ObjectKey> = WorkQueue::new(token.clone());
    informers.queue_metrics().track("cronjob", queue.stats_probe());
    let cronjobs: Store<CronJob> = {
        let queue = queue.clone();
        informers.of::<CronJob>().subscribe(&token, move |store, change| match change {
            Some((cj, _)) => queue.add(ObjectKey::of(&cj.metadata)),
            None => store.state().iter().for_each(|cj| queue.add(ObjectKey::of(&cj.metadata))),
        })
    };
    let jobs_by_owner: Index<Job, ObjectKey> = Index::new(job_owner);
    let jobs: Store<Job> = informers.of::<Job>().owned_by(&token, &jobs_by_owner, &queue);
    if !informer::wait_ready(&cronjobs, &token).await || !informer::wait_ready(&jobs, &token).await {
        return;
    }
    queue::spawn_resync(queue.clone(), cronjobs.clone(), RESYNC, token.clone());
    let recorder = Recorder::new(client.clone(), "cronjob-controller");
    let ctx = Ctx { recorder, client, cronjobs, jobs, jobs_by_owner, clock };
    let reporter = Reporter::for_store(ctx.recorder.clone(), ctx.cronjobs.clone());
    let mut retry = Retry::new("cronjob").reporting(reporter);
    while let Some(key) = queue.next().await {
        let result = failures::guard(ctx.reconcile(&key)).await;
        retry.finish(&queue, key, result);
    }
}

impl Ctx {
    async fn reconcile(&self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let Some(cj) = self.cronjobs.get(&ObjectRef::new(&key.name).within(&key.namespace)) else {
            return Ok(None);
        };
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let jobs: Vec<Arc<Job>> = self
            .jobs_by_owner
            .resolve(&self.jobs, key)
            .into_iter()
            .filter(|j| selector::controller_of(&j.metadata).is_some_and(|o| o.uid == uid))
            .collect();
        let mut plan = plan::plan(&cj, &jobs, (self.clock)());
        let fail = |action, source| Error { action, cronjob: key.clone(), source };
        let api: Api<Job> = Api::namespaced(self.client.clone(), &key.namespace);
        let background =
            DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
        for job in &plan.delete {
            let name = job.name_any();
            match api.delete(&name, &background).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(source) => return Err(fail("deleting a job", source)),
            }
            self.recorder.publish(cj.as_ref(), NORMAL, "SuccessfulDelete", &format!("Deleted job {name}")).await;
        }
        if let Some(job) = &plan.create {
            match api.create(&PostParams::default(), job).await {
                Ok(created) => {
                    // The active reference names the Job by uid once it exists.
                    let active = plan.status.active.iter_mut().flatten();
                    for r in active.filter(|r| r.name == created.metadata.name) {
                        r.uid.clone_from(&created.metadata.uid);
                        r.resource_version.clone_from(&created.metadata.resource_version);
                    }
                    let message = format!("Created job {}", created.name_any());
                    self.recorder.publish(cj.as_ref(), NORMAL, "SuccessfulCreate", &message).await;
                }
                Err(e) if is_conflict(&e) => {}
                Err(source) => {
                    let message = format!("Error creating job: {source}");
                    self.recorder.publish(cj.as_ref(), super::events::WARNING, "FailedCreate", &message).await;
                    return Err(fail("creating a job", source));
                }
            }
        }
        if cj.status.as_ref() != Some(&plan.status) {
            let mut next = (*cj).clone();
            next.status = Some(plan.status);
            let cronjobs: Api<CronJob> = Api::namespaced(self.client.clone(), &key.namespace);
            match cronjobs.replace_status(&key.name, &PostParams::default(), &next).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) if is_conflict(&e) => return Ok(Some(Duration::from_millis(500))),
                Err(source) => return Err(fail("updating the status", source)),
            }
        }
        for e in &plan.events {
            self.recorder.publish(cj.as_ref(), e.type_, e.reason, &e.message).await;
        }
        Ok(plan.requeue_after)
    }
}
