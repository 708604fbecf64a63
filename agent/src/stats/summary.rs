//! The kubelet's Summary API (`/stats/summary`, `stats/v1alpha1`): the JSON
//! shape metrics-server and `kubectl top` read, rendered from a
//! [`Collection`] (pure). Only the parts bosun measures are present: CPU,
//! memory (with PSI where the kernel has it) and the process count.

use bosun_cgroups::stats::{MemoryStats, Pressure, PsiLine};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::sample::{Collection, Usage};

/// The whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The node.
    pub node: NodeStats,
    /// Each pod with running containers.
    pub pods: Vec<PodStats>,
}

/// The node's usage (its root cgroup).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    /// Node name.
    pub node_name: String,
    /// CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuJson>,
    /// Memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryJson>,
}

/// Identifies a pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodReference {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID.
    pub uid: String,
}

/// Process count of a pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// Tasks in the pod's cgroups.
    pub process_count: u64,
}

/// A pod's usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    /// Which pod.
    pub pod_ref: PodReference,
    /// `status.startTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// Running containers.
    pub containers: Vec<ContainerStats>,
    /// CPU of the whole pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuJson>,
    /// Memory of the whole pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryJson>,
    /// Process count (upstream spells this key in snake case).
    #[serde(rename = "process_stats", skip_serializing_if = "Option::is_none")]
    pub process_stats: Option<ProcessStats>,
}

/// A container's usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    /// Container name.
    pub name: String,
    /// When it was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuJson>,
    /// Memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryJson>,
}

/// One PSI line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PsiData {
    /// Total stall time, microseconds.
    pub total: u64,
    /// Percent over 10 s.
    pub avg10: f64,
    /// Percent over 60 s.
    pub avg60: f64,
    /// Percent over 300 s.
    pub avg300: f64,
}

/// A pressure file (`full` is zero where the kernel has no such line, as upstream).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PsiJson {
    /// All non-idle tasks stalled.
    pub full: PsiData,
    /// Some tasks stalled.
    pub some: PsiData,
}

/// CPU usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuJson {
    /// When measured.
    pub time: Timestamp,
    /// Cores in use over the last window, nanocores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    /// Cumulative CPU time, nanoseconds.
    pub usage_core_nano_seconds: u64,
    /// CPU pressure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<PsiJson>,
}

/// Memory usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryJson {
    /// When measured.
    pub time: Timestamp,
    /// Limit (or capacity) minus working set, where there is a limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    /// Charged memory including page cache.
    pub usage_bytes: u64,
    /// Usage minus inactive file pages.
    pub working_set_bytes: u64,
    /// Anonymous memory.
    pub rss_bytes: u64,
    /// Page faults.
    pub page_faults: u64,
    /// Major page faults.
    pub major_page_faults: u64,
    /// Memory pressure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<PsiJson>,
}

fn psi_data(line: PsiLine) -> PsiData {
    PsiData { total: line.total_micros, avg10: line.avg10, avg60: line.avg60, avg300: line.avg300 }
}

fn psi(pressure: Option<Pressure>) -> Option<PsiJson> {
    let p = pressure?;
    let zero = PsiData { total: 0, avg10: 0.0, avg60: 0.0, avg300: 0.0 };
    Some(PsiJson { full: p.full.map(psi_data).unwrap_or(zero), some: psi_data(p.some) })
}

fn cpu(usage: &Usage, time: Timestamp) -> Option<CpuJson> {
    let stats = usage.stats.cpu?;
    Some(CpuJson {
        time,
        usage_nano_cores: usage.cpu_rate,
        usage_core_nano_seconds: stats.usage_nanos,
        psi: psi(usage.stats.psi.and_then(|p| p.cpu)),
    })
}

fn memory(usage: &Usage, time: Timestamp, capacity: Option<u64>) -> Option<MemoryJson> {
    let MemoryStats { usage_bytes, working_set_bytes, rss_bytes, page_faults, major_page_faults, limit_bytes } =
        usage.stats.memory?;
    Some(MemoryJson {
        time,
        available_bytes: limit_bytes.or(capacity).map(|limit| limit.saturating_sub(working_set_bytes)),
        usage_bytes,
        working_set_bytes,
        rss_bytes,
        page_faults,
        major_page_faults,
        psi: psi(usage.stats.psi.and_then(|p| p.memory)),
    })
}

/// The Summary of a collection (pure).
pub fn build(collection: &Collection) -> Summary {
    let at = collection.at;
    let node = &collection.node;
    let node = NodeStats {
        node_name: node.name.clone(),
        cpu: cpu(&node.usage, at),
        memory: memory(&node.usage, at, Some(node.memory_capacity_bytes).filter(|c| *c > 0)),
    };
    let pods = collection
        .pods
        .iter()
        .map(|pod| {
            let total = pod.usage();
            PodStats {
                pod_ref: PodReference {
                    name: pod.name.clone(),
                    namespace: pod.namespace.clone(),
                    uid: pod.uid.clone(),
                },
                start_time: pod.start_time,
                containers: pod
                    .containers
                    .iter()
                    .map(|c| ContainerStats {
                        name: c.name.clone(),
                        start_time: c.start_time,
                        cpu: cpu(&c.usage, at),
                        memory: memory(&c.usage, at, None),
                    })
                    .collect(),
                cpu: cpu(&total, at),
                memory: memory(&total, at, None),
                process_stats: total.stats.pids.map(|p| ProcessStats { process_count: p.current }),
            }
        })
        .collect();
    Summary { node, pods }
}
