//! Namespace controller: empties a namespace that is being deleted, then
//! releases it.
//!
//! Owns: for each Namespace with a deletionTimestamp and the `kubernetes`
//! finalizer, deleting every object of every namespaced resource the
//! apiserver serves (found by discovery, so new kinds are covered),
//! counting what is left, and, once nothing is, removing the finalizer
//! through `namespaces/{name}/finalize`; the apiserver then removes the
//! namespace. Pods go through graceful deletion (their kubelet finishes
//! them; pods never scheduled are removed at once). While something is
//! left, upstream's conditions (`NamespaceContentRemaining`,
//! `NamespaceFinalizersRemaining`, ...) say what. Decisions are
//! `plan::plan` and `plan::conditions`; this layer only reads state and applies them, so after a
//! crash at any point the next pass simply continues. Must not: remove the
//! finalizer while anything is left.

pub mod plan;

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{verbs, ApiCapabilities, Discovery, Scope};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::informer;
use super::is_not_found;
use super::queue::{self, ObjectKey, Retry, WorkQueue};
use super::shared::Informers;
use plan::{Action, Observed, Remaining};

/// Periodic full resync (level-triggered safety net).
const RESYNC: Duration = Duration::from_secs(30);

/// A failed namespace-controller call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// API discovery failed.
    #[error("discovering namespaced resources")]
    Discovery(#[source] kube::Error),
    /// Deleting or listing a namespace's objects failed.
    #[error("{action} {resource} in namespace {namespace}")]
    Content {
        /// What was attempted.
        action: &'static str,
        /// `plural.group`.
        resource: String,
        /// The namespace.
        namespace: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Reading or finalizing the namespace failed.
    #[error("{action} namespace {namespace}")]
    Namespace {
        /// What was attempted.
        action: &'static str,
        /// The namespace.
        namespace: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
}

/// Runs the namespace controller until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, token: CancellationToken) {
    let queue: WorkQueue<ObjectKey> = WorkQueue::new(token.clone());
    informers.queue_metrics().track("namespace", queue.stats_probe());
    let namespaces: Store<Namespace> = {
        let queue = queue.clone();
        informers.of::<Namespace>().on_change(&token, move |change| {
            if let Some((ns, informer::Change::Applied)) = change {
                if ns.metadata.deletion_timestamp.is_some() {
                    queue.add(ObjectKey::of(&ns.metadata));
                }
            }
        })
    };
    if !informer::wait_ready(&namespaces, &token).await {
        return;
    }
    queue::spawn_resync(queue.clone(), namespaces.clone(), RESYNC, token.clone());
    let mut retry = Retry::new("namespace");
    while let Some(key) = queue.next().await {
        let cached = namespaces.get(&ObjectRef::new(&key.name));
        let result = match cached {
            Some(ns) if plan::plan(&ns, None) != Action::Skip => reconcile(&client, &key.name).await,
            _ => Ok(None),
        };
        retry.finish(&queue, key, result);
    }
}

/// One pass over namespace `name`: returns when to look again, if needed.
async fn reconcile(client: &Client, name: &str) -> Result<Option<Duration>, Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns_error = |action| move |source| Error::Namespace { action, namespace: name.to_string(), source };
    // Live read: the count below must be taken after the namespace was seen
    // terminating, and the finalize needs its current resourceVersion.
    let Some(ns) = api.get_opt(name).await.map_err(ns_error("reading"))? else {
        return Ok(None);
    };
    if plan::plan(&ns, None) != Action::DeleteContent {
        return Ok(None);
    }
    let mut observed = Observed::default();
    let resources = match namespaced_resources(client).await {
        Ok(resources) => resources,
        Err(error) => {
            observed.discovery_error = Some(error_text(&error));
            write_conditions(&api, &ns, &observed).await;
            return Err(error);
        }
    };
    let mut first_error = None;
    for (resource, caps) in &resources {
        if let Err(error) = delete_all(client, name, resource, caps).await {
            tracing::warn!(%error, "namespace content deletion failed; counting and retrying");
            observed.delete_errors.push((resource_name(resource), error_text(&error)));
            first_error.get_or_insert(error);
        }
    }
    for (resource, _) in &resources {
        observed.left.push(count(client, name, resource).await?);
    }
    match plan::plan(&ns, Some(&observed.left)) {
        Action::Finalize(finalizers) => {
            if let Some(error) = first_error {
                write_conditions(&api, &ns, &observed).await;
                return Err(error);
            }
            let mut next = ns.clone();
            next.spec.get_or_insert_with(Default::default).finalizers = Some(finalizers);
            match api.replace_subresource("finalize", name, &PostParams::default(), &next).await {
                Ok(after) => {
                    tracing::info!(namespace = name, "namespace emptied; finalizer removed");
                    // Other finalizers keep it: say that its content is gone.
                    if after.spec.as_ref().and_then(|s| s.finalizers.as_ref()).is_some_and(|f| !f.is_empty()) {
                        write_conditions(&api, &after, &observed).await;
                    }
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(ns_error("finalizing")(e)),
            }
            Ok(None)
        }
        Action::Wait { after, remaining } => {
            tracing::debug!(namespace = name, ?remaining, "waiting for namespace content to go");
            write_conditions(&api, &ns, &observed).await;
            match first_error {
                Some(error) => Err(error),
                None => Ok(Some(after)),
            }
        }
        Action::Skip | Action::DeleteContent => Ok(None),
    }
}

/// An error with its causes, for a condition message.
fn error_text(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Publishes what this pass saw as the namespace's deletion conditions
/// (only when they changed). Best effort: the next pass writes them again.
async fn write_conditions(api: &Api<Namespace>, ns: &Namespace, observed: &Observed) {
    let current = ns.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let next = plan::conditions(observed, &current, jiff::Timestamp::now());
    if next == current {
        return;
    }
    let patch = Patch::Merge(json!({"status": {"conditions": next}}));
    if let Err(error) = api.patch_status(&ns.name_any(), &PatchParams::default(), &patch).await {
        tracing::debug!(%error, namespace = ns.name_any(), "writing namespace conditions");
    }
}

/// Every namespaced resource that can be listed and deleted, by aggregated
/// discovery (two requests; the apiserver serves both forms alike).
async fn namespaced_resources(client: &Client) -> Result<Vec<(ApiResource, ApiCapabilities)>, Error> {
    let discovery = Discovery::new(client.clone()).run_aggregated().await.map_err(Error::Discovery)?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            let usable = caps.supports_operation(verbs::LIST) && caps.supports_operation(verbs::DELETE);
            if caps.scope == Scope::Namespaced && usable {
                out.push((resource, caps));
            }
        }
    }
    Ok(out)
}

fn resource_name(resource: &ApiResource) -> String {
    if resource.group.is_empty() {
        resource.plural.clone()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    }
}

fn content_error(action: &'static str, namespace: &str, resource: &ApiResource) -> impl FnOnce(kube::Error) -> Error {
    let (namespace, resource) = (namespace.to_string(), resource_name(resource));
    move |source| Error::Content { action, resource, namespace, source }
}

/// Deletes every object of `resource` in `namespace` (deletecollection when
/// served; each object is removed in its own transaction either way).
async fn delete_all(
    client: &Client,
    namespace: &str,
    resource: &ApiResource,
    caps: &ApiCapabilities,
) -> Result<(), Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let params = DeleteParams::default();
    if caps.supports_operation(verbs::DELETE_COLLECTION) {
        return match api.delete_collection(&params, &ListParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(content_error("deleting", namespace, resource)(e)),
        };
    }
    let list = api.list(&ListParams::default()).await.map_err(content_error("listing", namespace, resource))?;
    for obj in list.items {
        match api.delete(&obj.name_any(), &params).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(content_error("deleting", namespace, resource)(e)),
        }
    }
    Ok(())
}

/// How many objects of `resource` are left in `namespace`.
async fn count(client: &Client, namespace: &str, resource: &ApiResource) -> Result<Remaining, Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let list = api.list(&ListParams::default()).await.map_err(content_error("listing", namespace, resource))?;
    let mut left = Remaining {
        group: resource.group.clone(),
        plural: resource.plural.clone(),
        count: list.items.len(),
        ..Default::default()
    };
    for finalizer in list.items.iter().flat_map(|o| o.finalizers()) {
        let n = left.finalizers.entry(finalizer.clone()).or_insert(0);
        *n = n.saturating_add(1);
    }
    Ok(left)
}
