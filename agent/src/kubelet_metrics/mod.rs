//! The kubelet's own Prometheus series, served on the kubelet API as
//! `GET /metrics`, named as upstream names them where they match:
//!
//! | series | recorded by |
//! |---|---|
//! | `kubelet_node_name{node}` | [`register`], once |
//! | `kubelet_pod_start_duration_seconds` | pod worker: first sight to phase Running ([`StartClock`]) |
//! | `kubelet_pod_worker_duration_seconds{operation}` | pod worker: each pass (create, sync, kill) |
//! | `kubelet_pleg_relist_duration_seconds` | pod manager: each relist |
//! | `kubelet_evented_pleg_connection_latency_seconds` | PLEG subscription: containerd's stamp to receipt, per event |
//! | `kubelet_running_pods`, `kubelet_running_containers{container_state}` | pod manager: from each relist ([`RuntimeCounts`]) |
//! | `kubelet_runtime_operations_total{operation_type}`, `..._errors_total`, `..._duration_seconds` | [`MeteredRuntime`], around every CRI call |
//! | `kubelet_started_containers_total` | [`MeteredRuntime`]: each `StartContainer` |
//! | `kubelet_evictions{eviction_signal}` | eviction manager: each evicted pod |
//!
//! plus `process_*` (`bosun_metrics::process`) and, when the proxy runs,
//! its `kubeproxy_*` series: one registry per process.
//!
//! Components receive the narrow handle they record into ([`PodMetrics`],
//! [`RuntimeMetrics`], [`EvictionMetrics`]), never the registry. Every label
//! value is a `&'static str`, so recording allocates nothing once a series
//! exists. `Default` handles record into series no registry shows (tests).

mod metered_runtime;
mod start_clock;

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::pleg::Snapshot;
pub use metered_runtime::MeteredRuntime;
pub use start_clock::StartClock;

/// One label with a fixed value.
type Label = [(&'static str, &'static str); 1];
/// A histogram family's constructor.
type NewHistogram = fn() -> Histogram;

/// CRI call latency buckets: 5 ms .. ~80 s.
fn runtime_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Pod worker pass buckets: 5 ms .. ~80 s.
fn worker_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// What the pod workers and the pod manager record.
#[derive(Clone, Debug)]
pub struct PodMetrics {
    pod_start: Histogram,
    worker_duration: Family<Label, Histogram, NewHistogram>,
    relist_duration: Histogram,
    event_latency: Histogram,
    running_pods: Gauge,
    running_containers: Family<Label, Gauge>,
}

impl Default for PodMetrics {
    fn default() -> Self {
        Self {
            // 0.5 s .. ~17 min: pulls make pod starts long-tailed.
            pod_start: Histogram::new(exponential_buckets(0.5, 2.0, 12)),
            worker_duration: Family::new_with_constructor(worker_buckets),
            // 1 ms .. ~16 s.
            relist_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            // 0.1 ms .. ~1.6 s: events are meant to arrive at once.
            event_latency: Histogram::new(exponential_buckets(0.0001, 2.0, 15)),
            running_pods: Gauge::default(),
            running_containers: Family::default(),
        }
    }
}

/// What a pod worker pass was, as `kubelet_pod_worker_duration_seconds` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerOperation {
    /// The worker's first pass over its pod.
    Create,
    /// A later pass.
    Sync,
    /// Removing a pod that is gone from the API.
    Kill,
}

impl WorkerOperation {
    /// The pass of a worker: `first` pass or not, the pod `desired` or gone.
    pub fn of(first: bool, desired: bool) -> Self {
        match (desired, first) {
            (false, _) => WorkerOperation::Kill,
            (true, true) => WorkerOperation::Create,
            (true, false) => WorkerOperation::Sync,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerOperation::Create => "create",
            WorkerOperation::Sync => "sync",
            WorkerOperation::Kill => "kill",
        }
    }
}

/// The CRI container states, as `container_state` labels them.
const CONTAINER_STATES: [&str; 4] = ["created", "running", "exited", "unknown"];

/// What one relist saw: pods with a running container, and containers by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeCounts {
    /// Pods with at least one running container.
    pub running_pods: i64,
    /// Containers per CRI state, in the order of [`CONTAINER_STATES`].
    pub containers: [i64; 4],
}

impl RuntimeCounts {
    /// Counts a relist's snapshot (CRI state numbers out of range count as unknown).
    pub fn of(snapshot: &Snapshot) -> Self {
        let running = bosun_proto::cri::ContainerState::ContainerRunning as i32;
        let mut counts = RuntimeCounts::default();
        for containers in snapshot.values() {
            if containers.values().any(|state| *state == running) {
                counts.running_pods = counts.running_pods.saturating_add(1);
            }
            for state in containers.values() {
                let index = usize::try_from(*state).ok().filter(|i| *i < CONTAINER_STATES.len()).unwrap_or(3);
                counts.containers[index] = counts.containers[index].saturating_add(1);
            }
        }
        counts
    }
}

impl PodMetrics {
    /// One pod worker pass.
    pub fn record_worker_pass(&self, operation: WorkerOperation, elapsed: Duration) {
        self.worker_duration.get_or_create(&[("operation", operation.as_str())]).observe(elapsed.as_secs_f64());
    }

    /// A pod reached phase Running `elapsed` after the agent first saw it.
    pub fn record_pod_start(&self, elapsed: Duration) {
        self.pod_start.observe(elapsed.as_secs_f64());
    }

    /// One containerd event arrived `latency` after containerd stamped it.
    pub fn record_event_latency(&self, latency: Duration) {
        self.event_latency.observe(latency.as_secs_f64());
    }

    /// One relist: how long it took and, when it succeeded, what it saw.
    pub fn record_relist(&self, elapsed: Duration, counts: Option<RuntimeCounts>) {
        self.relist_duration.observe(elapsed.as_secs_f64());
        if let Some(counts) = counts {
            self.running_pods.set(counts.running_pods);
            for (state, count) in CONTAINER_STATES.iter().zip(counts.containers) {
                self.running_containers.get_or_create(&[("container_state", state)]).set(count);
            }
        }
    }
}

/// What the CRI wrapper records.
#[derive(Clone, Debug)]
pub struct RuntimeMetrics {
    operations: Family<Label, Counter>,
    errors: Family<Label, Counter>,
    duration: Family<Label, Histogram, NewHistogram>,
    started_containers: Counter,
}

impl Default for RuntimeMetrics {
    fn default() -> Self {
        Self {
            operations: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(runtime_buckets),
            started_containers: Counter::default(),
        }
    }
}

impl RuntimeMetrics {
    /// One CRI call of `operation` (upstream's `operation_type` names).
    pub fn record_call(&self, operation: &'static str, elapsed: Duration, ok: bool) {
        let label = [("operation_type", operation)];
        self.operations.get_or_create(&label).inc();
        self.duration.get_or_create(&label).observe(elapsed.as_secs_f64());
        if !ok {
            self.errors.get_or_create(&label).inc();
        }
    }

    /// One `StartContainer` attempt.
    pub fn record_container_start(&self) {
        self.started_containers.inc();
    }
}

/// What the eviction manager records.
#[derive(Clone, Debug, Default)]
pub struct EvictionMetrics {
    evictions: Family<Label, Counter>,
}

impl EvictionMetrics {
    /// One pod evicted for `signal` (e.g. `memory.available`).
    pub fn record_eviction(&self, signal: &'static str) {
        self.evictions.get_or_create(&[("eviction_signal", signal)]).inc();
    }
}

/// Every handle of the kubelet's series.
#[derive(Clone, Debug, Default)]
pub struct KubeletMetrics {
    /// Pod workers, relist.
    pub pods: PodMetrics,
    /// CRI calls.
    pub runtime: RuntimeMetrics,
    /// Evictions.
    pub eviction: EvictionMetrics,
}

/// Registers the kubelet's series (and the process collector) in `registry`.
pub fn register(registry: &mut Registry, node: &str) -> KubeletMetrics {
    let metrics = KubeletMetrics::default();
    let node_name: Family<[(&'static str, String); 1], Gauge> = Family::default();
    node_name.get_or_create(&[("node", node.to_owned())]).set(1);
    registry.register("kubelet_node_name", "The node's name; the value is always 1", node_name);
    let pods = &metrics.pods;
    registry.register(
        "kubelet_pod_start_duration_seconds",
        "Duration in seconds from the agent first seeing a pod to the pod running",
        pods.pod_start.clone(),
    );
    registry.register(
        "kubelet_pod_worker_duration_seconds",
        "Duration in seconds of one pod worker pass, by operation (create, sync, kill)",
        pods.worker_duration.clone(),
    );
    registry.register(
        "kubelet_pleg_relist_duration_seconds",
        "Duration in seconds of one relist of the runtime's containers",
        pods.relist_duration.clone(),
    );
    registry.register(
        "kubelet_evented_pleg_connection_latency_seconds",
        "Seconds from containerd stamping a container event to the agent receiving it",
        pods.event_latency.clone(),
    );
    registry.register("kubelet_running_pods", "Pods with a running container", pods.running_pods.clone());
    registry.register(
        "kubelet_running_containers",
        "Containers of pods, by CRI state",
        pods.running_containers.clone(),
    );
    let runtime = &metrics.runtime;
    registry.register("kubelet_runtime_operations", "CRI calls, by operation type", runtime.operations.clone());
    registry.register(
        "kubelet_runtime_operations_errors",
        "Failed CRI calls, by operation type",
        runtime.errors.clone(),
    );
    registry.register(
        "kubelet_runtime_operations_duration_seconds",
        "Duration in seconds of CRI calls, by operation type",
        runtime.duration.clone(),
    );
    registry.register("kubelet_started_containers", "StartContainer calls", runtime.started_containers.clone());
    registry.register("kubelet_evictions", "Pods evicted, by eviction signal", metrics.eviction.evictions.clone());
    bosun_metrics::process::ProcessCollector::register(registry);
    metrics
}

#[cfg(test)]
mod tests;
