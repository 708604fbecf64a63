//! The eviction manager loop (upstream's `managerImpl.synchronize`): every
//! interval it observes the node's signals, decides ([`super::decide`]),
//! publishes the pressure conditions (to the node heartbeat) and taints,
//! and, when a threshold asks for it, evicts the first pod of the ranking:
//! its status becomes `Failed`, reason `Evicted` with upstream's message
//! and a `DisruptionTarget` condition; the pod worker then kills its
//! containers (a terminal phase stops every container). One pod per
//! interval, as upstream.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, PodStatus, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::decide::{decide, PressureState, Reclaim};
use super::rank::{evicted_message, rank_for, ContainerUsage, PodUsage, DISRUPTION_REASON, REASON};
use super::signals::{self, Observations};
use super::thresholds::{Signal, Thresholds};
use crate::events::{pod_reference, EventSink, EventType};
use crate::observed::uid_selector;
use crate::pod_api::PodApi;
use crate::runtime::Runtime;

/// Upstream's monitoring interval.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// How long the manager waits for an evicted pod's containers to stop.
const CLEANUP_WAIT: Duration = Duration::from_secs(30);
/// Where the v1 root memory cgroup is.
const MEMORY_CGROUP_V1: &str = "/sys/fs/cgroup/memory";
const SIGNALS: [Signal; 3] = [Signal::MemoryAvailable, Signal::NodeFsAvailable, Signal::PidAvailable];

/// The conditions under pressure, as the node heartbeat reads them.
pub type Pressure = BTreeSet<&'static str>;

/// The manager's dependencies.
pub struct EvictionManager {
    /// API client (pods of the node, the Node's taints).
    pub client: kube::Client,
    /// The runtime (container stats).
    pub runtime: Arc<dyn Runtime>,
    /// Pod status writes.
    pub api: Arc<dyn PodApi>,
    /// Events.
    pub events: Arc<dyn EventSink>,
    /// This node's name.
    pub node: String,
    /// Thresholds.
    pub thresholds: Thresholds,
    /// The machine's memory, bytes.
    pub memory_capacity: i64,
    /// The agent's root dir (nodefs).
    pub root_dir: PathBuf,
    /// Published pressure conditions.
    pub pressure: watch::Sender<Pressure>,
    /// Where evictions are counted (`kubelet_evictions`).
    pub metrics: crate::kubelet_metrics::EvictionMetrics,
}

fn read(path: impl Into<PathBuf>) -> String {
    std::fs::read_to_string(path.into()).unwrap_or_default()
}

/// Reads the node's signals (blocking file and statvfs reads).
fn observe(memory_capacity: i64, root_dir: &std::path::Path) -> Observations {
    let memory = signals::memory(
        memory_capacity,
        &read(format!("{MEMORY_CGROUP_V1}/memory.usage_in_bytes")),
        &read(format!("{MEMORY_CGROUP_V1}/memory.stat")),
    )
    .or_else(|| {
        // cgroup v2 has no root usage file: the kernel's MemAvailable.
        let meminfo = read("/proc/meminfo");
        let kib = meminfo.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?.trim().trim_end_matches("kB");
        let available = kib.trim().parse::<i64>().ok()?.saturating_mul(1024);
        Some(signals::Observation { available, capacity: memory_capacity })
    });
    let nodefs = nix::sys::statvfs::statvfs(root_dir)
        .ok()
        .map(|s| signals::nodefs(s.fragment_size(), s.blocks(), s.blocks_available()));
    let pids = signals::pids(&read("/proc/sys/kernel/pid_max"), &read("/proc/loadavg"));
    Observations { memory, nodefs, pids }
}

/// The node's taints with each pressure condition's NoSchedule taint added
/// or removed (others' taints untouched). `None`: nothing to change.
pub fn taints_for(existing: &[Taint], pressure: &Pressure) -> Option<Vec<Taint>> {
    let ours: BTreeMap<&str, bool> =
        SIGNALS.iter().map(|s| (s.taint_key(), pressure.contains(s.condition()))).collect();
    let mut out: Vec<Taint> =
        existing.iter().filter(|t| ours.get(t.key.as_str()).is_none_or(|want| *want)).cloned().collect();
    for (key, want) in &ours {
        if *want && !out.iter().any(|t| t.key == *key) {
            out.push(Taint { key: (*key).to_string(), effect: "NoSchedule".into(), ..Default::default() });
        }
    }
    (out != existing).then_some(out)
}

/// The status an evicted pod gets.
pub fn evicted_status(message: &str, now: Timestamp) -> PodStatus {
    PodStatus {
        phase: Some("Failed".into()),
        reason: Some(REASON.into()),
        message: Some(message.to_string()),
        conditions: Some(vec![PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some(DISRUPTION_REASON.into()),
            message: Some(message.to_string()),
            last_transition_time: Some(Time(now)),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn request_of(pod: &Pod, container: &str, signal: Signal) -> i64 {
    let name = match signal {
        Signal::MemoryAvailable => "memory",
        Signal::NodeFsAvailable => "ephemeral-storage",
        Signal::PidAvailable => return 0,
    };
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .find(|c| c.name == container)
        .and_then(|c| c.resources.as_ref()?.requests.as_ref()?.get(name).cloned())
        .and_then(|q| bosun_resources::plain_value(&q.0).ok())
        .unwrap_or(0)
}

impl EvictionManager {
    /// Runs until `token` is cancelled.
    pub async fn run(self, interval: Duration, token: CancellationToken) {
        let mut state = PressureState::default();
        let mut published: Option<Pressure> = None;
        let mut ticker = tokio::time::interval(interval);
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let (capacity, root) = (self.memory_capacity, self.root_dir.clone());
            let Ok(observed) = tokio::task::spawn_blocking(move || observe(capacity, &root)).await else { continue };
            let decision = decide(&self.thresholds, &observed, &state, Timestamp::now());
            state = decision.state;
            if published.as_ref() != Some(&decision.conditions) {
                self.pressure.send_replace(decision.conditions.clone());
                match self.sync_taints(&decision.conditions).await {
                    Ok(()) => published = Some(decision.conditions.clone()),
                    Err(error) => tracing::warn!(%error, "node pressure taints not updated"),
                }
            }
            if let Some(reclaim) = decision.reclaim {
                tracing::info!(
                    signal = reclaim.signal.as_str(),
                    available = reclaim.available,
                    "eviction threshold met"
                );
                if let Err(error) = self.evict_one(reclaim).await {
                    tracing::warn!(%error, "eviction failed");
                }
                // Observe again a whole interval after the cleanup.
                ticker.reset();
            }
        }
    }

    async fn sync_taints(&self, pressure: &Pressure) -> Result<(), kube::Error> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = nodes.get(&self.node).await?;
        let existing = node.spec.and_then(|s| s.taints).unwrap_or_default();
        if let Some(taints) = taints_for(&existing, pressure) {
            let patch = serde_json::json!({"spec": {"taints": taints}});
            nodes.patch(&self.node, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        }
        Ok(())
    }

    async fn usage(&self, signal: Signal) -> Result<Vec<(Pod, PodUsage)>, String> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let params = ListParams::default().fields(&format!("spec.nodeName={}", self.node));
        let list = pods.list(&params).await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for pod in list.items {
            let terminal = matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Failed" | "Succeeded"));
            if terminal || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let filter = bosun_proto::cri::ContainerFilter { label_selector: uid_selector(&uid), ..Default::default() };
            let mut containers = Vec::new();
            for c in self.runtime.list_containers(Some(filter)).await.map_err(|e| e.to_string())? {
                if c.state != bosun_proto::cri::ContainerState::ContainerRunning as i32 {
                    continue;
                }
                let name = c.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
                let Ok(stats) = self.runtime.container_stats(&c.id).await else { continue };
                let usage = match signal {
                    Signal::MemoryAvailable => stats.memory.and_then(|m| m.working_set_bytes).map(|v| v.value),
                    Signal::NodeFsAvailable => stats.writable_layer.and_then(|w| w.used_bytes).map(|v| v.value),
                    Signal::PidAvailable => Some(1),
                };
                let usage = usage.map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX));
                containers.push(ContainerUsage { request: request_of(&pod, &name, signal), name, usage });
            }
            let usage = PodUsage {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                uid,
                priority: pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
                containers,
            };
            out.push((pod, usage));
        }
        Ok(out)
    }

    async fn evict_one(&self, reclaim: Reclaim) -> Result<(), String> {
        let pods = self.usage(reclaim.signal).await?;
        let ranked = rank_for(reclaim.signal, pods.iter().map(|(_, u)| u.clone()).collect());
        let Some(victim) = ranked.first() else {
            tracing::warn!("eviction threshold met but no pod to evict");
            return Ok(());
        };
        let Some((pod, _)) = pods.iter().find(|(_, u)| u.uid == victim.uid) else { return Ok(()) };
        let message = evicted_message(reclaim.signal, reclaim.threshold, reclaim.available, victim);
        tracing::info!(pod = %format!("{}/{}", victim.namespace, victim.name), %message, "evicting pod");
        self.events.record(&pod_reference(pod, None), EventType::Warning, REASON, &message).await;
        self.api
            .patch_status(&victim.namespace, &victim.name, &victim.uid, &evicted_status(&message, Timestamp::now()))
            .await
            .map_err(|e| e.to_string())?;
        self.metrics.record_eviction(reclaim.signal.as_str());
        self.wait_stopped(&victim.uid).await;
        Ok(())
    }

    /// Waits (bounded) until the evicted pod has no running container, so
    /// the next observation sees the memory it freed (upstream's
    /// `waitForPodsCleanup`); otherwise the next tick would evict again.
    async fn wait_stopped(&self, uid: &str) {
        let deadline = tokio::time::Instant::now() + CLEANUP_WAIT;
        while tokio::time::Instant::now() < deadline {
            let filter = bosun_proto::cri::ContainerFilter { label_selector: uid_selector(uid), ..Default::default() };
            let running = match self.runtime.list_containers(Some(filter)).await {
                Ok(list) => list.iter().any(|c| c.state == bosun_proto::cri::ContainerState::ContainerRunning as i32),
                Err(_) => false,
            };
            if !running {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str) -> Taint {
        Taint { key: key.into(), effect: "NoSchedule".into(), ..Default::default() }
    }

    #[test]
    fn pressure_taints_follow_the_conditions_and_keep_others() {
        let memory = Pressure::from(["MemoryPressure"]);
        let other = taint("example.com/x");
        let with = taints_for(std::slice::from_ref(&other), &memory).expect("added");
        assert_eq!(with, vec![other.clone(), taint("node.kubernetes.io/memory-pressure")]);
        assert_eq!(taints_for(&with, &memory), None, "unchanged");
        assert_eq!(taints_for(&with, &Pressure::new()), Some(vec![other]));
        let both = taints_for(&[], &Pressure::from(["DiskPressure", "PIDPressure"])).expect("added");
        let keys: Vec<&str> = both.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["node.kubernetes.io/disk-pressure", "node.kubernetes.io/pid-pressure"]);
    }

    #[test]
    fn an_evicted_pod_is_failed_with_reason_evicted() {
        let s = evicted_status("The node was low on resource: memory. ", Timestamp::UNIX_EPOCH);
        assert_eq!((s.phase.as_deref(), s.reason.as_deref()), (Some("Failed"), Some("Evicted")));
        let c = &s.conditions.expect("conditions")[0];
        assert_eq!((c.type_.as_str(), c.reason.as_deref()), ("DisruptionTarget", Some("TerminationByKubelet")));
    }
}
