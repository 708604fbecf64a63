//! The one interface to a cgroup hierarchy, [`CgroupDriver`], and the closed
//! set of backends behind it, [`Backend`] (v1 in `v1.rs`, v2 in `v2.rs`).
//! Paths are relative to the hierarchy (`kubepods/burstable/pod<uid>`); the
//! cgroupfs root (`/sys/fs/cgroup` on a host, a temp dir in tests) is the
//! backend's. Shared helpers for directory trees live here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::v1::V1;
use crate::v2::V2;

/// The side effects on a cgroup hierarchy the tree needs. Implementations
/// are blocking (file writes); async callers use `spawn_blocking`.
pub trait CgroupDriver: Send + Sync + std::fmt::Debug {
    /// Creates the cgroup `path` and its parents (idempotent).
    fn create(&self, path: &str) -> Result<()>;
    /// Writes `limits` to the cgroup `path`.
    fn apply(&self, path: &str, limits: &Limits) -> Result<()>;
    /// Removes the cgroup `path` and any cgroups below it; a cgroup that is
    /// already gone is no error.
    fn remove(&self, path: &str) -> Result<()>;
    /// The names of the cgroups directly below `path` (none if it is gone).
    fn children(&self, path: &str) -> Result<Vec<String>>;
    /// The directories of `path`, one per hierarchy (v1) or one (v2).
    fn dirs(&self, path: &str) -> Vec<PathBuf>;
    /// Whether `path` exists in any hierarchy.
    fn exists(&self, path: &str) -> bool {
        self.dirs(path).iter().any(|d| d.is_dir())
    }
}

/// The cgroup version of a host, each in its own file.
#[derive(Debug, Clone)]
pub enum Backend {
    /// cgroup v1 (one hierarchy per controller; also the hybrid layout).
    V1(V1),
    /// cgroup v2 (the unified hierarchy).
    V2(V2),
}

impl Backend {
    /// The backend for the cgroupfs mounted at `root`: v2 when `root` is a
    /// unified hierarchy (it has `cgroup.controllers`), else v1 on the
    /// controller directories below it.
    pub fn detect(root: &Path) -> Result<Self> {
        if root.join("cgroup.controllers").is_file() {
            return Ok(Self::V2(V2::new(root.to_path_buf())));
        }
        Ok(Self::V1(V1::detect(root)?))
    }

    /// `"v1"` or `"v2"`.
    pub fn version(&self) -> &'static str {
        match self {
            Self::V1(_) => "v1",
            Self::V2(_) => "v2",
        }
    }
}

impl CgroupDriver for Backend {
    fn create(&self, path: &str) -> Result<()> {
        match self {
            Self::V1(b) => b.create(path),
            Self::V2(b) => b.create(path),
        }
    }

    fn apply(&self, path: &str, limits: &Limits) -> Result<()> {
        match self {
            Self::V1(b) => b.apply(path, limits),
            Self::V2(b) => b.apply(path, limits),
        }
    }

    fn remove(&self, path: &str) -> Result<()> {
        match self {
            Self::V1(b) => b.remove(path),
            Self::V2(b) => b.remove(path),
        }
    }

    fn children(&self, path: &str) -> Result<Vec<String>> {
        match self {
            Self::V1(b) => b.children(path),
            Self::V2(b) => b.children(path),
        }
    }

    fn dirs(&self, path: &str) -> Vec<PathBuf> {
        match self {
            Self::V1(b) => b.dirs(path),
            Self::V2(b) => b.dirs(path),
        }
    }
}

/// How often and how long [`remove_tree`] retries a busy cgroup (its last
/// tasks still exiting).
const BUSY_RETRIES: u32 = 10;
const BUSY_PAUSE: Duration = Duration::from_millis(20);

/// Removes the directory tree at `dir`, deepest first. On a cgroupfs `rmdir`
/// removes a cgroup with its interface files; a plain directory (a temp-dir
/// cgroupfs in tests) has real files, which are removed first.
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(Error::Remove { path: dir.to_path_buf(), source }),
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => remove_tree(&path)?,
            _ => files.push(path),
        }
    }
    let mut attempt = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && !files.is_empty() => {
                for file in files.drain(..) {
                    let _ = std::fs::remove_file(file);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < BUSY_RETRIES => {
                attempt += 1;
                std::thread::sleep(BUSY_PAUSE);
            }
            Err(source) => return Err(Error::Remove { path: dir.to_path_buf(), source }),
        }
    }
}

/// The names of the directories directly below `dir` (none if it is gone).
pub(crate) fn child_dirs(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::List { path: dir.to_path_buf(), source }),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}
