//! The kubelet API (HTTPS, see `kubelet_tls`; every request authenticated
//! and authorized by `kubelet_auth`): `GET /pods` (the pods this
//! agent runs, as a PodList), `GET /runningpods` (what the runtime runs, see
//! `running_pods`) and `GET /containerLogs/{ns}/{pod}/{container}`
//! (CRI log file of the current or previous attempt; `follow` tails it
//! until the container exits or the client goes away), and the streaming
//! endpoints `/exec`, `/attach` and `/portForward` (see `streaming`), and
//! resource usage: `/stats/summary`, `/metrics/resource` (see `stats`), and
//! the agent's own series: `/metrics` (see `kubelet_metrics`). `GET
//! /healthz` is served apart, in plain HTTP on a loopback port (upstream's
//! healthz port 10248), for local checks without credentials.
//!
//! Must not: change pods or containers. Read-only over the registry, the log
//! files and the runtime's container states.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::log_reader::LogReader;
use crate::logs::LogOptions;
use crate::pod_manager::PodRegistry;
use crate::runtime::Runtime;
use crate::runtime_spec::pod_log_dir;

/// Serving failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding the listen address failed.
    #[error("binding kubelet API on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The healthz server stopped with an error.
    #[error("serving healthz: {0}")]
    Serve(#[source] std::io::Error),
}

/// What the handlers read.
#[derive(Clone)]
pub struct ServerState {
    /// Pods this agent runs.
    pub registry: PodRegistry,
    /// Agent state root (logs under `<root>/pods`).
    pub root_dir: PathBuf,
    /// The runtime, to see whether a followed container still runs.
    pub runtime: Arc<dyn Runtime>,
    /// Stops followers at shutdown.
    pub token: CancellationToken,
    /// Poll interval of followers.
    pub follow_poll: Duration,
    /// Exec, attach and port-forward sessions with no traffic for this long are closed.
    pub stream_idle_timeout: Duration,
    /// Resource usage (`/stats/summary`, `/metrics/resource`).
    pub stats: Arc<crate::stats::StatsProvider>,
    /// The process's metrics registry (`/metrics`, see `kubelet_metrics`).
    pub metrics: Arc<prometheus_client::registry::Registry>,
}

/// The routes of the kubelet API, without authentication (see [`serve`]).
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/pods", get(pods))
        .route("/runningpods", get(runningpods))
        .route("/containerLogs/{namespace}/{pod}/{container}", get(container_logs))
        .merge(crate::streaming::routes())
        .merge(crate::stats::routes())
        .with_state(state)
}

/// Serves the kubelet API over HTTPS (`tls`) on `listener`, every request
/// checked by `auth`, until `token` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: ServerState,
    auth: Arc<crate::kubelet_auth::KubeletAuth>,
    token: CancellationToken,
) {
    let routes = router(state).layer(axum::middleware::from_fn_with_state(auth, crate::kubelet_auth::check));
    crate::kubelet_tls::serve(listener, tls, routes, token).await;
}

/// The default healthz address: loopback, port 10248 (upstream's).
pub const DEFAULT_HEALTHZ_PORT: u16 = 10248;

/// Serves `GET /healthz` in plain HTTP on `listener` until `token` is cancelled.
pub async fn serve_healthz(listener: tokio::net::TcpListener, token: CancellationToken) -> Result<(), Error> {
    let routes = Router::new().route("/healthz", get(|| async { "ok" }));
    axum::serve(listener, routes).with_graceful_shutdown(token.cancelled_owned()).await.map_err(Error::Serve)
}

async fn metrics(State(state): State<ServerState>) -> Response {
    let text = bosun_metrics::render(&state.metrics);
    ([(axum::http::header::CONTENT_TYPE, bosun_metrics::OPENMETRICS_TEXT)], text).into_response()
}

async fn pods(State(state): State<ServerState>) -> Json<serde_json::Value> {
    let items: Vec<Pod> = state.registry.list().iter().map(|p| Pod::clone(p)).collect();
    pod_list(&items)
}

fn pod_list(items: &[Pod]) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items }))
}

async fn runningpods(State(state): State<ServerState>) -> Response {
    let listed = tokio::try_join!(state.runtime.list_pod_sandboxes(None), state.runtime.list_containers(None));
    match listed {
        Ok((sandboxes, containers)) => {
            pod_list(&crate::running_pods::running_pods(&sandboxes, &containers)).into_response()
        }
        Err(e) => bad(StatusCode::INTERNAL_SERVER_ERROR, format!("listing the runtime's pods: {e}")),
    }
}

/// Query of `/containerLogs` (values as kubectl sends them).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    follow: Option<String>,
    tail_lines: Option<String>,
    timestamps: Option<String>,
    previous: Option<String>,
    since_seconds: Option<String>,
    since_time: Option<String>,
    limit_bytes: Option<String>,
}

fn flag(value: &Option<String>) -> bool {
    matches!(value.as_deref(), Some("true" | "1" | ""))
}

/// Parses an optional query value; the error is the 400 message.
fn number<T: std::str::FromStr>(name: &str, value: &Option<String>) -> Result<Option<T>, String> {
    match value {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| format!("invalid {name}: {v:?}")),
    }
}

fn options(query: &LogQuery, now: Timestamp) -> Result<LogOptions, String> {
    let since_seconds: Option<i64> = number("sinceSeconds", &query.since_seconds)?;
    let since_time: Option<Timestamp> = number("sinceTime", &query.since_time)?;
    let since =
        since_time.or_else(|| since_seconds.and_then(|s| now.checked_sub(jiff::SignedDuration::from_secs(s)).ok()));
    Ok(LogOptions {
        timestamps: flag(&query.timestamps),
        tail_lines: number("tailLines", &query.tail_lines)?,
        since,
        limit_bytes: number("limitBytes", &query.limit_bytes)?,
    })
}

/// Attempts with a log file in `dir`, newest first.
fn attempts(dir: &std::path::Path) -> Vec<u32> {
    let mut found: Vec<u32> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    found.sort_unstable_by(|a, b| b.cmp(a));
    found
}

/// True if the runtime's container of `attempt` (of container `name` of pod
/// `uid`) has exited.
async fn newest_has_exited(
    runtime: &dyn crate::runtime::Runtime,
    uid: &str,
    name: &str,
    attempt: Option<&u32>,
) -> bool {
    let Some(&attempt) = attempt else { return false };
    let filter = bosun_proto::cri::ContainerFilter {
        label_selector: [
            (crate::labels::POD_UID.to_string(), uid.to_string()),
            (crate::labels::CONTAINER_NAME.to_string(), name.to_string()),
        ]
        .into(),
        ..Default::default()
    };
    let exited = bosun_proto::cri::ContainerState::ContainerExited as i32;
    runtime
        .list_containers(Some(filter))
        .await
        .unwrap_or_default()
        .iter()
        .any(|c| c.metadata.as_ref().is_some_and(|m| m.attempt == attempt) && c.state == exited)
}

fn bad(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

async fn container_logs(
    State(state): State<ServerState>,
    Path((namespace, pod_name, container)): Path<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    let Some(pod) = state.registry.find(&namespace, &pod_name) else {
        return bad(StatusCode::NOT_FOUND, format!("pod {namespace}/{pod_name} not found on this node"));
    };
    let known = pod.spec.iter().flat_map(|s| s.containers.iter()).any(|c| c.name == container);
    if !known {
        return bad(StatusCode::BAD_REQUEST, format!("container {container} is not valid for pod {pod_name}"));
    }
    let options = match options(&query, Timestamp::now()) {
        Ok(o) => o,
        Err(message) => return bad(StatusCode::BAD_REQUEST, message),
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = pod_log_dir(&state.root_dir, &namespace, &pod_name, &uid).join(&container);
    let found = attempts(&dir);
    let previous = flag(&query.previous);
    // As upstream, "previous" is the last terminated instance: the newest
    // one itself while it has exited and waits to restart (only the newest
    // dead instance survives container GC).
    let newest_exited = previous && newest_has_exited(state.runtime.as_ref(), &uid, &container, found.first()).await;
    let attempt = if previous && !newest_exited { found.get(1) } else { found.first() };
    let Some(&attempt) = attempt else {
        let message = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod_name}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating")
        };
        return bad(StatusCode::BAD_REQUEST, message);
    };
    let reader = LogReader {
        runtime: state.runtime.clone(),
        uid,
        container,
        attempt,
        path: dir.join(format!("{attempt}.log")),
        options,
        follow: flag(&query.follow) && !previous,
        poll: state.follow_poll,
        token: state.token.clone(),
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(reader.run(tx));
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).into_response()
}
