//! The sync loop: a level-triggered, rate-limited runner that turns the
//! change tracker's dirty Services into one nft transaction per sync.
//!
//! It keeps the rendered content in memory ([`Rendered`]) and never lists
//! the kernel table. The first sync (and the first after any failure)
//! replaces the whole table atomically; later syncs re-render only the
//! dirty Services and send only their element diffs, so a sync costs
//! O(changed Services). When nothing changed for `max_interval`, it
//! recomputes every Service from the cache, checks the incremental content
//! against a full render, and, if that yields no diff, runs a cheap probe
//! transaction (`add chain` of an existing chain) that fails if someone
//! deleted the table, which triggers a full resync.
//!
//! Latency: a sync is due `min_interval` after the previous one, so the
//! first change after an idle period is applied at once, and a due sync is
//! served before further queued events (a steady event stream cannot starve
//! it); events arriving meanwhile are batched into the next sync.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::conntrack::ConntrackFlush;
use crate::health::{health_check, HealthCheck, HealthChecks};
use crate::metrics::{ProxyMetrics, SyncOutcome};
use crate::model::ServiceName;
use crate::nft::NftApply;
use crate::rendered::Rendered;
use crate::script::{full_script, ops_script};
use crate::table::{TableSpec, SERVICES_CHAIN};
use crate::tracker::ChangeTracker;

/// First retry delay after a failed apply; doubles up to `max_interval`.
const RETRY_BASE: Duration = Duration::from_millis(500);

/// Upper bounds (ms) of the sync-duration histogram buckets; the last
/// bucket counts everything slower.
pub const HISTOGRAM_BOUNDS_MS: [u64; 5] = [1, 10, 100, 1_000, 10_000];

/// A watch event for either resource (boxed: Service events are large).
#[derive(Debug)]
pub enum ProxyEvent {
    /// Service event.
    Service(Box<Event<Service>>),
    /// EndpointSlice event.
    Slice(Box<Event<EndpointSlice>>),
}

impl ProxyEvent {
    /// Wraps a Service watch event.
    pub fn service(event: Event<Service>) -> Self {
        Self::Service(Box::new(event))
    }

    /// Wraps an EndpointSlice watch event.
    pub fn slice(event: Event<EndpointSlice>) -> Self {
        Self::Slice(Box::new(event))
    }
}

/// Rate limits of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncTiming {
    /// Least time between two syncs (debounces bursts of events).
    pub min_interval: Duration,
    /// Longest time without a sync (periodic recompute and probe).
    pub max_interval: Duration,
}

/// Counters and a duration histogram, logged through `tracing`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Syncs that applied something (full, diff or probe).
    pub applied: u64,
    /// Of those, full table loads.
    pub full: u64,
    /// Failed applies.
    pub failed: u64,
    /// Sync durations per [`HISTOGRAM_BOUNDS_MS`] bucket (+1 overflow).
    pub histogram: [u64; HISTOGRAM_BOUNDS_MS.len() + 1],
}

impl SyncStats {
    fn observe(&mut self, elapsed: Duration) {
        let ms = elapsed.as_millis();
        let bucket =
            HISTOGRAM_BOUNDS_MS.iter().position(|bound| ms < u128::from(*bound)).unwrap_or(HISTOGRAM_BOUNDS_MS.len());
        self.histogram[bucket] += 1;
    }
}

/// When the next sync should run; `None` means "wait for events".
pub fn next_sync_at(
    ready: bool,
    pending: bool,
    failures: u32,
    last_attempt: Option<Instant>,
    timing: SyncTiming,
) -> Option<Instant> {
    if !ready {
        return None;
    }
    let Some(last) = last_attempt else {
        return Some(Instant::now());
    };
    if failures > 0 {
        let backoff = RETRY_BASE
            .saturating_mul(1 << failures.saturating_sub(1).min(16))
            .min(timing.max_interval)
            .max(timing.min_interval);
        return Some(last + backoff);
    }
    Some(last + if pending { timing.min_interval } else { timing.max_interval })
}

/// Logs one applied sync: full loads at info (with the O(all) element
/// count), diffs and probes at debug.
fn log_applied(table: &str, kind: SyncKind, rendered: &Rendered, render: Duration, total: Duration) {
    let service_ports = rendered.ruleset().services.len();
    let render_ms = render.as_secs_f64() * 1e3;
    let total_ms = total.as_secs_f64() * 1e3;
    if kind == SyncKind::Full {
        let elements = rendered.ruleset().element_count();
        tracing::info!(table, ?kind, service_ports, elements, render_ms, total_ms, "nft sync applied");
    } else {
        tracing::debug!(table, ?kind, service_ports, render_ms, total_ms, "nft sync applied");
    }
}

/// What one sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncKind {
    Full,
    Diff(usize),
    Probe,
    Nothing,
}

/// State owned by the loop.
pub struct Proxier {
    spec: TableSpec,
    nft: Arc<dyn NftApply>,
    tracker: ChangeTracker,
    rendered: Rendered,
    /// Whether the kernel table holds `rendered` as of the last sync (false
    /// before the first load and after a failure: the next sync is full).
    loaded: bool,
    failures: u32,
    stats: SyncStats,
    /// Health-check port and local endpoint count per Service that has one.
    health: BTreeMap<ServiceName, (u16, usize)>,
    /// Where the health checks are published (for [`crate::health::serve`]).
    health_tx: Option<watch::Sender<HealthChecks>>,
    metrics: ProxyMetrics,
    /// Deletes stale UDP/SCTP conntrack entries after a sync, if set.
    conntrack: Option<Arc<dyn ConntrackFlush>>,
}

impl Proxier {
    /// A proxier for node `node_name` (empty: unknown) that has applied
    /// nothing yet.
    pub fn new(spec: TableSpec, node_name: &str, nft: Arc<dyn NftApply>) -> Self {
        Self {
            spec,
            nft,
            tracker: ChangeTracker::new(node_name),
            rendered: Rendered::new(),
            loaded: false,
            failures: 0,
            stats: SyncStats::default(),
            health: BTreeMap::new(),
            health_tx: None,
            metrics: ProxyMetrics::default(),
            conntrack: None,
        }
    }

    /// Deletes the conntrack entries each sync makes stale with `flusher`.
    pub fn with_conntrack(mut self, flusher: Arc<dyn ConntrackFlush>) -> Self {
        self.conntrack = Some(flusher);
        self
    }

    /// Publishes the health checks (`healthCheckNodePort`) to `sender`.
    pub fn with_health_checks(mut self, sender: watch::Sender<HealthChecks>) -> Self {
        self.health_tx = Some(sender);
        self
    }

    /// Records syncs in `metrics` (registered by the caller).
    pub fn with_metrics(mut self, metrics: ProxyMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Feeds one watch event to the change tracker.
    pub fn observe(&mut self, event: ProxyEvent) {
        match event {
            ProxyEvent::Service(event) => self.tracker.service_event(*event),
            ProxyEvent::Slice(event) => self.tracker.slice_event(*event),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    fn pending(&self) -> bool {
        self.tracker.has_changes() || !self.loaded
    }

    /// Re-renders the Services changed since the last call and publishes
    /// the health checks if any changed.
    fn render_dirty(&mut self) {
        let mut health_changed = false;
        for name in self.tracker.take_dirty() {
            let ports = self.tracker.service_ports(&name);
            let check = self.tracker.service_info(&name).and_then(|info| health_check(info, &ports));
            let old = match check {
                Some(check) => self.health.insert(name.clone(), check),
                None => self.health.remove(&name),
            };
            health_changed |= old != check;
            self.rendered.replace_service(&name, ports);
        }
        if let (true, Some(sender)) = (health_changed, &self.health_tx) {
            let checks: HealthChecks = self
                .health
                .iter()
                .map(|(service, (port, count))| {
                    (*port, HealthCheck { service: service.clone(), local_endpoints: *count })
                })
                .collect();
            sender.send_replace(checks);
        }
    }

    /// Brings the kernel table up to date in one transaction. `periodic`
    /// recomputes every Service and probes the table if nothing changed.
    pub async fn sync(&mut self, periodic: bool) {
        let started = std::time::Instant::now();
        if periodic {
            self.tracker.mark_all_dirty();
        }
        self.render_dirty();
        if periodic && !self.rendered.is_consistent() {
            // A bug, not an expected state: start over from the cache.
            tracing::warn!(table = %self.spec.name, "incremental nft content drifted from a full render; reloading");
            self.rendered = Rendered::new();
            self.tracker.mark_all_dirty();
            self.render_dirty();
            self.loaded = false;
        }
        let (kind, script) = if self.loaded {
            let ops = self.rendered.take_ops();
            if !ops.is_empty() {
                (SyncKind::Diff(ops.len()), ops_script(&self.spec.name, &ops))
            } else if periodic {
                let table = &self.spec.name;
                (SyncKind::Probe, format!("add chain ip {table} {SERVICES_CHAIN}\n"))
            } else {
                (SyncKind::Nothing, String::new())
            }
        } else {
            self.rendered.forget_changes();
            (SyncKind::Full, full_script(&self.spec, self.rendered.ruleset()))
        };
        let render_time = started.elapsed();
        if kind == SyncKind::Nothing {
            return;
        }
        let nft = Arc::clone(&self.nft);
        let outcome = tokio::task::spawn_blocking(move || nft.apply(&script)).await;
        let elapsed = started.elapsed();
        self.stats.observe(elapsed);
        let ruleset = self.rendered.ruleset();
        let ok = matches!(outcome, Ok(Ok(())));
        let counts =
            SyncOutcome { elapsed, ok, service_ports: ruleset.services.len(), elements: ruleset.element_count() };
        self.metrics.record_sync(counts, std::time::SystemTime::now());
        match outcome {
            Ok(Ok(())) => {
                self.stats.applied += 1;
                if kind == SyncKind::Full {
                    self.stats.full += 1;
                }
                self.failures = 0;
                self.loaded = true;
                log_applied(&self.spec.name, kind, &self.rendered, render_time, elapsed);
                self.flush_stale_flows().await;
            }
            Ok(Err(error)) => self.record_failure(kind, &error),
            Err(error) => self.record_failure(kind, &error),
        }
    }

    /// Deletes the conntrack entries the applied sync made stale (after the
    /// apply, so that a new flow gets the new mapping). Best effort: a
    /// failure is logged, and the entries time out by themselves.
    async fn flush_stale_flows(&mut self) {
        let flows = self.rendered.take_stale_flows();
        let Some(flusher) = self.conntrack.clone().filter(|_| !flows.is_empty()) else { return };
        let table = self.spec.name.clone();
        let flushed = tokio::task::spawn_blocking(move || {
            let mut deleted = 0u64;
            for stale in &flows {
                match flusher.flush(stale) {
                    Ok(count) => deleted = deleted.saturating_add(count),
                    Err(error) => tracing::warn!(%table, %error, ?stale, "deleting stale conntrack entries failed"),
                }
            }
            (flows.len(), deleted)
        })
        .await;
        if let Ok((flows, deleted)) = flushed {
            tracing::debug!(table = %self.spec.name, flows, deleted, "stale conntrack entries deleted");
        }
    }

    fn record_failure(&mut self, kind: SyncKind, error: &dyn std::error::Error) {
        self.stats.failed += 1;
        self.failures = self.failures.saturating_add(1);
        self.loaded = false;
        tracing::warn!(
            table = %self.spec.name,
            kind = ?kind,
            failures = self.failures,
            error = %error,
            "nft sync failed; next sync reloads the whole table"
        );
    }

    /// Runs until `token` is cancelled: folds events in and syncs on the
    /// schedule of [`next_sync_at`]. If `events` ends, keeps syncing
    /// periodically with what it has.
    pub async fn run<S>(mut self, events: S, timing: SyncTiming, token: CancellationToken) -> SyncStats
    where
        S: Stream<Item = ProxyEvent> + Unpin,
    {
        let mut events = events.fuse();
        let mut last_attempt: Option<Instant> = None;
        loop {
            let pending = self.pending();
            let deadline = next_sync_at(self.tracker.is_synced(), pending, self.failures, last_attempt, timing);
            let wait = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = token.cancelled() => break,
                () = wait => {
                    let periodic = !pending && self.failures == 0;
                    self.sync(periodic).await;
                    last_attempt = Some(Instant::now());
                    if periodic {
                        tracing::info!(table = %self.spec.name, stats = ?self.stats, "nft sync stats");
                    }
                }
                Some(event) = events.next() => self.observe(event),
            }
        }
        self.stats
    }
}

#[cfg(test)]
mod tests;
