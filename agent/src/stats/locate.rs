//! Where a pod's and a container's cgroups are. Behind a small trait so the
//! way of finding them can change without touching the provider: today the
//! container's cgroup is found from its main process (the runtime's verbose
//! `ContainerStatus` names the PID, `/proc/<pid>/cgroup` names the cgroup);
//! pods have no cgroup of their own yet, so pod usage is summed over the
//! containers. Once the agent makes pod cgroups, `pod` returns them.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;

use bosun_cgroups::stats::{parse, CgroupDirs, Hierarchy};

/// Finds cgroup directories.
#[async_trait::async_trait]
pub trait CgroupLocator: Send + Sync {
    /// The cgroup of a running container, `None` when it cannot be found
    /// (exited, or the runtime does not say).
    async fn container(&self, id: &str) -> Option<CgroupDirs>;
    /// The pod-level cgroup, `None` where pods have none.
    fn pod(&self, uid: &str) -> Option<CgroupDirs>;
    /// Drops what is remembered about containers not in `live`.
    fn forget_except(&self, live: &HashSet<String>);
}

/// The PID in containerd's verbose container info (`info` holds a JSON
/// document with `"pid": <n>`); `None` when absent or 0 (not running).
pub fn pid_from_info(info: &HashMap<String, String>) -> Option<u32> {
    let doc: serde_json::Value = serde_json::from_str(info.get("info")?).ok()?;
    let pid = doc.get("pid")?.as_u64()?;
    u32::try_from(pid).ok().filter(|p| *p > 0)
}

/// Finds a container's cgroup from its main process; remembers the answer
/// for the container's life (a container never changes cgroup).
pub struct CriPidLocator {
    cri: bosun_cri::CriClient,
    hierarchy: Hierarchy,
    proc_root: PathBuf,
    known: Mutex<HashMap<String, CgroupDirs>>,
    pods: crate::pod_cgroups::PodCgroups,
}

impl CriPidLocator {
    /// A locator asking `cri`, reading `<proc_root>/<pid>/cgroup`, with cgroup
    /// directories under `hierarchy`.
    pub fn new(cri: bosun_cri::CriClient, hierarchy: Hierarchy, proc_root: PathBuf) -> Self {
        Self { cri, hierarchy, proc_root, known: Mutex::new(HashMap::new()), pods: Default::default() }
    }

    /// Pod usage read from the pod cgroups of `pods` (without it, or for a
    /// pod without one, pod usage is the sum of its containers).
    pub fn with_pod_cgroups(mut self, pods: crate::pod_cgroups::PodCgroups) -> Self {
        self.pods = pods;
        self
    }

    fn remembered(&self, id: &str) -> Option<CgroupDirs> {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }
}

#[async_trait::async_trait]
impl CgroupLocator for CriPidLocator {
    async fn container(&self, id: &str) -> Option<CgroupDirs> {
        if let Some(dirs) = self.remembered(id) {
            return Some(dirs);
        }
        let info = match self.cri.container_info(id).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, container = id, "stats: no verbose container status");
                return None;
            }
        };
        let pid = pid_from_info(&info)?;
        let text = tokio::fs::read_to_string(self.proc_root.join(pid.to_string()).join("cgroup")).await.ok()?;
        let proc = parse::proc_cgroup(&text).ok()?;
        let dirs = self.hierarchy.dirs_of_process(&proc).ok()?;
        self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), dirs.clone());
        Some(dirs)
    }

    fn pod(&self, uid: &str) -> Option<CgroupDirs> {
        self.pods.pod_path(uid).map(|path| self.hierarchy.dirs(&path))
    }

    fn forget_except(&self, live: &HashSet<String>) {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).retain(|id, _| live.contains(id));
    }
}

/// Test doubles.
pub mod testing {
    use super::*;

    /// A locator answering from fixed maps.
    #[derive(Default)]
    pub struct FakeLocator {
        /// Container id -> cgroup.
        pub containers: HashMap<String, CgroupDirs>,
        /// Pod uid -> cgroup.
        pub pods: HashMap<String, CgroupDirs>,
        /// The cgroup of any container not in `containers`.
        pub any_container: Option<CgroupDirs>,
    }

    #[async_trait::async_trait]
    impl CgroupLocator for FakeLocator {
        async fn container(&self, id: &str) -> Option<CgroupDirs> {
            self.containers.get(id).or(self.any_container.as_ref()).cloned()
        }

        fn pod(&self, uid: &str) -> Option<CgroupDirs> {
            self.pods.get(uid).cloned()
        }

        fn forget_except(&self, _live: &HashSet<String>) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_comes_from_containerds_info_document() {
        let info = |doc: &str| HashMap::from([("info".to_string(), doc.to_string())]);
        let cases = [
            (info(r#"{"sandboxID":"s","pid":4242,"runtimeSpec":{}}"#), Some(4242)),
            (info(r#"{"pid":0}"#), None),
            (info(r#"{"pid":-1}"#), None),
            (info(r#"{"pid":99999999999}"#), None),
            (info("not json"), None),
            (info(r#"{"sandboxID":"s"}"#), None),
            (HashMap::new(), None),
        ];
        for (info, want) in cases {
            assert_eq!(pid_from_info(&info), want, "{info:?}");
        }
    }
}
