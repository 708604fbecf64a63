//! The agent's Prometheus registry served on the proxy's own address, as
//! kube-proxy serves its metrics (`--metrics-bind-address`, default
//! `127.0.0.1:10249`): `GET /metrics` (OpenMetrics text) and `GET /healthz`.
//! The process has one registry: the kubelet API's `/metrics` shows the same.
//!
//! Must not: record anything itself; netproxy records at its sync.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// Where the proxy's metrics are served unless told otherwise.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:10249";

pub use bosun_metrics::{render, OPENMETRICS_TEXT};

/// The routes: `/metrics` and `/healthz`.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || async move { ([(header::CONTENT_TYPE, OPENMETRICS_TEXT)], render(&registry)).into_response() }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

/// Serves `registry` on `addr` until `token` is cancelled.
pub async fn serve(addr: SocketAddr, registry: Arc<Registry>, token: CancellationToken) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(registry)).with_graceful_shutdown(token.cancelled_owned()).await
}
