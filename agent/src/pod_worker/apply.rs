//! Applying a pass's decision: Events for holds and failures, then kills,
//! sandbox stops, removals, a new sandbox and container starts, in that
//! order (`actions::PodActions`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use super::{ignore_not_found, pod_key, Error, PodWorker};
use crate::actions::{self, PodActions, Waiting};
use crate::enums::WaitingReason;
use crate::events::{pod_reference, EventType};
use crate::observed::ObservedPod;
use crate::runtime::RuntimeError;
use crate::runtime_spec;

impl PodWorker {
    /// Emits a BackOff event when a container newly enters a backoff hold.
    pub(super) async fn announce_holds(&self, pod: &Pod, held: &BTreeMap<String, Waiting>) {
        for (name, waiting) in held {
            if self.last_held.get(name) == Some(waiting) {
                continue;
            }
            let (type_, message) = match waiting.reason {
                WaitingReason::PodInitializing => continue,
                WaitingReason::CrashLoopBackOff => {
                    (EventType::Warning, format!("Back-off restarting failed container {name} in pod {}", pod_key(pod)))
                }
                WaitingReason::ImagePullBackOff => (EventType::Normal, waiting.message.clone()),
                _ => (EventType::Warning, waiting.message.clone()),
            };
            let reason = if waiting.reason.is_backoff() { "BackOff" } else { "Failed" };
            self.deps.events.record(&pod_reference(pod, Some(name)), type_, reason, &message).await;
        }
    }

    pub(super) async fn event(&self, pod: &Pod, container: &str, type_: EventType, reason: &str, message: &str) {
        self.deps.events.record(&pod_reference(pod, Some(container)), type_, reason, message).await;
    }

    pub(super) async fn apply(
        &mut self,
        pod: &Pod,
        observed: &ObservedPod,
        actions: &PodActions,
        held: &mut BTreeMap<String, Waiting>,
    ) -> Result<(), Error> {
        let runtime = self.deps.runtime.clone();
        let rt_err = |source: RuntimeError| Error::Runtime { pod: pod_key(pod), source };
        let grace = actions::grace_period(pod);
        if let Some(failure) = &actions.fail_pod {
            let reason = failure.reason.as_str();
            self.deps.events.record(&pod_reference(pod, None), EventType::Warning, reason, &failure.message).await;
        }
        for id in &actions.kill_containers {
            if let Some(c) = observed.containers.iter().find(|c| &c.id == id) {
                let message =
                    actions.kill_messages.get(id).cloned().unwrap_or_else(|| format!("Stopping container {}", c.name));
                self.event(pod, &c.name, EventType::Normal, "Killing", &message).await;
            }
            ignore_not_found(runtime.stop_container(id, grace).await).map_err(rt_err)?;
        }
        for id in &actions.stop_sandboxes {
            ignore_not_found(runtime.stop_pod_sandbox(id).await).map_err(rt_err)?;
        }
        for id in &actions.remove_containers {
            crate::gc::apply::remove_container_and_logs(runtime.as_ref(), id).await.map_err(rt_err)?;
        }
        for id in &actions.remove_sandboxes {
            ignore_not_found(runtime.remove_pod_sandbox(id).await).map_err(rt_err)?;
        }
        let (sandbox_id, sandbox_config) = match actions.create_sandbox {
            Some(attempt) => {
                let attempt = attempt.max(self.next_sandbox_attempt);
                self.next_sandbox_attempt = attempt + 1;
                let mut config = runtime_spec::sandbox_config(pod, attempt, &self.deps.root_dir, &self.deps.dns);
                if let Err(source) = self.deps.cgroups.prepare(pod, &mut config).await {
                    let message = format!("Failed to create pod sandbox: pod cgroup: {source}");
                    self.deps
                        .events
                        .record(&pod_reference(pod, None), EventType::Warning, "FailedCreatePodSandBox", &message)
                        .await;
                    return Err(Error::Cgroup { pod: pod_key(pod), source });
                }
                if let Err(error) = std::fs::create_dir_all(&config.log_directory) {
                    tracing::warn!(%error, dir = %config.log_directory, "cannot create pod log directory");
                }
                match runtime.run_pod_sandbox(&config).await {
                    Ok(id) => {
                        tracing::info!(pod = %pod_key(pod), sandbox = %id, attempt, "sandbox created");
                        (id, config)
                    }
                    Err(source) => {
                        let message = format!("Failed to create pod sandbox: {source}");
                        self.deps
                            .events
                            .record(&pod_reference(pod, None), EventType::Warning, "FailedCreatePodSandBox", &message)
                            .await;
                        return Err(rt_err(source));
                    }
                }
            }
            None => match observed.ready_sandbox() {
                Some(s) => {
                    let mut config = runtime_spec::sandbox_config(pod, s.attempt, &self.deps.root_dir, &self.deps.dns);
                    self.deps.cgroups.set_parent(pod, &mut config);
                    (s.id.clone(), config)
                }
                None => return Ok(()),
            },
        };
        if actions.start_containers.is_empty() {
            return Ok(());
        }
        let sources = self.env_sources(pod, &sandbox_id).await?;
        for start in &actions.start_containers {
            if let Some(waiting) = self.start_container(pod, start, &sandbox_id, &sandbox_config, &sources).await {
                held.insert(start.name.clone(), waiting);
            }
        }
        Ok(())
    }
}
