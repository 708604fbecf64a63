//! The stats provider: one collection lists the running containers (one CRI
//! call), finds their cgroups (remembered per container), reads the node's,
//! pods' and containers' cgroup files off the async runtime (through one
//! [`StatsReader`], which keeps the files open between collections), and
//! turns the cumulative CPU counters into rates. Collections closer together than the
//! rate window reuse the last one, so concurrent scrapes cost one read.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bosun_cgroups::stats::{self as cgstats, CgroupDirs, CgroupStats, Hierarchy, StatsReader};
use bosun_proto::cri as api;
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::locate::CgroupLocator;
use super::rate::RateTracker;
use super::sample::{Collection, ContainerSample, NodeSample, PodSample, Usage};
use crate::labels;
use crate::pod_manager::PodRegistry;
use crate::runtime::{Runtime, RuntimeError};

/// A failed collection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Listing the running containers failed.
    #[error("listing containers for stats: {0}")]
    Runtime(#[from] RuntimeError),
    /// The node's root cgroup could not be read.
    #[error("reading the node's cgroup: {0}")]
    Node(#[source] cgstats::Error),
    /// The blocking read task failed.
    #[error("stats read task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What the provider needs.
pub struct StatsDeps {
    /// The container runtime (ListContainers).
    pub runtime: Arc<dyn Runtime>,
    /// Finds cgroups.
    pub locator: Arc<dyn CgroupLocator>,
    /// The pods this agent runs (for `status.startTime`).
    pub registry: PodRegistry,
    /// The cgroup hierarchy (root injected).
    pub hierarchy: Hierarchy,
    /// Node name.
    pub node_name: String,
    /// Physical memory, bytes.
    pub memory_capacity_bytes: u64,
    /// Shortest window a CPU rate is computed over.
    pub min_window: Duration,
    /// Most cgroup files kept open between collections.
    pub max_open_files: usize,
}

/// A cgroup's limits (and files found absent) are read again every this
/// many collections of it (about a minute at the agent's period): they
/// change only on a resize, and only `availableBytes` shows them.
pub const LIMITS_REFRESH_EVERY: u32 = 6;

/// Collects and caches stats.
pub struct StatsProvider {
    deps: StatsDeps,
    rates: Mutex<RateTracker>,
    latest: Mutex<Option<Arc<Collection>>>,
    /// Used inside the blocking read task only.
    reader: Arc<Mutex<StatsReader>>,
}

/// A running container found by ListContainers, with where to read it.
struct Found {
    uid: String,
    namespace: String,
    pod: String,
    name: String,
    id: String,
    created: Option<Timestamp>,
    dirs: CgroupDirs,
}

fn label<'a>(c: &'a api::Container, key: &str) -> Option<&'a str> {
    c.labels.get(key).map(String::as_str)
}

impl StatsProvider {
    /// A provider over `deps`.
    pub fn new(deps: StatsDeps) -> Self {
        let reader = StatsReader::new(deps.max_open_files, LIMITS_REFRESH_EVERY);
        Self {
            deps,
            rates: Mutex::new(RateTracker::default()),
            latest: Mutex::new(None),
            reader: Arc::new(Mutex::new(reader)),
        }
    }

    /// The latest collection if it is younger than the rate window, else a new one.
    pub async fn current(&self) -> Result<Arc<Collection>, Error> {
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(latest) = latest {
            let age = Timestamp::now().duration_since(latest.at);
            if age >= jiff::SignedDuration::ZERO && age.unsigned_abs() < self.deps.min_window {
                return Ok(latest);
            }
        }
        self.collect().await
    }

    /// Takes a new collection.
    pub async fn collect(&self) -> Result<Arc<Collection>, Error> {
        let running = api::ContainerFilter {
            state: Some(api::ContainerStateValue { state: api::ContainerState::ContainerRunning as i32 }),
            ..Default::default()
        };
        let containers = self.deps.runtime.list_containers(Some(running)).await?;
        let mut found = Vec::with_capacity(containers.len());
        for c in &containers {
            let (Some(uid), Some(namespace), Some(pod)) =
                (label(c, labels::POD_UID), label(c, labels::POD_NAMESPACE), label(c, labels::POD_NAME))
            else {
                continue;
            };
            let Some(dirs) = self.deps.locator.container(&c.id).await else { continue };
            let name = label(c, labels::CONTAINER_NAME)
                .map(str::to_string)
                .or_else(|| c.metadata.as_ref().map(|m| m.name.clone()))
                .unwrap_or_default();
            found.push(Found {
                uid: uid.to_string(),
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                name,
                id: c.id.clone(),
                created: Timestamp::from_nanosecond(i128::from(c.created_at)).ok().filter(|_| c.created_at > 0),
                dirs,
            });
        }
        let live: HashSet<String> = found.iter().map(|f| f.id.clone()).collect();
        self.deps.locator.forget_except(&live);
        let pod_dirs: BTreeMap<String, Option<CgroupDirs>> =
            found.iter().map(|f| (f.uid.clone(), self.deps.locator.pod(&f.uid))).collect();

        let root = self.deps.hierarchy.root_dirs();
        let reader = self.reader.clone();
        let reads = tokio::task::spawn_blocking(move || {
            let mut reader = reader.lock().unwrap_or_else(|e| e.into_inner());
            read_all(&mut reader, &root, found, pod_dirs)
        })
        .await?;
        let (node_stats, containers, pods) = reads;
        let node_stats = node_stats.map_err(Error::Node)?;
        let collection = Arc::new(self.assemble(Timestamp::now(), node_stats, containers, pods));
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(collection.clone());
        Ok(collection)
    }

    /// Rates and grouping (no I/O).
    fn assemble(
        &self,
        at: Timestamp,
        node_stats: CgroupStats,
        containers: Vec<(Found, CgroupStats)>,
        pods: BTreeMap<String, CgroupStats>,
    ) -> Collection {
        let window = self.deps.min_window;
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let mut live = HashSet::new();
        let mut observe = |key: String, stats: &CgroupStats| {
            let rate = stats.cpu.and_then(|cpu| rates.observe(&key, at, cpu.usage_nanos, window));
            live.insert(key);
            Usage { stats: *stats, cpu_rate: rate }
        };
        let node = NodeSample {
            name: self.deps.node_name.clone(),
            memory_capacity_bytes: self.deps.memory_capacity_bytes,
            usage: observe("node".into(), &node_stats),
        };
        let mut by_pod: BTreeMap<String, PodSample> = BTreeMap::new();
        for (f, stats) in containers {
            let usage = observe(format!("container/{}", f.id), &stats);
            let pod = by_pod.entry(f.uid.clone()).or_insert_with(|| PodSample {
                start_time: self
                    .deps
                    .registry
                    .find(&f.namespace, &f.pod)
                    .and_then(|p| p.status.as_ref()?.start_time.as_ref().map(|t| t.0)),
                cgroup: pods.get(&f.uid).map(|s| observe(format!("pod/{}", f.uid), s)),
                namespace: f.namespace,
                name: f.pod,
                uid: f.uid,
                containers: Vec::new(),
            });
            pod.containers.push(ContainerSample { name: f.name, id: f.id, start_time: f.created, usage });
        }
        rates.retain(&live);
        let mut pods: Vec<PodSample> = by_pod.into_values().collect();
        for pod in &mut pods {
            pod.containers.sort_by(|a, b| a.name.cmp(&b.name));
        }
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Collection { at, node, pods }
    }

    /// Collects every `period` so rates are ready when asked, until `token` is cancelled.
    pub async fn run(self: Arc<Self>, period: Duration, token: CancellationToken) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(error) = self.collect().await {
                tracing::warn!(%error, "stats collection failed");
            }
        }
    }
}

type Reads = (Result<CgroupStats, cgstats::Error>, Vec<(Found, CgroupStats)>, BTreeMap<String, CgroupStats>);

/// The blocking part: every cgroup read of one collection. A container or
/// pod whose cgroup cannot be read is left out (it is usually going away).
/// Cgroups not read this time are forgotten by the reader.
fn read_all(
    reader: &mut StatsReader,
    root: &CgroupDirs,
    found: Vec<Found>,
    pod_dirs: BTreeMap<String, Option<CgroupDirs>>,
) -> Reads {
    let node = reader.read(root);
    let containers = found
        .into_iter()
        .filter_map(|f| match reader.read(&f.dirs) {
            Ok(stats) if stats.cpu.is_some() || stats.memory.is_some() => Some((f, stats)),
            Ok(_) => None,
            Err(error) => {
                tracing::debug!(%error, container = %f.id, "stats: container cgroup unreadable");
                None
            }
        })
        .collect();
    let pods = pod_dirs.into_iter().filter_map(|(uid, dirs)| Some((uid, reader.read(&dirs?).ok()?))).collect();
    reader.sweep();
    (node, containers, pods)
}
