//! The core controllers, like kube-controller-manager: deployment,
//! replicaset, endpointslice, garbage collector (`gc`), node lifecycle,
//! event TTL, namespace (empties namespaces being deleted).
//!
//! Owns: running every controller concurrently (`run_all`) and the shared
//! machinery they use (`informer`, `queue`, `events`). Each controller keeps
//! its decisions in pure functions and a thin layer that writes them.

pub mod deployment;
pub mod endpointslice;
pub mod events;
pub mod eventttl;
pub mod gc;
pub mod index;
pub mod informer;
pub mod namespace;
pub mod nodelifecycle;
pub mod queue;
pub mod replicaset;
pub mod selector;

use tokio_util::sync::CancellationToken;

/// Runs every controller concurrently until `token` is cancelled.
pub async fn run_all(client: kube::Client, token: CancellationToken) -> anyhow::Result<()> {
    tokio::join!(
        deployment::run(client.clone(), token.clone()),
        replicaset::run(client.clone(), token.clone()),
        endpointslice::run(client.clone(), token.clone()),
        gc::run(client.clone(), token.clone()),
        nodelifecycle::run(client.clone(), token.clone()),
        eventttl::run(client.clone(), token.clone()),
        namespace::run(client.clone(), token.clone()),
    );
    Ok(())
}

/// True for a 404 from the apiserver.
pub(crate) fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// True for a 409 (already exists, or a conflicting update).
pub(crate) fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}
