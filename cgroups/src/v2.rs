//! cgroup v2: one unified hierarchy. Creating a cgroup enables the `cpu`,
//! `memory` and `pids` controllers (those the parent offers in
//! `cgroup.controllers`) in each parent's `cgroup.subtree_control`; limits go
//! to `cpu.weight` (from shares), `cpu.max`, `memory.max` and `pids.max`
//! through the controllers of `cgroups-rs`.

use std::path::{Path, PathBuf};

use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::MaxValue;

use crate::driver::{child_dirs, remove_tree};
use crate::error::{Error, Result};
use crate::limits::{shares_to_weight, Limits};

/// The controllers the pod tree enables for its children.
const DELEGATED: &[&str] = &["cpu", "cpuset", "memory", "pids", "io", "hugetlb"];

/// The v2 backend over one unified hierarchy.
#[derive(Debug, Clone)]
pub struct V2 {
    root: PathBuf,
}

impl V2 {
    /// The backend for the unified hierarchy mounted at `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Enables in `dir`'s `cgroup.subtree_control` the delegated controllers
    /// `dir` has (its `cgroup.controllers`) and has not enabled yet.
    fn enable_controllers(dir: &Path) -> Result<()> {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let available = read("cgroup.controllers");
        let enabled = read("cgroup.subtree_control");
        let wanted: Vec<String> = available
            .split_whitespace()
            .filter(|c| DELEGATED.contains(c) && !enabled.split_whitespace().any(|e| e == *c))
            .map(|c| format!("+{c}"))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let path = dir.join("cgroup.subtree_control");
        std::fs::write(&path, wanted.join(" ")).map_err(|source| Error::File { path, source })
    }

    pub(crate) fn create(&self, path: &str) -> Result<()> {
        let mut dir = self.root.clone();
        for component in path.split('/').filter(|c| !c.is_empty()) {
            Self::enable_controllers(&dir)?;
            dir.push(component);
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(Error::File { path: dir, source }),
            }
        }
        Ok(())
    }

    pub(crate) fn apply(&self, path: &str, limits: &Limits) -> Result<()> {
        let dir = self.root.join(path);
        let write_err = |file: &'static str, value: String| {
            let path = path.to_string();
            move |source| Error::Write { path, file, value, source: Box::new(source) }
        };
        let cpu = CpuController::new(dir.clone(), self.root.clone(), true);
        if let Some(shares) = limits.cpu_shares {
            let weight = shares_to_weight(shares);
            cpu.set_shares(weight).map_err(write_err("cpu.weight", weight.to_string()))?;
        }
        if limits.cpu_quota_us.is_some() || limits.cpu_period_us.is_some() {
            let value = format!("{:?} {:?}", limits.cpu_quota_us, limits.cpu_period_us);
            cpu.set_cfs_quota_and_period(limits.cpu_quota_us, limits.cpu_period_us)
                .map_err(write_err("cpu.max", value))?;
        }
        if let Some(bytes) = limits.memory_bytes {
            let memory = MemController::new(dir.clone(), self.root.clone(), true);
            memory.set_limit(bytes).map_err(write_err("memory.max", bytes.to_string()))?;
        }
        if let Some(max) = limits.pids_max {
            let pids = PidController::new(dir, self.root.clone(), true);
            let value = if max < 0 { MaxValue::Max } else { MaxValue::Value(max) };
            pids.set_pid_max(value).map_err(write_err("pids.max", max.to_string()))?;
        }
        Ok(())
    }

    pub(crate) fn remove(&self, path: &str) -> Result<()> {
        if path.trim_matches('/').is_empty() {
            return Ok(());
        }
        remove_tree(&self.root.join(path))
    }

    pub(crate) fn children(&self, path: &str) -> Result<Vec<String>> {
        child_dirs(&self.root.join(path))
    }

    pub(crate) fn dirs(&self, path: &str) -> Vec<PathBuf> {
        vec![self.root.join(path)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{Backend, CgroupDriver};

    /// A temp-dir unified hierarchy; the kernel's files a write needs to
    /// read first (`cpu.max`) are created as the kernel would show them.
    fn fake_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::write(root.path().join("cgroup.controllers"), "cpuset cpu io memory hugetlb pids rdma misc\n")
            .expect("controllers");
        root
    }

    #[test]
    fn creates_enables_controllers_writes_limits_and_removes() {
        let root = fake_root();
        let backend = Backend::detect(root.path()).expect("detect");
        assert_eq!(backend.version(), "v2");
        let path = "kubepods/burstable/podu1";
        backend.create(path).expect("create");
        assert!(root.path().join(path).is_dir());
        let subtree = std::fs::read_to_string(root.path().join("cgroup.subtree_control")).expect("subtree");
        assert_eq!(subtree, "+cpuset +cpu +io +memory +hugetlb +pids");
        std::fs::write(root.path().join(path).join("cpu.max"), "max 100000\n").expect("cpu.max");
        let limits = Limits {
            cpu_shares: Some(1024),
            cpu_quota_us: Some(50_000),
            cpu_period_us: Some(100_000),
            memory_bytes: Some(64 << 20),
            pids_max: Some(-1),
        };
        backend.apply(path, &limits).expect("apply");
        let read = |file: &str| std::fs::read_to_string(root.path().join(path).join(file)).expect(file);
        assert_eq!(read("cpu.weight"), "39");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("pids.max"), "max");
        let unlimited = Limits { memory_bytes: Some(-1), cpu_quota_us: Some(-1), ..Limits::default() };
        backend.apply(path, &unlimited).expect("apply unlimited");
        assert_eq!(read("memory.max"), "max");
        assert_eq!(read("cpu.max"), "max 100000");
        assert_eq!(backend.children("kubepods").expect("children"), vec!["burstable".to_string()]);
        backend.remove("kubepods").expect("remove");
        assert!(!backend.exists("kubepods"));
        assert!(root.path().is_dir(), "the root stays");
    }
}
