//! The stats endpoints of the kubelet API: `/stats/summary` (JSON),
//! `/metrics/resource` and `/metrics/cadvisor` (Prometheus text).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::{metrics, summary};
use crate::server::ServerState;

/// Content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The stats routes, merged into the kubelet API's router.
pub fn routes() -> Router<ServerState> {
    Router::new()
        .route("/stats/summary", get(stats_summary))
        .route("/metrics/resource", get(metrics_resource))
        .route("/metrics/cadvisor", get(metrics_cadvisor))
}

fn unavailable(error: impl std::fmt::Display) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("failed to collect stats: {error}")).into_response()
}

async fn stats_summary(State(state): State<ServerState>) -> Response {
    match state.stats.current().await {
        Ok(collection) => Json(summary::build(&collection)).into_response(),
        Err(error) => unavailable(error),
    }
}

async fn metrics_resource(State(state): State<ServerState>) -> Response {
    match state.stats.current().await {
        Ok(collection) => {
            ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], metrics::render_resource(&collection)).into_response()
        }
        Err(error) => unavailable(error),
    }
}

async fn metrics_cadvisor(State(state): State<ServerState>) -> Response {
    match state.stats.current().await {
        Ok(collection) => {
            ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], metrics::render_cadvisor(&collection)).into_response()
        }
        Err(error) => unavailable(error),
    }
}
