//! One pass of the pod worker: observe the runtime once, decide, apply,
//! and hand the status to the status manager.
//!
//! CRI is observed at most twice per pass: before deciding, and again only
//! when the pass changed the runtime (so the status shows what was just
//! started or stopped). Probe kills end the pass; the next one, right
//! away, observes their effect.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodStatus};

use super::{images_of, pod_key, teardown, Error, Outcome, PodWorker};
use crate::actions::{self, compute_pod_actions};
use crate::kubelet_metrics::StartClock;
use crate::observed::{observe, ObservedPod};
use crate::prober;
use crate::status::{compute_pod_status, StatusInputs};

/// Every container is running or finished: nothing is in transition.
fn all_settled(status: &PodStatus) -> bool {
    status
        .container_statuses
        .iter()
        .flatten()
        .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some() || s.terminated.is_some()))
}

impl PodWorker {
    pub(super) async fn observe(&mut self, pod: &Pod) -> Result<ObservedPod, Error> {
        let mut observed = observe(self.deps.runtime.as_ref(), &self.uid, &images_of(pod))
            .await
            .map_err(|source| Error::Runtime { pod: pod_key(pod), source })?;
        self.termination_messages.fill(&mut observed).await;
        Ok(observed)
    }

    pub(super) async fn sync(&mut self, pod: &Pod) -> Result<Outcome, Error> {
        self.start_clock.get_or_insert_with(|| StartClock::first_seen(pod, Instant::now()));
        let observed = self.observe(pod).await?;
        if let Some(outcome) = self.refuse_unadmitted(pod, &observed).await? {
            return Ok(outcome);
        }
        if pod.metadata.deletion_timestamp.is_none() && self.act_on_probes(pod, &observed).await? {
            return Ok(Outcome::Continue(Duration::ZERO));
        }
        let now = Timestamp::now();
        self.crash.gc(now);
        self.pull.gc(now);
        let pending = self.prober.as_ref().map(|p| prober::startup_pending(pod, &observed, p.results()));
        let mut ctx = actions::Context::new(now, &self.crash, &self.pull);
        if let Some(pending) = &pending {
            ctx.startup_pending = pending;
        }
        let resize = self
            .resize
            .sync(
                self.deps.runtime.as_ref(),
                self.deps.events.as_ref(),
                &self.deps.cgroups,
                self.deps.allocatable,
                pod,
                &observed,
            )
            .await;
        ctx.resize_restarts = &resize.plan.restarts;
        let mut actions = compute_pod_actions(pod, &observed, ctx);
        if let Some(grace) = actions.terminate {
            self.terminate(pod, &observed, grace).await?;
            self.deps
                .api
                .delete_pod(
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    &self.uid,
                )
                .await
                .map_err(|source| Error::Api { pod: pod_key(pod), source })?;
            teardown::remove_log_dirs(&self.deps.root_dir, &self.uid).await;
            self.tear_down_volumes().await;
            // The pod cgroup goes once the worker finishes (`run`), not at
            // the next orphan sweep a minute later.
            return Ok(Outcome::Finished);
        }
        let volume_holds = self.sync_volumes(pod, &mut actions).await;
        let busy = actions.changes_runtime() || actions.fail_pod.is_some();
        if busy {
            tracing::debug!(pod = %pod_key(pod), ?actions, "applying pod actions");
        }
        let mut held = actions.waiting.clone();
        self.announce_holds(pod, &held).await;
        held.extend(volume_holds);
        if busy {
            self.apply(pod, &observed, &actions, &mut held).await?;
        }
        self.last_held.clone_from(&held);
        let observed = if actions.changes_runtime() { self.observe(pod).await? } else { observed };
        let probes = self.prober.as_mut().map(|p| {
            p.sync(pod, &observed);
            prober::container_probes(pod, &observed, p.results())
        });
        let mut status = compute_pod_status(
            pod,
            &observed,
            StatusInputs {
                host_ip: &self.deps.host_ip,
                waiting: &held,
                now: Timestamp::now(),
                probes: probes.as_ref(),
                previous: self.last_status.as_ref(),
            },
        );
        crate::resize::report::report(&mut status, pod, &observed, self.resize.actual(), &resize, Timestamp::now());
        let steady = !busy && held.is_empty() && all_settled(&status);
        if let Some(elapsed) = self.start_clock.as_mut().and_then(|clock| clock.started(&status, Instant::now())) {
            self.deps.metrics.record_pod_start(elapsed);
        }
        self.last_status = Some(status.clone());
        self.deps.status.set(pod, status);
        let mut wait = if steady { self.deps.timing.steady } else { self.deps.timing.transitioning };
        if let Some(requeue) = actions.requeue_after {
            wait = wait.min(requeue.max(Duration::from_millis(100)));
        }
        Ok(Outcome::Continue(wait))
    }
}
