//! The proxy's Prometheus series, named as upstream kube-proxy names them
//! where they match (`kubeproxy_sync_proxy_rules_*`), recorded at one
//! point: [`ProxyMetrics::record_sync`], called once per applied or failed
//! sync by the proxier. The registry is the caller's (the agent serves it on
//! `127.0.0.1:10249/metrics`); this crate keeps no global state.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

/// The proxy's metrics; clones share the same series.
#[derive(Clone, Debug)]
pub struct ProxyMetrics {
    sync_duration: Histogram,
    sync_failures: Counter,
    last_sync: Gauge<f64, AtomicU64>,
    service_ports: Gauge,
    elements: Gauge,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self {
            // 1 ms .. ~16 s, as upstream's sync duration buckets.
            sync_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            sync_failures: Counter::default(),
            last_sync: Gauge::default(),
            service_ports: Gauge::default(),
            elements: Gauge::default(),
        }
    }
}

/// What one sync did, as the metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Time from the start of the sync to nft's answer.
    pub elapsed: Duration,
    /// The transaction was applied.
    pub ok: bool,
    /// Service ports in the rendered ruleset.
    pub service_ports: usize,
    /// Map and set elements in the rendered ruleset.
    pub elements: usize,
}

impl ProxyMetrics {
    /// Metrics registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds (one nft transaction)",
            metrics.sync_duration.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_failures",
            "Failed nft transactions of SyncProxyRules",
            metrics.sync_failures.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced (Unix seconds)",
            metrics.last_sync.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_service_ports",
            "Service ports in the nftables ruleset after the last successful sync",
            metrics.service_ports.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_nftables_elements",
            "Map and set elements in the nftables ruleset after the last successful sync",
            metrics.elements.clone(),
        );
        metrics
    }

    /// Records one sync that sent a transaction to nft.
    pub fn record_sync(&self, outcome: SyncOutcome, now: SystemTime) {
        self.sync_duration.observe(outcome.elapsed.as_secs_f64());
        if !outcome.ok {
            self.sync_failures.inc();
            return;
        }
        let unix = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        self.last_sync.set(unix);
        self.service_ports.set(i64::try_from(outcome.service_ports).unwrap_or(i64::MAX));
        self.elements.set(i64::try_from(outcome.elements).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn syncs_show_as_histogram_failures_timestamp_and_counts() {
        let mut registry = Registry::default();
        let metrics = ProxyMetrics::register(&mut registry);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ok = SyncOutcome { elapsed: Duration::from_millis(3), ok: true, service_ports: 4, elements: 70 };
        metrics.record_sync(ok, at);
        metrics.record_sync(SyncOutcome { ok: false, elapsed: Duration::from_millis(40), ..ok }, at);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for want in [
            "# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram",
            "kubeproxy_sync_proxy_rules_duration_seconds_count 2",
            "kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.004\"} 1",
            "kubeproxy_sync_proxy_rules_failures_total 1",
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds 1700000000",
            "kubeproxy_sync_proxy_rules_service_ports 4",
            "kubeproxy_sync_proxy_rules_nftables_elements 70",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
    }
}
