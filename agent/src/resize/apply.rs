//! The pod worker's resize step: learn the running containers' cgroup
//! values, decide ([`super::plan`]), apply the in-place updates through
//! CRI `UpdateContainerResources`, and hand the restarts to the pod actions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::Pod;

use super::plan::{plan, CgroupResources, NodeCapacity, ResizePlan};
use crate::events::{pod_reference, EventSink, EventType};
use crate::observed::{ObservedPod, RunState};
use crate::runtime::Runtime;

/// Reason of the Event for a finished in-place resize (upstream's).
pub const RESIZE_COMPLETED: &str = "ResizeCompleted";

/// What one resize step did, for the pod actions and the status.
#[derive(Debug, Clone, Default)]
pub struct ResizeOutcome {
    /// The decision.
    pub plan: ResizePlan,
    /// In-place updates the runtime refused: container name -> error.
    pub failed: BTreeMap<String, String>,
}

/// Per-pod resize state: the cgroup values of its running containers.
#[derive(Debug, Default)]
pub struct ResizeState {
    actual: HashMap<String, CgroupResources>,
}

impl ResizeState {
    /// The known cgroup values, by container id.
    pub fn actual(&self) -> &HashMap<String, CgroupResources> {
        &self.actual
    }

    /// Runs one resize step for `pod` as `observed`.
    pub async fn sync(
        &mut self,
        runtime: &dyn Runtime,
        events: &dyn EventSink,
        cgroups: &crate::pod_cgroups::PodCgroups,
        node: NodeCapacity,
        pod: &Pod,
        observed: &ObservedPod,
    ) -> ResizeOutcome {
        let running: BTreeSet<&str> =
            observed.containers.iter().filter(|c| c.state == RunState::Running).map(|c| c.id.as_str()).collect();
        self.actual.retain(|id, _| running.contains(id.as_str()));
        for id in running {
            if self.actual.contains_key(id) {
                continue;
            }
            match runtime.container_info(id).await {
                Ok(info) => {
                    if let Some(have) = CgroupResources::from_runtime_info(&info) {
                        self.actual.insert(id.to_string(), have);
                    }
                }
                Err(error) => tracing::debug!(%error, id, "container resources unknown"),
            }
        }
        let plan = plan(pod, observed, &self.actual, node);
        let mut failed = BTreeMap::new();
        if !plan.updates.is_empty() {
            // Growing: the pod cgroup must allow the containers' new limits
            // first. Shrinking: the kernel refuses a pod limit below its
            // usage or its containers' quota, so this write may fail; the
            // one after the containers' updates is the one that counts.
            if let Err(error) = cgroups.update_limits(pod).await {
                tracing::debug!(%error, "pod cgroup not resized before its containers; retried after");
            }
        }
        for update in &plan.updates {
            match runtime.update_container_resources(&update.id, &update.target.to_linux()).await {
                Ok(()) => {
                    self.actual.insert(update.id.clone(), update.target);
                    let message = format!("Pod resize completed: container {} resized in place", update.name);
                    events.record(&pod_reference(pod, None), EventType::Normal, RESIZE_COMPLETED, &message).await;
                }
                Err(error) => {
                    tracing::warn!(%error, container = %update.name, "in-place resize failed");
                    failed.insert(update.name.clone(), error.message);
                }
            }
        }
        if !plan.updates.is_empty() {
            if let Err(error) = cgroups.update_limits(pod).await {
                tracing::warn!(%error, "pod cgroup not resized");
                failed.insert("pod cgroup".to_string(), error.to_string());
            }
        }
        ResizeOutcome { plan, failed }
    }
}
