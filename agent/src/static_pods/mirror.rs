//! Mirror pods: the API's read-only copies of this node's static pods
//! (annotation `kubernetes.io/config.mirror`, owned by the Node), so users
//! and controllers see them. Decided as data ([`decide`]) from the static
//! pods and the mirror pods the API holds, applied through [`MirrorApi`]
//! every period and whenever the static pods change; an unreachable API
//! only delays the mirrors, never the static pods.
//!
//! A mirror pod that is deleted (or being deleted) through the API is
//! deleted for good and created again: deleting a mirror never stops its
//! static pod (the pod manager ignores mirror pods), as upstream.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::status::MirrorUids;
use super::{annotation, is_mirror, CONFIG_HASH, CONFIG_MIRROR};

/// A failed API call of the mirror controller.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct Error {
    /// What was attempted.
    pub call: String,
    /// The client's error.
    pub source: kube::Error,
}

/// One change to the API's mirror pods.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorAction {
    /// Create this mirror pod.
    Create(Box<Pod>),
    /// Delete the mirror pod `namespace/name` with this UID, at once.
    Delete {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// UID (a precondition: never delete a newer pod of that name).
        uid: String,
    },
}

/// The API calls the controller makes.
#[async_trait::async_trait]
pub trait MirrorApi: Send + Sync {
    /// The UID of Node `name`, if it is registered.
    async fn node_uid(&self, name: &str) -> Result<Option<String>, Error>;
    /// The mirror pods bound to node `name`.
    async fn mirror_pods(&self, node: &str) -> Result<Vec<Pod>, Error>;
    /// Applies one action.
    async fn apply(&self, action: &MirrorAction) -> Result<(), Error>;
}

fn key(pod: &Pod) -> (String, String) {
    (pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default())
}

/// The mirror pod of static pod `pod`, owned by the Node `node`/`node_uid`.
pub fn mirror_of(pod: &Pod, node: &str, node_uid: &str) -> Pod {
    let mut annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let hash = annotations.get(CONFIG_HASH).cloned().unwrap_or_default();
    annotations.insert(CONFIG_MIRROR.to_string(), hash);
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.to_string(),
        uid: node_uid.to_string(),
        controller: Some(true),
        ..Default::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            labels: pod.metadata.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: pod.spec.clone(),
        status: None,
    }
}

/// What to change so that every static pod has exactly one current mirror:
/// mirrors of a stale file version, of a removed file, or being deleted are
/// deleted; static pods without a live mirror get one (once the Node is
/// registered, since it owns them).
pub fn decide(statics: &[Arc<Pod>], mirrors: &[Pod], node: &str, node_uid: Option<&str>) -> Vec<MirrorAction> {
    let wanted: BTreeMap<(String, String), &Pod> = statics.iter().map(|p| (key(p), p.as_ref())).collect();
    let mut actions = Vec::new();
    let mut current = BTreeSet::new();
    for mirror in mirrors.iter().filter(|m| is_mirror(m)) {
        let k = key(mirror);
        let live = mirror.metadata.deletion_timestamp.is_none();
        let matches = wanted.get(&k).is_some_and(|s| annotation(s, CONFIG_HASH) == annotation(mirror, CONFIG_MIRROR));
        if live && matches {
            current.insert(k);
        } else if let Some(uid) = mirror.metadata.uid.clone() {
            actions.push(MirrorAction::Delete { namespace: k.0, name: k.1, uid });
        }
    }
    if let Some(node_uid) = node_uid {
        for (k, pod) in wanted {
            if !current.contains(&k) {
                actions.push(MirrorAction::Create(Box::new(mirror_of(pod, node, node_uid))));
            }
        }
    }
    actions
}

/// Static pod UID (the mirror annotation) -> mirror UID, for live mirrors.
pub fn mirror_uids(mirrors: &[Pod]) -> std::collections::HashMap<String, String> {
    mirrors
        .iter()
        .filter(|m| m.metadata.deletion_timestamp.is_none())
        .filter_map(|m| Some((annotation(m, CONFIG_MIRROR)?.to_string(), m.metadata.uid.clone()?)))
        .collect()
}

/// Keeps the mirrors in step with `statics` until `token` is cancelled.
pub async fn run(
    api: Arc<dyn MirrorApi>,
    uids: MirrorUids,
    node: String,
    mut statics: watch::Receiver<Vec<Arc<Pod>>>,
    period: Duration,
    token: CancellationToken,
) {
    let mut failing = false;
    loop {
        let pods = statics.borrow_and_update().clone();
        match sync(api.as_ref(), &uids, &node, &pods).await {
            Ok(()) => failing = false,
            Err(error) if !failing => {
                tracing::warn!(%error, "mirror pods not in step with static pods yet; retrying");
                failing = true;
            }
            Err(error) => tracing::debug!(%error, "mirror pod sync failed again"),
        }
        tokio::select! {
            () = token.cancelled() => return,
            changed = statics.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(period) => {}
        }
    }
}

async fn sync(api: &dyn MirrorApi, uids: &MirrorUids, node: &str, statics: &[Arc<Pod>]) -> Result<(), Error> {
    let mirrors = api.mirror_pods(node).await?;
    uids.set(mirror_uids(&mirrors));
    let node_uid = api.node_uid(node).await?;
    let mut first_error = None;
    for action in decide(statics, &mirrors, node, node_uid.as_deref()) {
        tracing::info!(?action, "mirror pod");
        if let Err(error) = api.apply(&action).await {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// [`MirrorApi`] through the API server.
pub struct KubeMirrorApi {
    client: kube::Client,
}

impl KubeMirrorApi {
    /// Over `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl MirrorApi for KubeMirrorApi {
    async fn node_uid(&self, name: &str) -> Result<Option<String>, Error> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = nodes.get_opt(name).await.map_err(|source| Error { call: format!("get node {name}"), source })?;
        Ok(node.and_then(|n| n.metadata.uid))
    }

    async fn mirror_pods(&self, node: &str) -> Result<Vec<Pod>, Error> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let params = ListParams::default().fields(&format!("spec.nodeName={node}"));
        let list = pods.list(&params).await.map_err(|source| Error { call: "list pods".into(), source })?;
        Ok(list.items.into_iter().filter(is_mirror).collect())
    }

    async fn apply(&self, action: &MirrorAction) -> Result<(), Error> {
        match action {
            MirrorAction::Create(pod) => {
                let (namespace, name) = key(pod);
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
                let call = || format!("create mirror pod {namespace}/{name}");
                pods.create(&PostParams::default(), pod).await.map_err(|source| Error { call: call(), source })?;
            }
            MirrorAction::Delete { namespace, name, uid } => {
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
                    ..Default::default()
                };
                let call = || format!("delete mirror pod {namespace}/{name}");
                match pods.delete(name, &params).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.is_not_found() => {}
                    Err(source) => return Err(Error { call: call(), source }),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
