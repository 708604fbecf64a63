//! One stats collection as data: the raw cgroup stats of the node, each pod
//! and each running container, with CPU rates. The summary and the metrics
//! pages are pure renderings of this.

use bosun_cgroups::stats::{CgroupStats, CpuStats, MemoryStats, PidsStats};
use jiff::Timestamp;

/// A cgroup's stats and its CPU rate (nanocores) when one is known yet.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// What the cgroup files said.
    pub stats: CgroupStats,
    /// CPU in use over the last window, nanocores.
    pub cpu_rate: Option<u64>,
}

/// A running container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSample {
    /// Container name in the pod spec.
    pub name: String,
    /// Runtime id.
    pub id: String,
    /// When the runtime created it.
    pub start_time: Option<Timestamp>,
    /// Its cgroup's usage.
    pub usage: Usage,
}

/// A pod with at least one running container.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSample {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// `status.startTime`, when the agent knows the pod.
    pub start_time: Option<Timestamp>,
    /// The pod-level cgroup's usage, where pods have one.
    pub cgroup: Option<Usage>,
    /// Running containers, by name.
    pub containers: Vec<ContainerSample>,
}

/// The node's root cgroup.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSample {
    /// Node name.
    pub name: String,
    /// Physical memory (MemTotal), for `availableBytes`.
    pub memory_capacity_bytes: u64,
    /// The root cgroup's usage.
    pub usage: Usage,
}

/// Everything one collection saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    /// When it was taken.
    pub at: Timestamp,
    /// The node.
    pub node: NodeSample,
    /// Pods with running containers.
    pub pods: Vec<PodSample>,
}

impl PodSample {
    /// The pod's usage: its own cgroup where there is one, else the sum of its
    /// containers (the pause container is not counted then).
    pub fn usage(&self) -> Usage {
        self.cgroup.unwrap_or_else(|| sum(self.containers.iter().map(|c| &c.usage)))
    }
}

fn add_opt<T>(a: Option<T>, b: Option<T>, add: impl FnOnce(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(add(a, b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The sum of several cgroups' usage (pure). A rate is summed only when all
/// parts have one; limits and pressure do not add up and are left out.
pub fn sum<'a>(parts: impl IntoIterator<Item = &'a Usage>) -> Usage {
    let mut total = Usage { cpu_rate: Some(0), ..Usage::default() };
    let mut any = false;
    for part in parts {
        any = true;
        let s = &part.stats;
        total.cpu_rate = match (total.cpu_rate, part.cpu_rate) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            _ => None,
        };
        total.stats.cpu = add_opt(total.stats.cpu, s.cpu, |a, b| CpuStats {
            usage_nanos: a.usage_nanos.saturating_add(b.usage_nanos),
            user_nanos: add_opt(a.user_nanos, b.user_nanos, u64::saturating_add),
            system_nanos: add_opt(a.system_nanos, b.system_nanos, u64::saturating_add),
            periods: a.periods.saturating_add(b.periods),
            throttled_periods: a.throttled_periods.saturating_add(b.throttled_periods),
            throttled_nanos: a.throttled_nanos.saturating_add(b.throttled_nanos),
        });
        total.stats.memory =
            add_opt(total.stats.memory, s.memory.map(|m| MemoryStats { limit_bytes: None, ..m }), |a, b| MemoryStats {
                usage_bytes: a.usage_bytes.saturating_add(b.usage_bytes),
                working_set_bytes: a.working_set_bytes.saturating_add(b.working_set_bytes),
                rss_bytes: a.rss_bytes.saturating_add(b.rss_bytes),
                page_faults: a.page_faults.saturating_add(b.page_faults),
                major_page_faults: a.major_page_faults.saturating_add(b.major_page_faults),
                limit_bytes: None,
            });
        total.stats.pids = add_opt(total.stats.pids, s.pids.map(|p| PidsStats { limit: None, ..p }), |a, b| {
            PidsStats { current: a.current.saturating_add(b.current), limit: None }
        });
    }
    if !any {
        total.cpu_rate = None;
    }
    total
}
