//! The core controllers, like kube-controller-manager: deployment,
//! replicaset, endpointslice, garbage collector (`gc`), node lifecycle,
//! event TTL, namespace (empties namespaces being deleted).
//!
//! Owns: running every controller concurrently, each restarted alone by a
//! supervisor when it fails (`run_all`), and the shared
//! machinery they use (`informer`, `queue`, `events`, `failures`). Each controller keeps
//! its decisions in pure functions and a thin layer that writes them.

pub mod deployment;
pub mod endpointslice;
pub mod events;
pub mod eventttl;
pub mod failures;
pub mod gc;
pub mod index;
pub mod informer;
pub mod namespace;
pub mod nodelifecycle;
pub mod queue;
pub mod replicaset;
pub mod selector;

use tokio_util::sync::CancellationToken;

use crate::supervisor::{supervise, Backoff};

/// Runs every controller concurrently until `token` is cancelled, each
/// under its own supervisor (a failed controller restarts alone).
pub async fn run_all(client: kube::Client, token: CancellationToken) -> anyhow::Result<()> {
    let run = |name, start: fn(kube::Client, CancellationToken) -> Component| {
        let client = client.clone();
        supervise(name, token.clone(), Backoff::default(), move |t| start(client.clone(), t))
    };
    tokio::join!(
        run("deployment-controller", |c, t| Box::pin(deployment::run(c, t))),
        run("replicaset-controller", |c, t| Box::pin(replicaset::run(c, t))),
        run("endpointslice-controller", |c, t| Box::pin(endpointslice::run(c, t))),
        run("garbage-collector", |c, t| Box::pin(gc::run(c, t))),
        run("node-lifecycle-controller", |c, t| Box::pin(nodelifecycle::run(c, t))),
        run("event-ttl-controller", |c, t| Box::pin(eventttl::run(c, t))),
        run("namespace-controller", |c, t| Box::pin(namespace::run(c, t))),
    );
    Ok(())
}

/// One run of a controller.
type Component = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// True for a 404 from the apiserver.
pub(crate) fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// True for a 409 (already exists, or a conflicting update).
pub(crate) fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}
