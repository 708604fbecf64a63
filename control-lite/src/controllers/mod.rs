//! The core controllers, like kube-controller-manager: deployment,
//! replicaset, daemonset, statefulset, job, cronjob, endpointslice, garbage collector (`gc`), node lifecycle,
//! event TTL, namespace (empties namespaces being deleted), disruption
//! (PodDisruptionBudget status), taint eviction, certificate approving and
//! signing (`csr`); and, started by `run.rs`
//! because it needs this apiserver's address, `kubernetes_endpoints`.
//!
//! Owns: running every controller concurrently, each restarted alone by a
//! supervisor when it fails (`run_all`), and the shared
//! machinery they use (`shared` informers, `index`, `queue`, `events`,
//! `failures`). Every controller subscribes to the one shared informer of
//! each kind it needs ([`shared::Informers`]), so each object is cached
//! once per process. Each controller keeps its decisions in pure functions
//! and a thin layer that writes them.

pub mod cronjob;
pub mod csr;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpointslice;
pub mod events;
pub mod eventttl;
pub mod expectations;
pub mod failures;
pub mod gc;
pub mod history;
pub mod index;
pub mod informer;
pub mod job;
pub mod kubernetes_endpoints;
pub mod loadbalancer;
pub mod namespace;
pub mod nodelifecycle;
pub mod prune;
pub mod queue;
pub mod queue_metrics;
pub mod replicaset;
pub mod selector;
pub mod serviceaccounts;
pub mod shared;
pub mod statefulset;
pub mod taint_eviction;

use tokio_util::sync::CancellationToken;

use crate::supervisor::{supervise, Backoff};
use shared::Informers;

/// Runs every controller concurrently until `token` is cancelled, each
/// under its own supervisor (a failed controller restarts alone), all
/// subscribed to `informers`.
pub async fn run_all(
    client: kube::Client,
    informers: Informers,
    ca: std::sync::Arc<crate::auth::ca::Ca>,
    signing_duration: std::time::Duration,
    approve_serving: bool,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let root_ca_pem: std::sync::Arc<str> = ca.cert_pem().into();
    let csr_client = client.clone();
    let run = |name, start: fn(kube::Client, Informers, CancellationToken) -> Component| {
        let (client, informers) = (client.clone(), informers.clone());
        supervise(name, token.clone(), Backoff::default(), move |t| start(client.clone(), informers.clone(), t))
    };
    tokio::join!(
        run("deployment-controller", |c, i, t| Box::pin(deployment::run(c, i, t))),
        run("replicaset-controller", |c, i, t| Box::pin(replicaset::run(c, i, t))),
        run("daemonset-controller", |c, i, t| Box::pin(daemonset::run(c, i, t))),
        run("statefulset-controller", |c, i, t| Box::pin(statefulset::run(c, i, t))),
        run("job-controller", |c, i, t| Box::pin(job::run(c, i, t))),
        run("cronjob-controller", |c, i, t| Box::pin(cronjob::run(c, i, t))),
        run("disruption-controller", |c, i, t| Box::pin(disruption::run(c, i, t))),
        run("endpointslice-controller", |c, i, t| Box::pin(endpointslice::run(c, i, t))),
        run("garbage-collector", |c, i, t| Box::pin(gc::run(c, i, t))),
        run("node-lifecycle-controller", |c, i, t| Box::pin(nodelifecycle::run(c, i, t))),
        run("taint-eviction-controller", |c, i, t| Box::pin(taint_eviction::run(c, i, t))),
        run("event-ttl-controller", |c, _, t| Box::pin(eventttl::run(c, t))),
        run("csr-cleaner", |c, _, t| Box::pin(csr::clean::run(c, t))),
        run("namespace-controller", |c, i, t| Box::pin(namespace::run(c, i, t))),
        supervise("certificate-controller", token.clone(), Backoff::default(), move |t| {
            Box::pin(csr::run(csr_client.clone(), ca.clone(), signing_duration, approve_serving, t)) as Component
        }),
        supervise("serviceaccount-controller", token.clone(), Backoff::default(), move |t| {
            Box::pin(serviceaccounts::run(client.clone(), informers.clone(), root_ca_pem.clone(), t)) as Component
        }),
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
