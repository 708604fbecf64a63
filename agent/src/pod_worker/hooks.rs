//! Lifecycle hooks and probe kills as the pod worker applies them:
//! postStart right after StartContainer (a failure kills the container,
//! `FailedPostStartHook`), preStop before every graceful stop (its time
//! comes out of the grace), and killing containers whose liveness or
//! startup probe failed.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};

use super::{pod_key, teardown::ignore_not_found, Error, PodWorker};
use crate::events::EventType;
use crate::handlers::{self, Outcome, Target};
use crate::observed::{ObservedPod, RunState};
use crate::prober;
use crate::runtime::RuntimeError;
use crate::termination::grace_after_pre_stop;

/// Longest a postStart hook may hold the pod worker.
const POST_START_LIMIT: Duration = Duration::from_secs(120);

fn spec_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers.iter().chain(spec.init_containers.iter().flatten()).find(|c| c.name == name)
}

fn pod_ip(observed: &ObservedPod) -> Option<&str> {
    observed.ready_sandbox().and_then(|s| s.ips.first()).map(String::as_str)
}

impl PodWorker {
    /// Runs the container's preStop hook (if any) within `grace`, then
    /// stops it with the grace left.
    pub(super) async fn stop_gracefully(
        &self,
        pod: &Pod,
        name: &str,
        id: &str,
        running: bool,
        pod_ip: Option<&str>,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        let hook = spec_container(pod, name).and_then(|c| Some((c, c.lifecycle.as_ref()?.pre_stop.as_ref()?)));
        let mut stop_grace = grace;
        if let (true, Some((container, handler))) = (running, hook) {
            let began = Instant::now();
            let target = Target { runtime: self.deps.runtime.clone(), container_id: id.to_string() };
            let outcome = match handlers::from_lifecycle(handler, container, pod_ip) {
                Ok(action) => {
                    tokio::time::timeout(grace, handlers::run(&action, &target, grace)).await.unwrap_or_else(|_| {
                        Outcome::Failure(format!("PreStopHook did not finish within {}s", grace.as_secs()))
                    })
                }
                Err(error) => Outcome::Failure(error.to_string()),
            };
            if let Outcome::Failure(message) = outcome {
                let message = format!("PreStopHook failed: {message}");
                self.event(pod, name, EventType::Warning, "FailedPreStopHook", &message).await;
            }
            stop_grace = grace_after_pre_stop(grace, began.elapsed());
        }
        ignore_not_found(self.deps.runtime.stop_container(id, stop_grace).await)
    }

    /// Runs the postStart hook of a just started container. On failure the
    /// container is killed (restarted per policy) and the Event recorded.
    pub(super) async fn post_start(&self, pod: &Pod, container: &Container, id: &str, pod_ip: Option<&str>) {
        let Some(handler) = container.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else { return };
        let target = Target { runtime: self.deps.runtime.clone(), container_id: id.to_string() };
        let outcome = match handlers::from_lifecycle(handler, container, pod_ip) {
            Ok(action) => handlers::run(&action, &target, POST_START_LIMIT).await,
            Err(error) => Outcome::Failure(error.to_string()),
        };
        let Outcome::Failure(message) = outcome else { return };
        let name = container.name.as_str();
        let message = format!("PostStartHook failed: {message}");
        self.event(pod, name, EventType::Warning, "FailedPostStartHook", &message).await;
        let grace = crate::actions::grace_period(pod);
        self.event(pod, name, EventType::Normal, "Killing", &format!("FailedPostStartHook: stopping container {name}"))
            .await;
        if let Err(error) = self.stop_gracefully(pod, name, id, true, pod_ip, grace).await {
            tracing::warn!(pod = %pod_key(pod), container = name, %error, "killing after a failed postStart hook");
        }
    }

    /// Starts/stops probe workers for what runs now and kills containers
    /// whose liveness or startup probe failed. Returns true when it killed.
    pub(super) async fn act_on_probes(&mut self, pod: &Pod, observed: &ObservedPod) -> Result<bool, Error> {
        let Some(prober) = self.prober.as_mut() else { return Ok(false) };
        prober.sync(pod, observed);
        let kills = prober::kills(pod, observed, prober.results());
        for kill in &kills {
            self.event(pod, &kill.name, EventType::Normal, "Killing", &kill.message()).await;
            let grace = spec_container(pod, &kill.name)
                .and_then(|c| kill.kind.of(c))
                .and_then(|p| p.termination_grace_period_seconds)
                .map_or_else(
                    || crate::actions::grace_period(pod),
                    |s| Duration::from_secs(u64::try_from(s).unwrap_or(0)),
                );
            let running = observed.latest(&kill.name).is_some_and(|c| c.state == RunState::Running);
            self.stop_gracefully(pod, &kill.name, &kill.id, running, pod_ip(observed), grace)
                .await
                .map_err(|source| Error::Runtime { pod: pod_key(pod), source })?;
        }
        Ok(!kills.is_empty())
    }
}
