//! The agent's side of the pod cgroup tree (`bosun-cgroups`): at start it
//! builds `kubepods` (limited to node allocatable) and the QoS cgroups and
//! removes pod cgroups no pod owns; before a pod's sandbox is created it
//! creates the pod's cgroup with the limits of its spec, and the sandbox's
//! CRI `cgroup_parent` points there (containerd puts the containers inside,
//! with their own limits from the container config); when the pod goes its
//! cgroup goes. The Burstable cgroup's shares follow its pods' requests.
//!
//! Decisions are pure ([`kubepods_limits`], `bosun_cgroups::pod_limits`); the
//! file writes run on the blocking pool. With `cgroupsPerQOS: false` (or no
//! writable cgroupfs) every call is a no-op and pods keep the runtime's
//! default cgroup.

pub mod config;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use bosun_cgroups::pod_limits::{burstable_shares, pod_cpu_request_milli};
use bosun_cgroups::{Backend, Limits, NodeTree, PodLimitOptions, QosClass};
use bosun_proto::cri as api;
use k8s_openapi::api::core::v1::Pod;

use self::config::{CgroupSettings, Reserved};

/// Where the host's cgroupfs is mounted.
pub const CGROUPFS: &str = "/sys/fs/cgroup";

/// A cgroup step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A quantity of the pod's spec did not parse.
    #[error("pod {uid}: {source}")]
    Quantity {
        /// The pod.
        uid: String,
        /// The failure.
        source: bosun_resources::QuantityError,
    },
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] bosun_cgroups::Error),
    /// The blocking task died.
    #[error("cgroup task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The limits of `kubepods`: what the node's capacity leaves after the
/// reservations (upstream enforces allocatable on `kubepods` without the
/// eviction threshold, which stays usable for the node to react).
pub fn kubepods_limits(capacity_cpu_milli: i64, capacity_memory_bytes: i64, reserved: Reserved) -> Limits {
    let cpu = capacity_cpu_milli.saturating_sub(reserved.cpu_milli).max(0);
    let memory = capacity_memory_bytes.saturating_sub(reserved.memory_bytes).max(0);
    Limits {
        cpu_shares: Some(bosun_cgroups::limits::shares_from_millis(cpu)),
        memory_bytes: (memory > 0).then_some(memory),
        ..Limits::default()
    }
}

/// The QoS class of `pod` (upstream's, from `bosun-resources`).
pub fn qos_of(pod: &Pod) -> QosClass {
    QosClass::parse(bosun_resources::pod_qos_class(pod.spec.as_ref()))
}

fn uid_of(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

struct Inner {
    tree: NodeTree,
    options: PodLimitOptions,
    /// cpu requests (millicores) of the Burstable pods with a cgroup.
    burstable: Mutex<BTreeMap<String, i64>>,
}

impl Inner {
    fn burstable(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, i64>> {
        self.burstable.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the Burstable cgroup's shares from the pods it holds.
    fn write_burstable_shares(&self) -> Result<(), Error> {
        let shares = burstable_shares(self.burstable().values().copied());
        self.tree.set_burstable(&Limits { cpu_shares: Some(shares), ..Limits::default() })?;
        Ok(())
    }
}

/// The node's pod cgroups (cheap to clone).
#[derive(Clone, Default)]
pub struct PodCgroups {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for PodCgroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodCgroups").field("enabled", &self.inner.is_some()).finish()
    }
}

impl PodCgroups {
    /// Pods keep the runtime's default cgroup.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Builds the tree on the cgroupfs at `cgroupfs` (blocking): `kubepods`
    /// limited by `kubepods`, the QoS cgroups. Disabled when `settings` say so.
    pub fn start(settings: &CgroupSettings, cgroupfs: &Path, kubepods: &Limits) -> Result<Self, Error> {
        if !settings.per_qos {
            return Ok(Self::disabled());
        }
        let backend = Backend::detect(cgroupfs)?;
        tracing::info!(version = backend.version(), naming = ?settings.naming, root = %settings.root, "pod cgroups");
        let tree = NodeTree::new(Arc::new(backend), settings.naming, &settings.root);
        tree.ensure_top(kubepods)?;
        let options = PodLimitOptions { pod_pids_limit: settings.pod_pids_limit, ..PodLimitOptions::default() };
        Ok(Self { inner: Some(Arc::new(Inner { tree, options, burstable: Mutex::default() })) })
    }

    /// Whether pods get cgroups.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The tree (`None` when disabled).
    pub fn tree(&self) -> Option<&NodeTree> {
        self.inner.as_ref().map(|i| &i.tree)
    }

    /// The sandbox `cgroup_parent` of `pod` (`None` when disabled).
    pub fn cgroup_parent(&self, pod: &Pod) -> Option<String> {
        self.inner.as_ref().map(|i| i.tree.cgroup_parent(qos_of(pod), uid_of(pod)))
    }

    /// Sets `config`'s `cgroup_parent` to `pod`'s cgroup (no-op when disabled).
    pub fn set_parent(&self, pod: &Pod, config: &mut api::PodSandboxConfig) {
        if let (Some(parent), Some(linux)) = (self.cgroup_parent(pod), config.linux.as_mut()) {
            linux.cgroup_parent = parent;
        }
    }

    /// Creates `pod`'s cgroup with the limits of its spec and sets `config`'s
    /// `cgroup_parent` to it (no-op when disabled).
    pub async fn prepare(&self, pod: &Pod, config: &mut api::PodSandboxConfig) -> Result<(), Error> {
        if let (Some(parent), Some(linux)) = (self.write(pod).await?, config.linux.as_mut()) {
            linux.cgroup_parent = parent;
        }
        Ok(())
    }

    /// Rewrites `pod`'s cgroup limits from its spec (after an in-place
    /// resize; no-op when disabled). The QoS class never changes on resize.
    pub async fn update_limits(&self, pod: &Pod) -> Result<(), Error> {
        self.write(pod).await.map(drop)
    }

    /// Creates or updates `pod`'s cgroup with the limits of its spec and the
    /// Burstable shares; its `cgroup_parent` (`None` when disabled).
    async fn write(&self, pod: &Pod) -> Result<Option<String>, Error> {
        let Some(inner) = self.inner.clone() else { return Ok(None) };
        let qos = qos_of(pod);
        let uid = uid_of(pod).to_string();
        let spec = pod.spec.clone().unwrap_or_default();
        let quantity = |source| Error::Quantity { uid: uid.clone(), source };
        let limits = bosun_cgroups::pod_limits(&spec, qos, inner.options).map_err(quantity)?;
        let request = pod_cpu_request_milli(&spec).map_err(quantity)?;
        let parent = tokio::task::spawn_blocking(move || -> Result<String, Error> {
            let parent = inner.tree.ensure_pod(&uid, qos, &limits)?;
            if qos == QosClass::Burstable {
                inner.burstable().insert(uid, request);
                inner.write_burstable_shares()?;
            }
            Ok(parent)
        })
        .await??;
        Ok(Some(parent))
    }

    /// The path of pod `uid`'s cgroup relative to a hierarchy's root, when
    /// it has one (for stats).
    pub fn pod_path(&self, uid: &str) -> Option<String> {
        let tree = self.tree()?;
        tree.find_pod(uid)
    }

    /// Removes pod `uid`'s cgroup (no-op when disabled); an error when it is
    /// still busy (the caller retries, or leaves it for the next sweep).
    pub async fn remove(&self, uid: &str) -> Result<(), Error> {
        let Some(inner) = self.inner.clone() else { return Ok(()) };
        let uid = uid.to_string();
        tokio::task::spawn_blocking(move || -> Result<(), Error> {
            inner.tree.remove_pod(&uid)?;
            if inner.burstable().remove(&uid).is_some() {
                inner.write_burstable_shares()?;
            }
            Ok(())
        })
        .await?
    }

    /// Removes the pod cgroups of pods not in `pods` (crash leftovers) and
    /// rewrites the Burstable shares from `pods` (no-op when disabled).
    pub async fn sweep(&self, pods: Vec<Arc<Pod>>) {
        let Some(inner) = self.inner.clone() else { return };
        let keep: BTreeSet<String> = pods.iter().map(|p| uid_of(p).to_string()).collect();
        let burstable: BTreeMap<String, i64> = pods
            .iter()
            .filter(|p| qos_of(p) == QosClass::Burstable)
            .map(|p| (uid_of(p).to_string(), pod_cpu_request_milli(&p.spec.clone().unwrap_or_default()).unwrap_or(0)))
            .collect();
        let result = tokio::task::spawn_blocking(move || -> Result<(), Error> {
            for orphan in inner.tree.remove_orphans(&keep)? {
                tracing::info!(uid = %orphan.uid, qos = orphan.qos.as_str(), "removed the cgroup of a pod that is gone");
            }
            *inner.burstable() = burstable;
            inner.write_burstable_shares()
        })
        .await;
        if let Err(error) = result.map_err(Error::from).and_then(|r| r) {
            tracing::warn!(%error, "pod cgroup sweep; the next sweep retries");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_cgroups::testing::{FakeDriver, Op};
    use bosun_cgroups::Naming;

    fn pod(uid: &str, resources: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": uid, "namespace": "default", "uid": uid},
            "spec": {"containers": [{"name": "c", "resources": resources}]}
        }))
        .expect("pod")
    }

    fn with_fake() -> (Arc<FakeDriver>, PodCgroups) {
        let fake = Arc::new(FakeDriver::default());
        let tree = NodeTree::new(fake.clone(), Naming::Cgroupfs, "/");
        tree.ensure_top(&Limits::default()).expect("top");
        let inner = Inner { tree, options: PodLimitOptions::default(), burstable: Mutex::default() };
        (fake, PodCgroups { inner: Some(Arc::new(inner)) })
    }

    fn sandbox() -> api::PodSandboxConfig {
        api::PodSandboxConfig { linux: Some(api::LinuxPodSandboxConfig::default()), ..Default::default() }
    }

    #[test]
    fn kubepods_gets_capacity_less_reservations() {
        let cases = [
            (2000, 4 << 30, Reserved::default(), 2048, Some(4i64 << 30)),
            (2000, 4 << 30, Reserved { cpu_milli: 500, memory_bytes: 1 << 30 }, 1536, Some(3 << 30)),
            (1000, 1 << 30, Reserved { cpu_milli: 5000, memory_bytes: 2 << 30 }, 2, None),
        ];
        for (cpu, memory, reserved, shares, bytes) in cases {
            let got = kubepods_limits(cpu, memory, reserved);
            assert_eq!((got.cpu_shares, got.memory_bytes), (Some(shares), bytes), "{reserved:?}");
        }
    }

    #[tokio::test]
    async fn prepares_pods_in_their_class_and_keeps_burstable_shares_in_step() {
        let (fake, cgroups) = with_fake();
        let mut config = sandbox();
        let burstable = pod("b1", serde_json::json!({"requests": {"cpu": "250m"}}));
        cgroups.prepare(&burstable, &mut config).await.expect("prepare");
        assert_eq!(config.linux.as_ref().map(|l| l.cgroup_parent.as_str()), Some("/kubepods/burstable/podb1"));
        let guaranteed = pod("g1", serde_json::json!({"limits": {"cpu": "1", "memory": "64Mi"}}));
        let mut config = sandbox();
        cgroups.prepare(&guaranteed, &mut config).await.expect("prepare");
        assert_eq!(config.linux.as_ref().map(|l| l.cgroup_parent.as_str()), Some("/kubepods/podg1"));
        let shares =
            |n: u64| Op::Apply("kubepods/burstable".into(), Limits { cpu_shares: Some(n), ..Limits::default() });
        assert!(fake.ops().contains(&shares(256)), "{:?}", fake.ops());
        cgroups.remove("b1").await.expect("remove");
        assert_eq!(fake.ops().last(), Some(&shares(2)));
        assert!(!fake.existing().contains("kubepods/burstable/podb1"));
        cgroups.sweep(vec![]).await;
        assert!(!fake.existing().contains("kubepods/podg1"), "the sweep removes pods that are gone");
    }

    #[tokio::test]
    async fn disabled_cgroups_change_nothing() {
        let cgroups = PodCgroups::disabled();
        let mut config = sandbox();
        cgroups.prepare(&pod("x", serde_json::json!({})), &mut config).await.expect("no-op");
        assert_eq!(config.linux.map(|l| l.cgroup_parent), Some(String::new()));
        assert_eq!(cgroups.cgroup_parent(&pod("x", serde_json::json!({}))), None);
    }
}
