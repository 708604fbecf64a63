//! Taint eviction controller (upstream's `taint-eviction-controller`,
//! formerly the NoExecute taint manager): deletes the pods of a node with
//! `NoExecute` taints they do not tolerate, at once or when their
//! `tolerationSeconds` run out.
//!
//! Owns: the informers (Nodes, and Pods indexed by `spec.nodeName`), one
//! queue keyed by node, and applying `plan::verdict` to each live pod of
//! the node: a `DisruptionTarget` condition on the pod (reason
//! `DeletionByTaintManager`), a `TaintManagerEviction` Event, the delete;
//! the node is requeued at the earliest deadline still ahead. Must not:
//! decide anything itself (that is `plan`), or taint nodes (the node
//! lifecycle controller does, and so can anyone with `kubectl taint`).

pub mod plan;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::events::{Recorder, NORMAL};
use super::failures;
use super::index::Index;
use super::informer;
use super::queue::{ObjectKey, Retry, WorkQueue};
use super::shared::Informers;
use super::{is_not_found, selector};
use plan::Verdict;

/// A failed eviction write.
#[derive(Debug, thiserror::Error)]
#[error("{action} pod {namespace}/{pod} (taint eviction on node {node})")]
pub struct Error {
    action: &'static str,
    node: String,
    namespace: String,
    pod: String,
    #[source]
    source: kube::Error,
}

/// The node a pod is bound to, as the queue key of that node.
fn node_of(pod: &Pod) -> Vec<ObjectKey> {
    match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        Some(node) if !node.is_empty() => vec![node_key(node)],
        _ => Vec::new(),
    }
}

fn node_key(node: &str) -> ObjectKey {
    ObjectKey { namespace: String::new(), name: node.to_string() }
}

struct Ctx {
    client: Client,
    nodes: Store<Node>,
    pods: Store<Pod>,
    pods_by_node: Index<Pod, ObjectKey>,
    recorder: Recorder,
}

/// Runs the controller until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, token: CancellationToken) {
    let queue: WorkQueue<ObjectKey> = WorkQueue::new(token.clone());
    informers.queue_metrics().track("taint_eviction", queue.stats_probe());
    let nodes: Store<Node> = {
        let queue = queue.clone();
        informers.of::<Node>().subscribe(&token, move |store, change| match change {
            Some((node, _)) => queue.add(node_key(&node.name_any())),
            None => store.state().iter().for_each(|node| queue.add(node_key(&node.name_any()))),
        })
    };
    let pods_by_node: Index<Pod, ObjectKey> = Index::new(node_of);
    let pods: Store<Pod> = informers.of::<Pod>().owned_by(&token, &pods_by_node, &queue);
    if !informer::wait_ready(&nodes, &token).await || !informer::wait_ready(&pods, &token).await {
        return;
    }
    let recorder = Recorder::new(client.clone(), "taint-eviction-controller");
    let ctx = Ctx { client, nodes, pods, pods_by_node, recorder };
    let mut retry = Retry::new("taint_eviction");
    while let Some(key) = queue.next().await {
        let result = failures::guard(ctx.reconcile(&key.name)).await;
        retry.finish(&queue, key, result);
    }
}

impl Ctx {
    async fn reconcile(&self, node_name: &str) -> Result<Option<Duration>, Error> {
        let Some(node) = self.nodes.get(&ObjectRef::new(node_name)) else { return Ok(None) };
        let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        if !taints.iter().any(|t| t.effect == plan::NO_EXECUTE) {
            return Ok(None);
        }
        let now = jiff::Timestamp::now();
        let mut next: Option<jiff::Timestamp> = None;
        for pod in self.pods_by_node.resolve(&self.pods, &node_key(node_name)) {
            if !selector::is_active(&pod) {
                continue;
            }
            let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
            match plan::verdict(&taints, &tolerations, now) {
                Verdict::Keep => {}
                Verdict::EvictAt(at) => next = Some(next.map_or(at, |n| n.min(at))),
                Verdict::EvictNow => self.evict(node_name, &pod).await?,
            }
        }
        // Wake at the earliest deadline (a second late at most, never early).
        Ok(next.map(|at| {
            let wait = at.duration_since(now).unsigned_abs();
            wait.saturating_add(Duration::from_millis(50))
        }))
    }

    /// Marks `pod` as a disruption target, says why, and deletes it (this
    /// very pod: the delete is preconditioned on its uid).
    async fn evict(&self, node: &str, pod: &Arc<Pod>) -> Result<(), Error> {
        let (namespace, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        let fail = |action, source| Error {
            action,
            node: node.to_string(),
            namespace: namespace.clone(),
            pod: name.clone(),
            source,
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let condition = json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": jiff::Timestamp::now().to_string(),
        }]}});
        // A strategic merge keeps the other conditions (merge key: type).
        match api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&condition)).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(source) => return Err(fail("marking", source)),
        }
        let message = format!("Marking for deletion Pod {namespace}/{name}");
        self.recorder.publish(pod.as_ref(), NORMAL, "TaintManagerEviction", &message).await;
        let only_this = DeleteParams {
            preconditions: Some(Preconditions { uid: pod.uid(), resource_version: None }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &only_this).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) if super::is_conflict(&e) => Ok(()),
            Err(source) => Err(fail("deleting", source)),
        }
    }
}
