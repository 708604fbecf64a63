//! Applying scheduling decisions to the API: the binding, the `PodScheduled`
//! condition, preemption (nomination, victims' deletion) and the events.
//!
//! Owns: every write the scheduler makes. Must not: decide anything.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::preemption::Plan;
use crate::controllers::events::{self, Recorder};

/// Component name on events and the scheduler name pods ask for.
pub const COMPONENT: &str = super::cache::SCHEDULER_NAME;

/// A failed scheduler write.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// POST pods/{name}/binding failed.
    #[error("binding pod {pod} to node {node}")]
    Bind {
        /// namespace/name of the pod.
        pod: String,
        /// Target node.
        node: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Deleting a preemption victim failed.
    #[error("deleting preemption victim {pod}")]
    Delete {
        /// namespace/name of the victim.
        pod: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Patching the pod's status failed.
    #[error("updating PodScheduled condition of pod {pod}")]
    Status {
        /// namespace/name of the pod.
        pod: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
}

/// Writes scheduling outcomes.
pub struct Binder {
    client: Client,
    recorder: Recorder,
}

fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

impl Binder {
    /// A binder using `client`.
    pub fn new(client: Client) -> Self {
        Binder { recorder: Recorder::new(client.clone(), COMPONENT), client }
    }

    fn api(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default())
    }

    /// Binds `pod` to `node` and records the `Scheduled` event.
    pub async fn bind(&self, pod: &Pod, node: &str) -> Result<(), BindError> {
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(pod.name_any()),
                namespace: pod.namespace(),
                uid: pod.uid(),
                ..ObjectMeta::default()
            },
            target: ObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("Node".to_string()),
                name: Some(node.to_string()),
                ..ObjectReference::default()
            },
        };
        self.api(pod)
            .create_subresource::<_, serde_json::Value>("binding", &pod.name_any(), &PostParams::default(), &binding)
            .await
            .map_err(|source| BindError::Bind { pod: pod_key(pod), node: node.to_string(), source })?;
        if scheduled_condition(pod).is_some_and(|c| c.status != "True") {
            let condition = PodCondition {
                type_: "PodScheduled".to_string(),
                status: "True".to_string(),
                last_transition_time: Some(Time(jiff::Timestamp::now())),
                ..PodCondition::default()
            };
            self.set_condition(pod, condition).await?;
        }
        let message = format!("Successfully assigned {} to {node}", pod_key(pod));
        self.recorder.publish(pod, events::NORMAL, "Scheduled", &message).await;
        Ok(())
    }

    /// Marks `pod` unschedulable with `message`; posts a `FailedScheduling`
    /// event when `announce` is set.
    pub async fn unschedulable(&self, pod: &Pod, message: &str, announce: bool) -> Result<(), BindError> {
        let current = scheduled_condition(pod);
        let unchanged = current.is_some_and(|c| {
            c.status == "False" && c.reason.as_deref() == Some("Unschedulable") && c.message.as_deref() == Some(message)
        });
        if !unchanged {
            let condition = PodCondition {
                type_: "PodScheduled".to_string(),
                status: "False".to_string(),
                reason: Some("Unschedulable".to_string()),
                message: Some(message.to_string()),
                last_transition_time: Some(Time(jiff::Timestamp::now())),
                ..PodCondition::default()
            };
            self.set_condition(pod, condition).await?;
        }
        if announce {
            self.recorder.publish(pod, events::WARNING, "FailedScheduling", message).await;
        }
        Ok(())
    }

    /// Clears `pod`'s `status.nominatedNodeName` (a preemption that no longer
    /// applies), so the node's room is no longer held for it.
    pub async fn clear_nomination(&self, pod: &Pod) -> Result<(), BindError> {
        let patch = json!({"status": {"nominatedNodeName": null}});
        self.api(pod)
            .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| BindError::Status { pod: pod_key(pod), source })?;
        Ok(())
    }

    /// Applies a preemption: nominates `pod` to the plan's node, then marks
    /// each victim (`DisruptionTarget` condition, `Preempted` event) and
    /// deletes it with its own grace period, as upstream.
    pub async fn preempt(&self, pod: &Pod, plan: &Plan) -> Result<(), BindError> {
        let patch = json!({"status": {"nominatedNodeName": plan.node}});
        self.api(pod)
            .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| BindError::Status { pod: pod_key(pod), source })?;
        for victim in &plan.victims {
            let condition = PodCondition {
                type_: "DisruptionTarget".to_string(),
                status: "True".to_string(),
                reason: Some("PreemptionByScheduler".to_string()),
                message: Some(format!("{COMPONENT}: preempting to accommodate a higher priority pod")),
                last_transition_time: Some(Time(jiff::Timestamp::now())),
                ..PodCondition::default()
            };
            if let Err(error) = self.set_condition(victim, condition).await {
                tracing::debug!(%error, "marking a preemption victim");
            }
            let message = format!("Preempted by pod {} on node {}", pod.uid().unwrap_or_default(), plan.node);
            self.recorder.publish(victim.as_ref(), events::NORMAL, "Preempted", &message).await;
            match self.api(victim).delete(&victim.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(error) if crate::controllers::is_not_found(&error) => {}
                Err(source) => return Err(BindError::Delete { pod: pod_key(victim), source }),
            }
        }
        Ok(())
    }

    async fn set_condition(&self, pod: &Pod, condition: PodCondition) -> Result<(), BindError> {
        let conditions = with_condition(pod, condition);
        let patch = json!({"status": {"conditions": conditions}});
        self.api(pod)
            .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| BindError::Status { pod: pod_key(pod), source })?;
        Ok(())
    }
}

fn scheduled_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
}

/// The pod's conditions with `condition` replacing any of the same type
/// (a merge patch replaces the whole list, so send all of them).
fn with_condition(pod: &Pod, condition: PodCondition) -> Vec<PodCondition> {
    let mut conditions: Vec<PodCondition> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != condition.type_)
        .collect();
    conditions.push(condition);
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_condition_replaces_same_type_and_keeps_others() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"},
                {"type": "Ready", "status": "False"}
            ]}
        }))
        .expect("pod");
        let got = with_condition(
            &pod,
            PodCondition { type_: "PodScheduled".to_string(), status: "True".to_string(), ..PodCondition::default() },
        );
        let summary: Vec<(&str, &str)> = got.iter().map(|c| (c.type_.as_str(), c.status.as_str())).collect();
        assert_eq!(summary, [("Ready", "False"), ("PodScheduled", "True")]);
    }
}
