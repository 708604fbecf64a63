//! What bosun's `/metrics` endpoints share: [`render`] (a registry as
//! OpenMetrics text, which Prometheus reads as its text format) and the
//! [`process`] collector (`process_*` series read from procfs at scrape).
//!
//! Each daemon owns one [`Registry`] for its process; components receive
//! narrow handles (structs of counters and histograms), never the registry.
//!
//! Must not: keep global state, or record anything itself.

pub mod process;

use prometheus_client::registry::Registry;

/// Content type of what [`render`] writes.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry as OpenMetrics text.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(%error, "encoding metrics");
    }
    text
}

/// Seconds of `elapsed`, for histograms (which observe `f64`).
pub fn seconds(elapsed: std::time::Duration) -> f64 {
    elapsed.as_secs_f64()
}
