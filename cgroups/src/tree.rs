//! The node's pod cgroup tree, as the kubelet's QoS and pod container
//! managers build it:
//!
//! ```text
//! <root>/kubepods                 node allocatable (shares, memory)
//! <root>/kubepods/pod<uid>        Guaranteed pods
//! <root>/kubepods/burstable       shares = sum of its pods' cpu requests
//! <root>/kubepods/burstable/pod<uid>
//! <root>/kubepods/besteffort      shares = 2
//! <root>/kubepods/besteffort/pod<uid>
//! ```
//!
//! The pod cgroup's absolute path is the sandbox's CRI `cgroup_parent`, so
//! the runtime creates the containers' cgroups inside it. Decisions (which
//! pod cgroups are orphans) are pure; [`NodeTree`] applies through a
//! [`CgroupDriver`].

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::driver::CgroupDriver;
use crate::error::Result;
use crate::limits::{Limits, MIN_SHARES};
use crate::name::{CgroupName, Naming, QosClass};

/// A pod cgroup found on disk.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodCgroup {
    /// The pod's uid.
    pub uid: String,
    /// The QoS class whose cgroup holds it.
    pub qos: QosClass,
}

/// The pod cgroups of `found` whose pod is not in `keep` (pure).
pub fn orphans(found: &[PodCgroup], keep: &BTreeSet<String>) -> Vec<PodCgroup> {
    found.iter().filter(|p| !keep.contains(&p.uid)).cloned().collect()
}

/// The QoS classes, in the order their pod cgroups are searched.
const CLASSES: [QosClass; 3] = [QosClass::Guaranteed, QosClass::Burstable, QosClass::BestEffort];

/// The node's pod cgroup tree on one driver.
#[derive(Debug, Clone)]
pub struct NodeTree {
    driver: Arc<dyn CgroupDriver>,
    naming: Naming,
    root: CgroupName,
}

impl NodeTree {
    /// The tree under `root` (the kubelet's `cgroupRoot`, `/` by default),
    /// named by `naming`, written through `driver`.
    pub fn new(driver: Arc<dyn CgroupDriver>, naming: Naming, root: &str) -> Self {
        Self { driver, naming, root: CgroupName::root(root) }
    }

    /// The driver.
    pub fn driver(&self) -> &Arc<dyn CgroupDriver> {
        &self.driver
    }

    /// The path of `name` relative to a hierarchy's root.
    pub fn relative(&self, name: &CgroupName) -> String {
        self.naming.relative(name)
    }

    /// The relative path of the cgroup of QoS class `qos`.
    pub fn qos_path(&self, qos: QosClass) -> String {
        self.relative(&CgroupName::qos(&self.root, qos))
    }

    /// The relative path of pod `uid`'s cgroup.
    pub fn pod_path(&self, qos: QosClass, uid: &str) -> String {
        self.relative(&CgroupName::pod(&self.root, qos, uid))
    }

    /// The absolute path of pod `uid`'s cgroup: the sandbox's `cgroup_parent`.
    pub fn cgroup_parent(&self, qos: QosClass, uid: &str) -> String {
        self.naming.path(&CgroupName::pod(&self.root, qos, uid))
    }

    /// Creates `kubepods` with `kubepods` limits (node allocatable) and the
    /// Burstable and BestEffort cgroups (BestEffort with the minimum shares).
    pub fn ensure_top(&self, kubepods: &Limits) -> Result<()> {
        let top = self.qos_path(QosClass::Guaranteed);
        self.driver.create(&top)?;
        self.driver.apply(&top, kubepods)?;
        self.driver.create(&self.qos_path(QosClass::Burstable))?;
        let besteffort = self.qos_path(QosClass::BestEffort);
        self.driver.create(&besteffort)?;
        self.driver.apply(&besteffort, &Limits { cpu_shares: Some(MIN_SHARES), ..Limits::default() })
    }

    /// Writes the Burstable cgroup's limits (its shares follow its pods).
    pub fn set_burstable(&self, limits: &Limits) -> Result<()> {
        self.driver.apply(&self.qos_path(QosClass::Burstable), limits)
    }

    /// Creates pod `uid`'s cgroup in class `qos` with `limits`; returns its `cgroup_parent`.
    pub fn ensure_pod(&self, uid: &str, qos: QosClass, limits: &Limits) -> Result<String> {
        let path = self.pod_path(qos, uid);
        self.driver.create(&path)?;
        self.driver.apply(&path, limits)?;
        Ok(self.cgroup_parent(qos, uid))
    }

    /// Removes pod `uid`'s cgroup (and any container cgroups left in it),
    /// wherever its class put it.
    pub fn remove_pod(&self, uid: &str) -> Result<()> {
        for qos in CLASSES {
            self.driver.remove(&self.pod_path(qos, uid))?;
        }
        Ok(())
    }

    /// Whether pod `uid` has a cgroup.
    pub fn has_pod(&self, uid: &str) -> bool {
        CLASSES.iter().any(|qos| self.driver.exists(&self.pod_path(*qos, uid)))
    }

    /// The relative path of pod `uid`'s cgroup, in whichever class holds it.
    pub fn find_pod(&self, uid: &str) -> Option<String> {
        CLASSES.iter().map(|qos| self.pod_path(*qos, uid)).find(|path| self.driver.exists(path))
    }

    /// The pod cgroups on disk.
    pub fn pods(&self) -> Result<Vec<PodCgroup>> {
        let mut found = Vec::new();
        for qos in CLASSES {
            for dir in self.driver.children(&self.qos_path(qos))? {
                if let Some(uid) = self.naming.pod_uid(&dir) {
                    found.push(PodCgroup { uid, qos });
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// Removes the pod cgroups of pods not in `keep` (left by a crash or a
    /// pod removed while the agent was down); returns what it removed.
    /// A removal that fails (a cgroup still busy) is reported and skipped.
    pub fn remove_orphans(&self, keep: &BTreeSet<String>) -> Result<Vec<PodCgroup>> {
        let mut removed = Vec::new();
        for orphan in orphans(&self.pods()?, keep) {
            self.driver.remove(&self.pod_path(orphan.qos, &orphan.uid))?;
            removed.push(orphan);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeDriver, Op};

    fn tree() -> (Arc<FakeDriver>, NodeTree) {
        let fake = Arc::new(FakeDriver::default());
        (fake.clone(), NodeTree::new(fake, Naming::Cgroupfs, "/"))
    }

    #[test]
    fn builds_the_qos_tree_with_allocatable_on_kubepods() {
        let (fake, tree) = tree();
        let allocatable = Limits { cpu_shares: Some(2048), memory_bytes: Some(1 << 30), ..Limits::default() };
        tree.ensure_top(&allocatable).expect("top");
        assert_eq!(
            fake.ops(),
            vec![
                Op::Create("kubepods".into()),
                Op::Apply("kubepods".into(), allocatable),
                Op::Create("kubepods/burstable".into()),
                Op::Create("kubepods/besteffort".into()),
                Op::Apply("kubepods/besteffort".into(), Limits { cpu_shares: Some(2), ..Limits::default() }),
            ]
        );
    }

    #[test]
    fn places_each_class_and_returns_the_cgroup_parent() {
        let (fake, tree) = tree();
        let limits = Limits { cpu_shares: Some(102), ..Limits::default() };
        for (qos, parent) in [
            (QosClass::Guaranteed, "/kubepods/podg"),
            (QosClass::Burstable, "/kubepods/burstable/podb"),
            (QosClass::BestEffort, "/kubepods/besteffort/pode"),
        ] {
            let uid = &parent[parent.len() - 1..];
            assert_eq!(tree.ensure_pod(uid, qos, &limits).expect("pod"), parent);
            assert!(fake.ops().contains(&Op::Apply(parent[1..].to_string(), limits)), "{parent}");
        }
        assert_eq!(
            tree.pods().expect("pods"),
            vec![
                PodCgroup { uid: "b".into(), qos: QosClass::Burstable },
                PodCgroup { uid: "e".into(), qos: QosClass::BestEffort },
                PodCgroup { uid: "g".into(), qos: QosClass::Guaranteed },
            ]
        );
        tree.remove_pod("b").expect("remove");
        assert!(!tree.has_pod("b"));
        assert!(tree.has_pod("g"));
    }

    #[test]
    fn orphans_are_the_pods_not_kept() {
        let found = vec![
            PodCgroup { uid: "a".into(), qos: QosClass::Burstable },
            PodCgroup { uid: "b".into(), qos: QosClass::Guaranteed },
            PodCgroup { uid: "c".into(), qos: QosClass::BestEffort },
        ];
        let cases: [(&[&str], &[&str]); 3] =
            [(&[], &["a", "b", "c"]), (&["a", "c"], &["b"]), (&["a", "b", "c", "z"], &[])];
        for (keep, want) in cases {
            let keep: BTreeSet<String> = keep.iter().map(|s| s.to_string()).collect();
            let got: Vec<String> = orphans(&found, &keep).into_iter().map(|p| p.uid).collect();
            assert_eq!(got, want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "keep {keep:?}");
        }
    }

    #[test]
    fn removes_orphans_at_start_and_keeps_known_pods() {
        let (_fake, tree) = tree();
        tree.ensure_top(&Limits::default()).expect("top");
        tree.ensure_pod("live", QosClass::Burstable, &Limits::default()).expect("live");
        tree.ensure_pod("dead", QosClass::Guaranteed, &Limits::default()).expect("dead");
        let removed = tree.remove_orphans(&BTreeSet::from(["live".to_string()])).expect("sweep");
        assert_eq!(removed, vec![PodCgroup { uid: "dead".into(), qos: QosClass::Guaranteed }]);
        assert!(tree.has_pod("live") && !tree.has_pod("dead"));
        assert!(tree.driver().exists("kubepods/burstable"), "QoS cgroups are no orphans");
    }

    #[test]
    fn works_on_a_temp_dir_cgroupfs_with_systemd_names() {
        let root = tempfile::tempdir().expect("temp");
        for dir in ["memory", "cpu"] {
            std::fs::create_dir(root.path().join(dir)).expect("hierarchy");
            std::fs::write(root.path().join(dir).join("cgroup.procs"), "").expect("cgroup.procs");
        }
        let backend = crate::driver::Backend::detect(root.path()).expect("v1");
        let tree = NodeTree::new(Arc::new(backend), Naming::Systemd, "/");
        tree.ensure_top(&Limits::default()).expect("top");
        let parent = tree
            .ensure_pod("1-2", QosClass::BestEffort, &Limits { cpu_shares: Some(2), ..Limits::default() })
            .expect("pod");
        assert_eq!(parent, "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1_2.slice");
        let shares = root.path().join("cpu").join(&parent[1..]).join("cpu.shares");
        assert_eq!(std::fs::read_to_string(shares).expect("shares"), "2");
        assert_eq!(tree.pods().expect("pods"), vec![PodCgroup { uid: "1-2".into(), qos: QosClass::BestEffort }]);
        tree.remove_orphans(&BTreeSet::new()).expect("sweep");
        assert!(tree.pods().expect("pods").is_empty());
    }
}
