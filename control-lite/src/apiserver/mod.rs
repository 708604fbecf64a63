//! The control-lite apiserver: a Kubernetes-compatible REST API over the
//! revisioned [`Store`](crate::store::Store), enough for real `kubectl` and
//! kube-rs clients (discovery, OpenAPI v3 for field validation, CRUD, PATCH,
//! watch, subresources, server-side Table printing).
//!
//! Owns: HTTP routing, object semantics (defaults, validation, metadata,
//! deletion rules), ClusterIP allocation. Must not: run controllers; those are
//! API clients like any other.
//!
//! Layout: `registry` (the resource table) drives `handlers` (HTTP glue),
//! `crud` and `deletion` (store-facing operations), `watch`, `subresources`
//! (scale, binding) and `logs` (proxy to the node). Pure decision modules
//! (`selectors`, `patch`, `protobuf`, `schema`, `defaults`, `validation`, `objects`,
//! `table`/`cells`, `clusterip`, `discovery`, `openapi`) are table-tested;
//! `status` is the one mapping from errors to `Status` objects and HTTP codes.
//!
//! Not served (yet): protobuf request bodies beyond Namespace, ConfigMap,
//! Secret, ServiceAccount and Deployment (so e.g. `kubectl create service`
//! fails; `kubectl apply/create -f` send JSON and work), server-side
//! apply, aggregated discovery (clients fall back), OpenAPI schemas
//! (`kubectl explain`; `/openapi/v2` is an empty document), authn/authz, `limit`/`continue` paging.

pub mod cells;
pub mod clusterip;
pub mod crud;
pub mod defaults;
pub mod deletion;
pub mod discovery;
pub mod handlers;
pub mod kubeconfig;
pub mod logs;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod schema;
pub mod selectors;
pub mod status;
pub mod subresources;
pub mod table;
pub mod validation;
pub mod watch;

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use objects::{meta_str, WriteOptions};
use registry::{by_kind, Kind};
use selectors::Selectors;
use status::ApiError;

/// Errors of starting or running the apiserver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bootstrap objects could not be written.
    #[error("bootstrap {what}: {source}")]
    Bootstrap { what: String, source: ApiError },
    /// The HTTP server failed.
    #[error("serve on {addr}: {source}")]
    Serve { addr: String, source: std::io::Error },
}

/// Shared state of all handlers.
#[derive(Debug)]
pub struct ApiState {
    /// The object store.
    pub store: Store,
    /// ClusterIP allocator.
    pub ips: clusterip::Allocator,
    /// Server shutdown (ends watches and log streams).
    pub token: CancellationToken,
    /// `host:port` advertised in `/api`.
    pub server_address: String,
}

impl ApiState {
    /// State over `store` with Services allocated from `cidr`.
    pub fn new(store: Store, cidr: clusterip::Cidr, server_address: String, token: CancellationToken) -> ApiState {
        ApiState { store, ips: clusterip::Allocator::new(cidr), token, server_address }
    }
}

/// The router: fixed health/version paths, everything else through [`handlers::dispatch`].
pub fn router(state: Arc<ApiState>) -> Router {
    let ok = || async { "ok" };
    Router::new()
        .route("/version", get(|| async { Json(discovery::version()) }))
        .route("/healthz", get(ok))
        .route("/readyz", get(ok))
        .route("/livez", get(ok))
        .fallback(handlers::dispatch)
        .with_state(state)
}

const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates what a fresh cluster has (system namespaces, the `kubernetes`
/// Service on `.1`) and rebuilds ClusterIP allocations from stored Services.
pub async fn bootstrap(state: &ApiState, apiserver_port: u16) -> Result<(), Error> {
    let boot = |what: &str| {
        let what = what.to_string();
        move |source| Error::Bootstrap { what, source }
    };
    let ns_info = by_kind(Kind::Namespace);
    for ns in SYSTEM_NAMESPACES {
        let body = json!({"metadata": {"name": ns}});
        match crud::create(state, ns_info, None, body, WriteOptions::default()).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => return Err(boot(&format!("namespace {ns}"))(e)),
        }
    }
    let svc_info = by_kind(Kind::Service);
    let (services, _) =
        crud::list(state, svc_info, None, &Selectors::default()).await.map_err(boot("list services"))?;
    for svc in &services {
        for ip in svc.pointer("/spec/clusterIPs").and_then(Value::as_array).into_iter().flatten() {
            state.ips.mark(ip.as_str().unwrap_or_default());
        }
    }
    let exists = services
        .iter()
        .any(|s| meta_str(s, "name") == Some("kubernetes") && meta_str(s, "namespace") == Some("default"));
    if !exists {
        let ip = state.ips.cidr().nth(1).to_string();
        let body = json!({"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": apiserver_port}]}});
        match crud::create(state, svc_info, Some("default"), body, WriteOptions::default()).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => return Err(boot("kubernetes service")(e)),
        }
    }
    Ok(())
}

/// Serves the API on `listener` until `token` is cancelled (open watches end then too).
pub async fn serve(listener: TcpListener, state: Arc<ApiState>, token: CancellationToken) -> Result<(), Error> {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    bootstrap(&state, listener.local_addr().map(|a| a.port()).unwrap_or(6443)).await?;
    tracing::info!(%addr, "apiserver listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(token.cancelled_owned())
        .await
        .map_err(|source| Error::Serve { addr, source })
}
