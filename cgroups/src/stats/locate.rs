//! Where a cgroup's files are: the hierarchy mounted under the cgroupfs root
//! (v1 per-controller mounts, with or without the hybrid `unified` mount, or
//! one v2 mount), and the directories of one cgroup in it.

use std::path::{Path, PathBuf};

use super::parse::ProcCgroup;
use super::{Error, Result};

/// The cgroup hierarchy under a cgroupfs root (normally `/sys/fs/cgroup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Legacy: one mount per controller (`<root>/memory`, `<root>/cpu`, ...).
    V1 {
        /// The cgroupfs root.
        root: PathBuf,
        /// True when a v2 hierarchy is mounted at `<root>/unified` (hybrid
        /// mode), which carries the pressure files.
        unified: bool,
    },
    /// Unified: every controller in one tree at the root.
    V2 {
        /// The cgroupfs root.
        root: PathBuf,
    },
}

/// The v1 directories of one cgroup, one per controller this module reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct V1Dirs {
    /// `cpu` controller (CFS throttling).
    pub cpu: PathBuf,
    /// `cpuacct` controller (usage).
    pub cpuacct: PathBuf,
    /// `memory` controller.
    pub memory: PathBuf,
    /// `pids` controller.
    pub pids: PathBuf,
    /// The cgroup's directory in the hybrid unified tree (pressure files).
    pub unified: Option<PathBuf>,
}

/// The directories of one cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CgroupDirs {
    /// A v1 cgroup: one directory per controller.
    V1(V1Dirs),
    /// A v2 cgroup: one directory.
    V2(PathBuf),
}

/// `root` joined with an absolute cgroup path (`/k8s.io/abc`).
fn under(root: &Path, path: &str) -> PathBuf {
    let relative = path.trim_start_matches('/');
    if relative.is_empty() {
        root.to_path_buf()
    } else {
        root.join(relative)
    }
}

impl Hierarchy {
    /// Looks at `root` to tell v2 (a `cgroup.controllers` file at the root)
    /// from v1, and whether a v1 host also mounts `unified`.
    pub fn detect(root: &Path) -> Self {
        if root.join("cgroup.controllers").exists() {
            return Self::V2 { root: root.to_path_buf() };
        }
        let unified = root.join("unified").join("cgroup.procs").exists();
        Self::V1 { root: root.to_path_buf(), unified }
    }

    /// The cgroup at `path` (absolute inside the hierarchy), the same path in
    /// every v1 controller, as runc creates it.
    pub fn dirs(&self, path: &str) -> CgroupDirs {
        match self {
            Self::V2 { root } => CgroupDirs::V2(under(root, path)),
            Self::V1 { root, unified } => CgroupDirs::V1(V1Dirs {
                cpu: under(&root.join("cpu"), path),
                cpuacct: under(&root.join("cpuacct"), path),
                memory: under(&root.join("memory"), path),
                pids: under(&root.join("pids"), path),
                unified: unified.then(|| under(&root.join("unified"), path)),
            }),
        }
    }

    /// The root cgroup (the whole node).
    pub fn root_dirs(&self) -> CgroupDirs {
        self.dirs("/")
    }

    /// The cgroup of a process, from its parsed `/proc/<pid>/cgroup`.
    pub fn dirs_of_process(&self, proc: &ProcCgroup) -> Result<CgroupDirs> {
        let describe = || format!("{proc:?}");
        match self {
            Self::V2 { root } => {
                let path = proc.unified.as_deref().ok_or_else(|| Error::NoCgroup(describe()))?;
                Ok(CgroupDirs::V2(under(root, path)))
            }
            Self::V1 { root, unified } => {
                let memory = proc.v1.get("memory").ok_or_else(|| Error::NoCgroup(describe()))?;
                let path_of = |controller: &str| proc.v1.get(controller).unwrap_or(memory);
                Ok(CgroupDirs::V1(V1Dirs {
                    cpu: under(&root.join("cpu"), path_of("cpu")),
                    cpuacct: under(&root.join("cpuacct"), path_of("cpuacct")),
                    memory: under(&root.join("memory"), memory),
                    pids: under(&root.join("pids"), path_of("pids")),
                    unified: match (unified, &proc.unified) {
                        (true, Some(path)) => Some(under(&root.join("unified"), path)),
                        _ => None,
                    },
                }))
            }
        }
    }
}
