//! Tearing a pod down: stop its containers in waves within one grace
//! budget ([`crate::termination::Budget`]), stop the sandboxes, remove all
//! of it. Used for deletion, for pods gone from the API and for the orphan
//! sweep.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use super::{images_of, pod_key, Error, PodWorker, WorkerDeps};
use crate::actions::{self, init::termination_waves};
use crate::events::EventType;
use crate::observed::{observe, ObservedPod, RunState};
use crate::runtime::RuntimeError;
use crate::status::{compute_pod_status, StatusInputs};
use crate::termination::Budget;

impl PodWorker {
    /// Stops every container gracefully (preStop, then StopContainer with
    /// what is left of the `grace` decided for the pod) in waves, writes the
    /// final status, then removes the sandboxes and containers.
    pub(super) async fn terminate(&mut self, pod: &Pod, observed: &ObservedPod, grace: Duration) -> Result<(), Error> {
        if let Some(prober) = self.prober.as_mut() {
            prober.stop_all();
        }
        let live = observed.live_container_ids();
        let live: Vec<_> = observed.containers.iter().filter(|c| live.contains(&c.id)).collect();
        for c in &live {
            self.event(pod, &c.name, EventType::Normal, "Killing", &format!("Stopping container {}", c.name)).await;
        }
        let pod_ip = observed.ready_sandbox().and_then(|s| s.ips.first()).map(String::as_str);
        let mut budget = Budget::starting(Instant::now(), grace);
        // App containers first, then sidecars in reverse order, each wave
        // with what is left of the one budget.
        for wave in termination_waves(pod, observed) {
            let left = budget.left(Instant::now());
            let this = &*self;
            let wave: Vec<_> = live.iter().filter(|c| wave.contains(&c.id)).collect();
            let stops = wave
                .iter()
                .map(|c| this.stop_gracefully(pod, &c.name, &c.id, c.state == RunState::Running, pod_ip, left));
            let ids: Vec<String> = wave.iter().map(|c| c.id.clone()).collect();
            let stops = futures::future::join_all(stops);
            let results = self.stop_honouring_shorter_grace(stops, &ids, observed, &mut budget).await;
            for result in results {
                result.map_err(|source| Error::Runtime { pod: pod_key(pod), source })?;
            }
        }
        // As upstream, the final container states (exit codes, finishedAt)
        // reach the API before the pod object goes.
        let stopped = self.observe(pod).await?;
        let status = compute_pod_status(
            pod,
            &stopped,
            StatusInputs {
                host_ip: &self.deps.host_ip,
                waiting: &BTreeMap::new(),
                now: Timestamp::now(),
                probes: None,
                previous: self.last_status.as_ref(),
            },
        );
        // The one status write a worker waits for: it must reach the API
        // before the delete.
        if let Err(error) = self.deps.status.write_final(pod, status).await {
            tracing::warn!(%error, pod = %pod_key(pod), "final status of a terminated pod");
        }
        self.remove_observed(Some(pod), &stopped, budget)
            .await
            .map_err(|source| Error::Runtime { pod: pod_key(pod), source })
    }

    /// Waits for `stops`; a pod update whose termination decision leaves
    /// less than the budget (a second delete with a shorter grace period)
    /// shortens the budget and re-issues StopContainer with the shorter
    /// grace, as the runtime kills at the earliest timeout it was given.
    async fn stop_honouring_shorter_grace<T>(
        &self,
        stops: impl std::future::Future<Output = T>,
        ids: &[String],
        observed: &ObservedPod,
        budget: &mut Budget,
    ) -> T {
        let Some(mut updates) = self.updates.clone() else { return stops.await };
        updates.borrow_and_update();
        tokio::pin!(stops);
        loop {
            tokio::select! {
                results = &mut stops => return results,
                changed = updates.changed() => {
                    if changed.is_err() {
                        return stops.await;
                    }
                    let Some(pod) = updates.borrow_and_update().clone() else { continue };
                    let ctx = actions::Context::new(Timestamp::now(), &self.crash, &self.pull);
                    let Some(shorter) = actions::compute_pod_actions(&pod, observed, ctx).terminate else { continue };
                    if !budget.shorten(Instant::now(), shorter) {
                        continue;
                    }
                    tracing::info!(pod = %pod_key(&pod), grace = shorter.as_secs(), "grace period shortened");
                    for id in ids {
                        let runtime = self.deps.runtime.clone();
                        let id = id.clone();
                        tokio::spawn(async move {
                            if let Err(error) = runtime.stop_container(&id, shorter).await {
                                tracing::warn!(%error, "stopping with a shortened grace");
                            }
                        });
                    }
                }
            }
        }
    }

    /// Stops the live containers in waves (app containers in parallel, then
    /// sidecars in reverse order; see `actions::init::termination_waves`)
    /// within what is left of `budget`, then removes everything.
    pub(super) async fn remove_observed(
        &self,
        pod: Option<&Pod>,
        observed: &ObservedPod,
        budget: Budget,
    ) -> Result<(), RuntimeError> {
        let runtime = self.deps.runtime.as_ref();
        let waves = match pod {
            Some(pod) => termination_waves(pod, observed),
            None => vec![observed.live_container_ids()],
        };
        for wave in waves {
            let left = budget.left(Instant::now());
            let stops = wave.iter().map(|id| runtime.stop_container(id, left));
            for result in futures::future::join_all(stops).await {
                ignore_not_found(result)?;
            }
        }
        for s in &observed.sandboxes {
            ignore_not_found(runtime.stop_pod_sandbox(&s.id).await)?;
        }
        for c in &observed.containers {
            ignore_not_found(runtime.remove_container(&c.id).await)?;
        }
        for s in &observed.sandboxes {
            ignore_not_found(runtime.remove_pod_sandbox(&s.id).await)?;
        }
        Ok(())
    }

    /// The pod is gone from the API: kill and remove everything of it,
    /// then its log directory (nobody can ask for those logs any more) and its
    /// volumes; `run` then removes its cgroup.
    pub(super) async fn remove_all(&self) -> Result<(), Error> {
        let images = self.last_pod.as_deref().map(images_of).unwrap_or_default();
        let pod = self.uid.clone();
        let observed = observe(self.deps.runtime.as_ref(), &self.uid, &images)
            .await
            .map_err(|source| Error::Runtime { pod: pod.clone(), source })?;
        let budget = Budget::starting(Instant::now(), self.deps.timing.orphan_grace);
        self.remove_observed(self.last_pod.as_deref(), &observed, budget)
            .await
            .map_err(|source| Error::Runtime { pod, source })?;
        remove_log_dirs(&self.deps.root_dir, &self.uid).await;
        self.tear_down_volumes().await;
        Ok(())
    }
}

/// Removes `<root>/pods/*_<uid>`; failures are logged, not fatal (the pod
/// itself is gone already).
pub(super) async fn remove_log_dirs(root_dir: &std::path::Path, uid: &str) {
    let mut entries = Vec::new();
    if let Ok(mut dir) = tokio::fs::read_dir(root_dir.join("pods")).await {
        while let Ok(Some(entry)) = dir.next_entry().await {
            entries.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    for path in crate::runtime_spec::pod_log_dirs_of(root_dir, uid, &entries) {
        if let Err(err) = tokio::fs::remove_dir_all(&path).await {
            tracing::warn!(path = %path.display(), "removing pod log directory: {err}");
        }
    }
}

pub(super) fn ignore_not_found(result: Result<(), RuntimeError>) -> Result<(), RuntimeError> {
    match result {
        Err(e) if e.not_found => Ok(()),
        other => other,
    }
}

/// Kills and removes everything the runtime has for pod `uid`, then its
/// cgroup, once (orphan sweep: a busy cgroup waits for the next sweep).
pub async fn remove_pod_from_runtime(deps: Arc<WorkerDeps>, uid: String) -> Result<(), Error> {
    let worker = PodWorker::new(deps, uid);
    worker.remove_all().await?;
    if let Err(error) = worker.deps.cgroups.remove(&worker.uid).await {
        tracing::warn!(%error, uid = %worker.uid, "removing an orphan's pod cgroup; the next sweep retries");
    }
    Ok(())
}
