//! `workqueue_depth{name}` and `workqueue_adds_total{name}`, as client-go's
//! workqueues report them: every controller registers its queue by name in
//! the shared [`QueueMetrics`], and the collector reads the queues at
//! scrape time (nothing is recorded on the hot path beyond a counter in
//! the queue itself). A queue that is gone (its controller restarted and
//! made a new one) drops out at the next scrape.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::queue::QueueStats;

type Probe = Box<dyn Fn() -> Option<QueueStats> + Send + Sync>;

/// The queues of every controller (cloneable; shared through `Informers`).
#[derive(Clone, Default)]
pub struct QueueMetrics {
    queues: Arc<Mutex<Vec<(&'static str, Probe)>>>,
}

impl std::fmt::Debug for QueueMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueMetrics").finish_non_exhaustive()
    }
}

impl QueueMetrics {
    /// Reports the queue behind `probe` (see `WorkQueue::stats_probe`) as `name`.
    pub fn track(&self, name: &'static str, probe: impl Fn() -> Option<QueueStats> + Send + Sync + 'static) {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget queues that are gone, so restarts do not pile up entries.
        queues.retain(|(_, probe)| probe().is_some());
        queues.push((name, Box::new(probe)));
    }

    /// Live queues by name (a name tracked twice is summed), sorted.
    pub fn snapshot(&self) -> Vec<(&'static str, QueueStats)> {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let mut by_name: std::collections::BTreeMap<&'static str, QueueStats> = Default::default();
        for (name, probe) in queues.iter() {
            if let Some(stats) = probe() {
                let total = by_name.entry(name).or_default();
                total.depth = total.depth.saturating_add(stats.depth);
                total.adds = total.adds.saturating_add(stats.adds);
            }
        }
        by_name.into_iter().collect()
    }
}

/// The prometheus collector of [`QueueMetrics`].
#[derive(Debug)]
pub struct WorkqueueCollector(pub QueueMetrics);

impl prometheus_client::collector::Collector for WorkqueueCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.0.snapshot();
        let mut depth = encoder.encode_descriptor(
            "workqueue_depth",
            "Current depth of workqueue",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (name, stats) in &snapshot {
            let gauge = ConstGauge::new(i64::try_from(stats.depth).unwrap_or(i64::MAX));
            gauge.encode(depth.encode_family(&[("name", *name)])?)?;
        }
        let mut adds = encoder.encode_descriptor(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (name, stats) in &snapshot {
            ConstCounter::new(stats.adds).encode(adds.encode_family(&[("name", *name)])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::queue::WorkQueue;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn depth_and_adds_are_read_from_live_queues_only() {
        let metrics = QueueMetrics::default();
        let queue: WorkQueue<u32> = WorkQueue::new(CancellationToken::new());
        metrics.track("deployment", queue.stats_probe());
        for key in [1, 2, 2, 3] {
            queue.add(key);
        }
        let key = queue.next().await.expect("a key");
        assert_eq!(metrics.snapshot(), vec![("deployment", QueueStats { depth: 2, adds: 3 })]);
        queue.done(&key);

        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(WorkqueueCollector(metrics.clone())));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("workqueue_depth{name=\"deployment\"} 2"), "{text}");
        assert!(text.contains("workqueue_adds_total{name=\"deployment\"} 3"), "{text}");

        drop(queue);
        let replacement: WorkQueue<u32> = WorkQueue::new(CancellationToken::new());
        metrics.track("deployment", replacement.stats_probe());
        assert_eq!(metrics.snapshot(), vec![("deployment", QueueStats::default())], "the dropped queue is gone");
    }
}
