//! The control-lite apiserver: a Kubernetes-compatible REST API over the
//! revisioned [`Store`](crate::store::Store), enough for real `kubectl` and
//! kube-rs clients (discovery, OpenAPI v3 for field validation, CRUD, PATCH,
//! watch, subresources, server-side Table printing).
//!
//! Owns: HTTP routing, object semantics (defaults, validation, metadata,
//! deletion rules), ClusterIP allocation. Must not: run controllers; those are
//! API clients like any other.
//!
//! Layout: `http` is the HTTP layer: connections and their limits, the one
//! request pipeline (decide the call, in-flight/body limits, the place for
//! authn/authz, then one handler per verb). Handlers call `crud`,
//! `deletion` and `namespaces` (store-facing operations; every write's
//! admission is in `crud`; namespace lifecycle and the `finalize`
//! subresource), `watch`, `subresources` (scale, binding) and `logs` (proxy
//! to the node) and `metrics_api` (`metrics.k8s.io` from the nodes' Summary
//! API). `crd` turns stored CustomResourceDefinitions into registry rows at
//! runtime, so custom resources take the same paths as built-ins. Leaf modules below them: `options` (typed query options, parsed
//! once), `response` (object/list/Table rendering), `status` (the one mapping
//! from errors to `Status` objects and HTTP codes). Pure decision modules
//! (`selectors`, `patch`, `protobuf`, `schema`, `defaults`, `validation`, `objects`,
//! `table`/`cells`, `clusterip`, `discovery`, `openapi`) are table-tested.
//! Module dependencies point one way: `http` -> handlers' modules -> leaves.
//!
//! Limits ([`ApiConfig`], upstream-like defaults): 3 MiB bodies, 1.5 MiB
//! objects (also the result of any patch), 10,000 JSON patch operations,
//! 400/200 non-mutating/mutating requests in flight (watches and logs exempt,
//! 429 beyond), a connection limit, a header read timeout, 250 streams per
//! HTTP/2 connection, and a deadline after which a watch (or any response)
//! whose client stopped reading is closed.
//!
//! Not served (yet): protobuf request bodies beyond Namespace, ConfigMap,
//! Secret, ServiceAccount and Deployment (so e.g. `kubectl create service`
//! fails; `kubectl apply/create -f` send JSON and work), server-side
//! apply, aggregated discovery (clients fall back), OpenAPI v2
//! (`/openapi/v2` is an empty document; v3 has the schemas `kubectl
//! explain` reads), `limit`/`continue` paging. Every request is authenticated (step 0 of
//! `http`) and authorized (`http::authz`).

pub mod apply;
pub mod apps;
pub mod batch;
pub mod batch_printers;
pub mod cells;
pub mod certificates;
pub mod claims;
pub mod claims_repair;
pub mod clusterip;
pub mod crd;
pub mod crud;
pub mod defaults;
pub mod deletion;
pub mod discovery;
pub mod duration;
pub mod grace;
pub mod http;
pub mod kubeconfig;
pub mod kubelet_client;
pub mod list_read;
pub mod logs;
pub mod metrics_api;
pub mod namespaces;
pub mod nodeports;
pub mod objects;
pub mod oidc;
pub mod openapi;
pub mod options;
pub mod paging;
pub mod patch;
pub mod pod_kubelet;
pub mod pod_security;
pub mod policy;
pub mod priority;
pub mod protobuf;
pub mod registry;
pub mod resize;
pub mod response;
pub mod schema;
pub mod selectors;
pub mod service_accounts;
pub mod splice;
pub mod status;
pub mod stream_proxy;
pub mod subresources;
pub mod table;
pub mod token_request;
pub mod validation;
pub mod watch;

#[cfg(test)]
mod fuzz_tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::bootstrap_roles;
use crate::auth::cache::AuthzCache;
use crate::store::Store;
pub use http::limits::ApiConfig;
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
}

/// Shared state of all handlers.
#[derive(Debug)]
pub struct ApiState {
    /// The object store.
    pub store: Store,
    /// ClusterIP allocator.
    pub ips: clusterip::Allocator,
    /// Service node-port allocator.
    pub node_ports: nodeports::Allocator,
    /// Server shutdown (ends watches and log streams).
    pub token: CancellationToken,
    /// `host:port` advertised in `/api`.
    pub server_address: String,
    /// Limits.
    pub config: ApiConfig,
    /// Watches being served.
    pub open_watches: Arc<AtomicUsize>,
    /// Where requests are recorded (`crate::metrics`).
    pub metrics: crate::metrics::ApiMetrics,
    /// The process's registry, served on `/metrics`.
    pub metrics_registry: Arc<prometheus_client::registry::Registry>,
    /// The authorizers' view of RBAC objects and pods (started by [`serve`]).
    pub authz: Arc<AuthzCache>,
    /// How kubelets are dialed (logs, exec, attach, port-forward, metrics).
    pub kubelet: kubelet_client::KubeletClient,
    /// The key that signs ServiceAccount tokens (`None`: TokenRequest is 500).
    pub sa_key: Option<Arc<crate::auth::sa_token::key::SigningKey>>,
    /// The cluster CA (PEM) published as `kube-root-ca.crt` in namespaces.
    pub root_ca_pem: Option<String>,
    /// The ServiceAccount issuer's discovery documents (`None`: 404).
    pub oidc: Option<Arc<oidc::Discovery>>,
    /// Pod Security's cluster-wide defaults and exemptions.
    pub pod_security: Arc<pod_security::config::PodSecurityConfig>,
    /// The custom resources served now (built from the stored CRDs).
    pub crds: crd::Served,
    /// The OpenAPI v3 documents of the custom resources served last.
    pub openapi: openapi::CustomCache,
}

impl ApiState {
    /// State over `store` with Services allocated from `cidr`, with default limits.
    pub fn new(store: Store, cidr: clusterip::Cidr, server_address: String, token: CancellationToken) -> ApiState {
        ApiState {
            store,
            ips: clusterip::Allocator::new(cidr),
            node_ports: nodeports::Allocator::new(nodeports::DEFAULT_RANGE),
            token,
            server_address,
            config: ApiConfig::default(),
            open_watches: Arc::default(),
            metrics: Default::default(),
            metrics_registry: Arc::default(),
            authz: Arc::default(),
            kubelet: Default::default(),
            sa_key: None,
            root_ca_pem: None,
            oidc: None,
            pod_security: Arc::default(),
            crds: crd::Served::default(),
            openapi: openapi::CustomCache::default(),
        }
    }

    /// The same state dialing kubelets with `kubelet`.
    pub fn with_kubelet_client(self, kubelet: kubelet_client::KubeletClient) -> ApiState {
        ApiState { kubelet, ..self }
    }

    /// The same state issuing ServiceAccount tokens signed by `key`.
    pub fn with_service_account_key(self, key: Arc<crate::auth::sa_token::key::SigningKey>) -> ApiState {
        ApiState { sa_key: Some(key), ..self }
    }

    /// The same state serving the issuer discovery of its ServiceAccount
    /// key (none without one), with the key set at `jwks_uri`.
    pub fn with_issuer_discovery(self, jwks_uri: &str) -> ApiState {
        let oidc = self.sa_key.as_ref().map(|key| Arc::new(oidc::Discovery::new(key, jwks_uri)));
        ApiState { oidc, ..self }
    }

    /// The same state admitting pods with Pod Security's `config`.
    pub fn with_pod_security(self, config: pod_security::config::PodSecurityConfig) -> ApiState {
        ApiState { pod_security: Arc::new(config), ..self }
    }

    /// The same state publishing `ca_pem` as each namespace's `kube-root-ca.crt`.
    pub fn with_root_ca(self, ca_pem: String) -> ApiState {
        ApiState { root_ca_pem: Some(ca_pem), ..self }
    }

    /// The same state recording into `metrics` and serving `registry`.
    pub fn with_metrics(
        self,
        metrics: crate::metrics::ApiMetrics,
        registry: Arc<prometheus_client::registry::Registry>,
    ) -> ApiState {
        ApiState { metrics, metrics_registry: registry, ..self }
    }

    /// The same state with `config`'s limits.
    pub fn with_config(self, config: ApiConfig) -> ApiState {
        ApiState { config, ..self }
    }

    /// Number of watches being served now.
    pub fn open_watches(&self) -> usize {
        self.open_watches.load(Ordering::Relaxed)
    }
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
        service_accounts::ensure_namespace_defaults(state, ns)
            .await
            .map_err(boot(&format!("namespace {ns} defaults")))?;
    }
    priority::bootstrap(state).await.map_err(boot("system priority classes"))?;
    crd::reload(state).await.map_err(boot("custom resource definitions"))?;
    bootstrap_rbac(state).await.map_err(boot("default RBAC roles"))?;
    let svc_info = by_kind(Kind::Service);
    let (services, _) =
        crud::list(state, svc_info, None, &Selectors::default()).await.map_err(boot("list services"))?;
    for svc in &services {
        for ip in svc.pointer("/spec/clusterIPs").and_then(Value::as_array).into_iter().flatten() {
            state.ips.mark(ip.as_str().unwrap_or_default());
        }
        state.node_ports.mark(svc);
        // Claimed in the store too, for other apiservers on it (`claims`).
        let owner =
            format!("{}/{}", meta_str(svc, "namespace").unwrap_or_default(), meta_str(svc, "name").unwrap_or_default());
        claims::ensure(&state.store, &stored_addresses(state, svc), &owner)
            .await
            .map_err(|e| boot("service address claims")(ApiError::store("claim", claims::PREFIX, e)))?;
    }
    let exists = services
        .iter()
        .any(|s| meta_str(s, "name") == Some("kubernetes") && meta_str(s, "namespace") == Some("default"));
    crud::repair_service_ips(state, services).await.map_err(boot("repair service addresses"))?;
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

/// The claimable addresses of stored Service `svc`: its ClusterIP (not
/// `None`, not the `kubernetes` Service's `.1`) and node ports.
fn stored_addresses(state: &ApiState, svc: &Value) -> Vec<claims::Address> {
    let ip = svc.pointer("/spec/clusterIP").and_then(Value::as_str);
    let ip = ip.filter(|ip| ip.parse().is_ok_and(|ip| state.ips.cidr().contains(ip) && ip != state.ips.cidr().nth(1)));
    claims::addresses(ip, &nodeports::node_ports_of(svc))
}

/// Creates upstream's default ClusterRoles and ClusterRoleBindings that are
/// absent (existing ones, possibly edited by an administrator, are kept).
async fn bootstrap_rbac(state: &ApiState) -> Result<(), ApiError> {
    let roles = bootstrap_roles::cluster_roles().into_iter().map(|r| (Kind::ClusterRole, r));
    let bindings = bootstrap_roles::cluster_role_bindings().into_iter().map(|b| (Kind::ClusterRoleBinding, b));
    for (kind, obj) in roles.chain(bindings) {
        match crud::create(state, by_kind(kind), None, obj, WriteOptions::default()).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Serves the API over HTTPS on `listener` until `token` is cancelled (open watches end then too).
pub async fn serve(
    listener: TcpListener,
    state: Arc<ApiState>,
    security: http::Security,
    token: CancellationToken,
) -> Result<(), Error> {
    serve_all(vec![listener], state, security, token).await
}

/// [`serve`] on several listeners at once (the first one's port is the
/// `kubernetes` Service's target port).
pub async fn serve_all(
    listeners: Vec<TcpListener>,
    state: Arc<ApiState>,
    security: http::Security,
    token: CancellationToken,
) -> Result<(), Error> {
    let addrs: Vec<_> = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
    bootstrap(&state, addrs.first().map(|a| a.port()).unwrap_or(6443)).await?;
    state.authz.start(&state.store, &token).await;
    tokio::spawn(claims_repair::run(state.clone(), token.clone()));
    crd::start_sync(&state, &token)
        .await
        .map_err(|source| Error::Bootstrap { what: "custom resource definitions".into(), source })?;
    tracing::info!(addrs = ?addrs, "apiserver listening");
    http::serve(listeners, state, security, token).await;
    Ok(())
}
