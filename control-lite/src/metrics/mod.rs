//! control-lite's Prometheus series, served by the apiserver as `GET
//! /metrics`, named as upstream names them where they match:
//!
//! | series | recorded by |
//! |---|---|
//! | `apiserver_request_total{verb,resource,subresource,code}` | `apiserver::http::handle`, once per request |
//! | `apiserver_request_duration_seconds{verb,resource,subresource}` | the same (time to the response head; a watch's stream is not included) |
//! | `apiserver_current_inflight_requests{request_kind}` | the pipeline, while a limited request holds its slot |
//! | `apiserver_longrunning_requests{verb}` | watches and log streams being served (the watch count) |
//! | `bosun_store_commit_duration_seconds` | the store's worker, per group commit (etcd's `etcd_request_duration_seconds` role) |
//! | `scheduler_schedule_attempts_total{result}`, `scheduler_scheduling_attempt_duration_seconds` | the scheduler, per pod decided |
//! | `apiserver_storage_objects{resource}` | the store's worker counts creates and deletes ([`StorageObjects`] reads them at scrape) |
//! | `workqueue_depth{name}`, `workqueue_adds_total{name}` | each controller's work queue, read at scrape (`controllers::queue_metrics`) |
//!
//! plus `process_*` (`bosun_metrics::process`). One registry per process;
//! each component receives its narrow handle ([`ApiMetrics`],
//! [`SchedulerMetrics`], the store's commit histogram). Label values are
//! `&'static str` or integers: recording allocates nothing once a series
//! exists. `Default` handles record into series no registry shows (tests).

mod api;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

pub use api::{verb_of, ApiMetrics, InflightGuard, OpenWatches, RequestLabels};

/// The store's group-commit latency: 0.1 ms .. ~3 s.
pub fn commit_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

/// What one scheduling attempt ended in (upstream's `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleResult {
    /// Bound to a node.
    Scheduled,
    /// No node fits (preemption may have been started).
    Unschedulable,
    /// The attempt failed: a bind error or a panic while deciding.
    Error,
}

impl ScheduleResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleResult::Scheduled => "scheduled",
            ScheduleResult::Unschedulable => "unschedulable",
            ScheduleResult::Error => "error",
        }
    }
}

type Label = [(&'static str, &'static str); 1];
type NewHistogram = fn() -> Histogram;

fn attempt_buckets() -> Histogram {
    // 1 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// What the scheduler records.
#[derive(Clone, Debug)]
pub struct SchedulerMetrics {
    attempts: Family<Label, Counter>,
    duration: Family<Label, Histogram, NewHistogram>,
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        Self { attempts: Family::default(), duration: Family::new_with_constructor(attempt_buckets) }
    }
}

impl SchedulerMetrics {
    /// One pod's attempt: how it ended and how long deciding and binding took.
    pub fn record_attempt(&self, result: ScheduleResult, elapsed: Duration) {
        let label = [("result", result.as_str())];
        self.attempts.get_or_create(&label).inc();
        self.duration.get_or_create(&label).observe(elapsed.as_secs_f64());
    }
}

/// `apiserver_storage_objects{resource}`: the store's live objects per
/// resource, read at scrape.
#[derive(Debug)]
pub struct StorageObjects(pub crate::store::counts::ObjectCounts);

impl prometheus_client::collector::Collector for StorageObjects {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::gauge::ConstGauge;
        let help = "Number of stored objects at the time of last check split by kind";
        let mut metric = encoder.encode_descriptor(
            "apiserver_storage_objects",
            help,
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (resource, count) in self.0.snapshot() {
            let gauge = ConstGauge::new(i64::try_from(count).unwrap_or(i64::MAX));
            gauge.encode(metric.encode_family(&[("resource", resource.as_str())])?)?;
        }
        Ok(())
    }
}

/// Every handle of control-lite's series.
#[derive(Clone, Debug)]
pub struct ControlMetrics {
    /// The apiserver's request pipeline.
    pub api: ApiMetrics,
    /// The store's commit latency (`Options::commit_duration`).
    pub store_commit: Histogram,
    /// The scheduler.
    pub scheduler: SchedulerMetrics,
}

/// Registers control-lite's series (and the process collector) in `registry`.
pub fn register(registry: &mut Registry) -> ControlMetrics {
    let metrics =
        ControlMetrics { api: ApiMetrics::default(), store_commit: commit_histogram(), scheduler: Default::default() };
    metrics.api.register(registry);
    registry.register(
        "bosun_store_commit_duration_seconds",
        "Duration in seconds of one group commit of the store (one SQLite transaction)",
        metrics.store_commit.clone(),
    );
    registry.register(
        "scheduler_schedule_attempts",
        "Attempts to schedule a pod, by result",
        metrics.scheduler.attempts.clone(),
    );
    registry.register(
        "scheduler_scheduling_attempt_duration_seconds",
        "Duration in seconds of one attempt to schedule a pod (deciding and binding), by result",
        metrics.scheduler.duration.clone(),
    );
    bosun_metrics::process::ProcessCollector::register(registry);
    metrics
}

#[cfg(test)]
mod tests;
