//! Tearing a pod down: stop its containers in parallel with the grace
//! period, stop the sandboxes, remove all of it. Used for deletion, for pods
//! gone from the API and for the orphan sweep.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::{images_of, pod_key, Error, PodWorker, WorkerDeps};
use crate::actions::init::termination_waves;
use crate::events::EventType;
use crate::observed::{observe, ObservedPod};
use crate::runtime::RuntimeError;

impl PodWorker {
    /// Stops every container (in parallel, with `grace`), then the sandboxes,
    /// then removes all of it.
    pub(super) async fn terminate(&self, pod: &Pod, observed: &ObservedPod, grace: Duration) -> Result<(), Error> {
        for c in observed.containers.iter().filter(|c| observed.live_container_ids().contains(&c.id)) {
            self.event(pod, &c.name, EventType::Normal, "Killing", &format!("Stopping container {}", c.name)).await;
        }
        self.remove_observed(Some(pod), observed, grace)
            .await
            .map_err(|source| Error::Runtime { pod: pod_key(pod), source })
    }

    /// Stops the live containers in waves (app containers in parallel, then
    /// sidecars in reverse order; see `actions::init::termination_waves`),
    /// then removes everything.
    pub(super) async fn remove_observed(
        &self,
        pod: Option<&Pod>,
        observed: &ObservedPod,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        let runtime = self.deps.runtime.as_ref();
        let waves = match pod {
            Some(pod) => termination_waves(pod, observed),
            None => vec![observed.live_container_ids()],
        };
        for wave in waves {
            let stops = wave.iter().map(|id| runtime.stop_container(id, grace));
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
    /// volumes.
    pub(super) async fn remove_all(&self) -> Result<(), Error> {
        let images = self.last_pod.as_deref().map(images_of).unwrap_or_default();
        let pod = self.uid.clone();
        let observed = observe(self.deps.runtime.as_ref(), &self.uid, &images)
            .await
            .map_err(|source| Error::Runtime { pod: pod.clone(), source })?;
        self.remove_observed(self.last_pod.as_deref(), &observed, self.deps.timing.orphan_grace)
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

/// Kills and removes everything the runtime has for pod `uid` (orphan sweep).
pub async fn remove_pod_from_runtime(deps: Arc<WorkerDeps>, uid: String) -> Result<(), Error> {
    PodWorker::new(deps, uid).remove_all().await
}
