//! cgroup v1: one hierarchy per controller (or per group of controllers,
//! `cpu,cpuacct`), found as the directories below the cgroupfs root. A
//! cgroup is created in every hierarchy (as the kubelet does, so runc finds
//! its parent everywhere and removal is complete); limits go to `cpu`
//! (`cpu.shares`, `cpu.cfs_period_us`, `cpu.cfs_quota_us`), `memory`
//! (`memory.limit_in_bytes`) and `pids` (`pids.max`), through the
//! controllers of `cgroups-rs`.

use std::path::{Path, PathBuf};

use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{
    blkio::BlkIoController, cpuacct::CpuAcctController, cpuset::CpuSetController, devices::DevicesController,
    freezer::FreezerController, hugetlb::HugeTlbController, net_cls::NetClsController, net_prio::NetPrioController,
    perf_event::PerfEventController, rdma::RdmaController, systemd::SystemdController, MaxValue, Subsystem,
};

use crate::driver::{child_dirs, remove_tree};
use crate::error::{Error, Result};
use crate::limits::Limits;

/// The v1 controller names this backend knows, as their directories are named.
const CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "pids",
    "devices",
    "freezer",
    "blkio",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "systemd",
    UNIFIED,
];

/// The cgroup v2 hierarchy of a hybrid host, mounted beside the v1 ones
/// without controllers; runc creates every cgroup there too, so the tree
/// creates and removes its cgroups there as well.
const UNIFIED: &str = "unified";

/// The file every cgroup, a hierarchy's root included, has.
const PROCS: &str = "cgroup.procs";

/// One mounted hierarchy: its directory and the controllers it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// The hierarchy's root directory (`/sys/fs/cgroup/memory`).
    pub dir: PathBuf,
    /// Its controllers (`["cpu", "cpuacct"]` for `cpu,cpuacct`).
    pub controllers: Vec<String>,
}

/// The v1 backend over the hierarchies below one cgroupfs root.
#[derive(Debug, Clone)]
pub struct V1 {
    hierarchies: Vec<Hierarchy>,
}

impl V1 {
    /// The hierarchies below `root`: every real directory (symlinks such as
    /// `cpu -> cpu,cpuacct` are skipped) whose name lists known controllers
    /// and that is a mounted hierarchy (it has `cgroup.procs`). systemd as
    /// PID 1 makes a directory for each group it wants (`cpu,cpuacct`) even
    /// where the kernel keeps those controllers in hierarchies of their own
    /// (`cpu`, `cpuacct`) and the mount fails: that empty directory is no
    /// hierarchy, and cgroups cannot be made in it.
    pub fn detect(root: &Path) -> Result<Self> {
        let mut hierarchies = Vec::new();
        for name in child_dirs(root)? {
            let dir = root.join(&name);
            let is_link = std::fs::symlink_metadata(&dir).map(|m| m.file_type().is_symlink()).unwrap_or(true)
                || !dir.join(PROCS).is_file();
            let controllers: Vec<String> = name
                .split(',')
                .map(|c| c.trim_start_matches("name="))
                .filter(|c| CONTROLLERS.contains(c))
                .map(str::to_string)
                .collect();
            if !is_link && !controllers.is_empty() {
                hierarchies.push(Hierarchy { dir, controllers });
            }
        }
        if hierarchies.is_empty() {
            return Err(Error::NoHierarchy { root: root.to_path_buf() });
        }
        Ok(Self { hierarchies })
    }

    /// The hierarchies found.
    pub fn hierarchies(&self) -> &[Hierarchy] {
        &self.hierarchies
    }

    fn hierarchy_of(&self, controller: &str) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.controllers.iter().any(|c| c == controller))
    }

    /// The `cgroups-rs` controller of `controller` for the cgroup at `dir` of hierarchy `base`.
    fn subsystem(controller: &str, dir: PathBuf, base: PathBuf) -> Option<Subsystem> {
        Some(match controller {
            "cpu" => Subsystem::Cpu(CpuController::new(dir, base, false)),
            "cpuacct" => Subsystem::CpuAcct(CpuAcctController::new(dir, base)),
            "cpuset" => Subsystem::CpuSet(CpuSetController::new(dir, base, false)),
            "memory" => Subsystem::Mem(MemController::new(dir, base, false)),
            "pids" => Subsystem::Pid(PidController::new(dir, base, false)),
            "devices" => Subsystem::Devices(DevicesController::new(dir, base)),
            "freezer" => Subsystem::Freezer(FreezerController::new(dir, base, false)),
            "blkio" => Subsystem::BlkIo(BlkIoController::new(dir, base, false)),
            "hugetlb" => Subsystem::HugeTlb(HugeTlbController::new(dir, base, false)),
            "net_cls" => Subsystem::NetCls(NetClsController::new(dir, base)),
            "net_prio" => Subsystem::NetPrio(NetPrioController::new(dir, base)),
            "perf_event" => Subsystem::PerfEvent(PerfEventController::new(dir, base)),
            "rdma" => Subsystem::Rdma(RdmaController::new(dir, base)),
            "systemd" => Subsystem::Systemd(SystemdController::new(dir, base, false)),
            _ => return None,
        })
    }

    pub(crate) fn create(&self, path: &str) -> Result<()> {
        for h in &self.hierarchies {
            // Parents first, so cpuset's post-create copies cpus/mems down one level at a time.
            let mut dir = h.dir.clone();
            for component in path.split('/').filter(|c| !c.is_empty()) {
                dir.push(component);
                if dir.is_dir() {
                    continue;
                }
                let Some(sub) = Self::subsystem(&h.controllers[0], dir.clone(), h.dir.clone()) else {
                    std::fs::create_dir_all(&dir).map_err(|source| Error::File { path: dir.clone(), source })?;
                    continue;
                };
                sub.to_controller()
                    .create()
                    .map_err(|source| Error::Create { path: dir.display().to_string(), source: Box::new(source) })?;
            }
        }
        Ok(())
    }

    pub(crate) fn apply(&self, path: &str, limits: &Limits) -> Result<()> {
        let write_err = |file: &'static str, value: String| {
            let path = path.to_string();
            move |source| Error::Write { path, file, value, source: Box::new(source) }
        };
        if let Some(h) = self.hierarchy_of("cpu") {
            let cpu = CpuController::new(h.dir.join(path), h.dir.clone(), false);
            if let Some(shares) = limits.cpu_shares {
                cpu.set_shares(shares).map_err(write_err("cpu.shares", shares.to_string()))?;
            }
            // The period first: the kernel checks a quota against the period in force.
            if let Some(period) = limits.cpu_period_us {
                cpu.set_cfs_period(period).map_err(write_err("cpu.cfs_period_us", period.to_string()))?;
            }
            if let Some(quota) = limits.cpu_quota_us {
                cpu.set_cfs_quota(quota).map_err(write_err("cpu.cfs_quota_us", quota.to_string()))?;
            }
        }
        if let (Some(bytes), Some(h)) = (limits.memory_bytes, self.hierarchy_of("memory")) {
            let memory = MemController::new(h.dir.join(path), h.dir.clone(), false);
            memory.set_limit(bytes).map_err(write_err("memory.limit_in_bytes", bytes.to_string()))?;
        }
        if let (Some(max), Some(h)) = (limits.pids_max, self.hierarchy_of("pids")) {
            let pids = PidController::new(h.dir.join(path), h.dir.clone(), false);
            let value = if max < 0 { MaxValue::Max } else { MaxValue::Value(max) };
            pids.set_pid_max(value).map_err(write_err("pids.max", max.to_string()))?;
        }
        Ok(())
    }

    pub(crate) fn remove(&self, path: &str) -> Result<()> {
        if path.trim_matches('/').is_empty() {
            return Ok(());
        }
        for h in &self.hierarchies {
            remove_tree(&h.dir.join(path))?;
        }
        Ok(())
    }

    pub(crate) fn children(&self, path: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for h in &self.hierarchies {
            names.extend(child_dirs(&h.dir.join(path))?);
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    pub(crate) fn dirs(&self, path: &str) -> Vec<PathBuf> {
        self.hierarchies.iter().map(|h| h.dir.join(path)).collect()
    }

    /// The directory of `path` in the hierarchy of `controller` (`memory`, `cpu`, ...).
    pub fn dir_of(&self, controller: &str, path: &str) -> Option<PathBuf> {
        self.hierarchy_of(controller).map(|h| h.dir.join(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{Backend, CgroupDriver};

    fn fake_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("temp dir");
        for dir in ["cpu,cpuacct", "memory", "pids", "unified", "cpuset", "misc"] {
            std::fs::create_dir(root.path().join(dir)).expect("hierarchy");
            std::fs::write(root.path().join(dir).join(PROCS), "").expect("cgroup.procs");
        }
        // What systemd leaves where the kernel has net_cls and net_prio apart.
        std::fs::create_dir(root.path().join("net_cls,net_prio")).expect("empty directory");
        std::os::unix::fs::symlink(root.path().join("cpu,cpuacct"), root.path().join("cpu")).expect("link");
        std::fs::write(root.path().join("cpuset/cpuset.cpus"), "0-1").expect("cpus");
        std::fs::write(root.path().join("cpuset/cpuset.mems"), "0").expect("mems");
        root
    }

    #[test]
    fn finds_hierarchies_and_skips_links_unknown_and_unmounted_directories() {
        let root = fake_root();
        let v1 = V1::detect(root.path()).expect("v1");
        let names: Vec<Vec<String>> = v1.hierarchies().iter().map(|h| h.controllers.clone()).collect();
        assert_eq!(
            names,
            vec![
                vec!["cpu".to_string(), "cpuacct".into()],
                vec!["cpuset".into()],
                vec!["memory".into()],
                vec!["pids".into()],
                vec!["unified".into()]
            ]
        );
        assert!(V1::detect(tempfile::tempdir().expect("temp").path()).is_err(), "an empty root has no hierarchy");
    }

    #[test]
    fn creates_in_every_hierarchy_writes_limits_and_removes() {
        let root = fake_root();
        let backend = Backend::detect(root.path()).expect("detect");
        assert_eq!(backend.version(), "v1");
        let path = "kubepods/burstable/podu1";
        backend.create(path).expect("create");
        for h in ["cpu,cpuacct", "memory", "pids", "cpuset", "unified"] {
            assert!(root.path().join(h).join(path).is_dir(), "{h}");
        }
        let limits = Limits {
            cpu_shares: Some(102),
            cpu_quota_us: Some(10_000),
            cpu_period_us: Some(100_000),
            memory_bytes: Some(64 << 20),
            pids_max: Some(100),
        };
        backend.apply(path, &limits).expect("apply");
        let read = |file: &str| {
            std::fs::read_to_string(root.path().join(file).to_str().expect("utf-8").replace("@", path)).expect(file)
        };
        assert_eq!(read("cpu,cpuacct/@/cpu.shares"), "102");
        assert_eq!(read("cpu,cpuacct/@/cpu.cfs_quota_us"), "10000");
        assert_eq!(read("cpu,cpuacct/@/cpu.cfs_period_us"), "100000");
        assert_eq!(read("memory/@/memory.limit_in_bytes"), (64u64 << 20).to_string());
        assert_eq!(read("pids/@/pids.max"), "100");
        assert_eq!(backend.children("kubepods/burstable").expect("children"), vec!["podu1".to_string()]);
        backend.remove(path).expect("remove");
        assert!(!backend.exists(path));
        backend.remove(path).expect("removing again is fine");
        assert!(backend.exists("kubepods/burstable"), "parents stay");
    }
}
