//! Resource usage of one cgroup, read from its cgroupfs files: CPU usage and
//! CFS throttling, memory usage and working set, pids, and pressure stall
//! information (PSI) where the kernel exposes it. Both hierarchies: v1 (one
//! directory per controller) and v2 (one unified directory).
//!
//! The parsers (`parse`) are pure functions over file contents; the readers
//! (`v1`, `v2`) only read the few files a cgroup has, never walk
//! directories. They get file contents through a small `Fetch` trait:
//! [`read`] opens each file afresh, while a [`StatsReader`] (`kept`) keeps
//! the files of the cgroups it reads open between collections and reads
//! them again from offset 0, so a steady collection costs one `pread(2)`
//! per file and no path lookups. `locate` turns a
//! process's `/proc/<pid>/cgroup` into the cgroup directories to read.
//!
//! Must not: write to cgroupfs or decide anything about limits; this module
//! only reports what the kernel accounts.

mod kept;
mod locate;
pub mod parse;
mod v1;
mod v2;

#[cfg(test)]
mod kept_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use kept::StatsReader;
pub use locate::{CgroupDirs, Hierarchy, V1Dirs};

/// A failed read of a cgroup file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file exists but could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file's content is not what the kernel writes there.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A `/proc/<pid>/cgroup` file names no cgroup this module can read.
    #[error("no readable cgroup in {0:?}")]
    NoCgroup(String),
}

/// Result of a stats read.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// CPU accounting of a cgroup. Cumulative counters since the cgroup was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// CPU time used by all tasks, nanoseconds.
    pub usage_nanos: u64,
    /// Part of `usage_nanos` spent in user mode, where the kernel reports it.
    pub user_nanos: Option<u64>,
    /// Part of `usage_nanos` spent in kernel mode, where the kernel reports it.
    pub system_nanos: Option<u64>,
    /// CFS enforcement periods that elapsed (`nr_periods`).
    pub periods: u64,
    /// Periods in which the cgroup was throttled (`nr_throttled`).
    pub throttled_periods: u64,
    /// Total time the cgroup's tasks were throttled, nanoseconds.
    pub throttled_nanos: u64,
}

/// Memory accounting of a cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Charged memory, page cache included (`memory.usage_in_bytes`, `memory.current`).
    pub usage_bytes: u64,
    /// Usage minus inactive file pages, as the kubelet and cAdvisor define it
    /// (the number eviction and `kubectl top` use).
    pub working_set_bytes: u64,
    /// Anonymous memory (`total_rss` on v1, `anon` on v2).
    pub rss_bytes: u64,
    /// Page faults (`pgfault`).
    pub page_faults: u64,
    /// Major page faults (`pgmajfault`).
    pub major_page_faults: u64,
    /// The memory limit, `None` when unlimited.
    pub limit_bytes: Option<u64>,
}

/// Process-count accounting of a cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PidsStats {
    /// Tasks in the cgroup (`pids.current`).
    pub current: u64,
    /// The pids limit, `None` when unlimited (`max`).
    pub limit: Option<u64>,
}

/// One line of a pressure file: the share of wall time tasks stalled.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PsiLine {
    /// Percent over the last 10 s.
    pub avg10: f64,
    /// Percent over the last 60 s.
    pub avg60: f64,
    /// Percent over the last 300 s.
    pub avg300: f64,
    /// Total stall time, microseconds.
    pub total_micros: u64,
}

/// One pressure file (`cpu.pressure`, `memory.pressure`, `io.pressure`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    /// Some tasks stalled.
    pub some: PsiLine,
    /// All non-idle tasks stalled at once (absent for cpu on older kernels).
    pub full: Option<PsiLine>,
}

/// Pressure stall information of a cgroup (cgroup v2 files only).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PsiStats {
    /// CPU pressure.
    pub cpu: Option<Pressure>,
    /// Memory pressure.
    pub memory: Option<Pressure>,
    /// I/O pressure.
    pub io: Option<Pressure>,
}

/// Everything read from one cgroup. A part is `None` when its controller is
/// not there (not mounted, not enabled, or the cgroup went away mid-read).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CgroupStats {
    /// CPU usage and throttling.
    pub cpu: Option<CpuStats>,
    /// Memory usage and working set.
    pub memory: Option<MemoryStats>,
    /// Tasks.
    pub pids: Option<PidsStats>,
    /// Pressure stall information.
    pub psi: Option<PsiStats>,
}

/// Reads the stats of the cgroup at `dirs`, opening each file afresh (for
/// one-off reads; repeated collections use a [`StatsReader`]).
pub fn read(dirs: &CgroupDirs) -> Result<CgroupStats> {
    read_with(&mut OneShot::default(), dirs)
}

fn read_with(fetch: &mut impl Fetch, dirs: &CgroupDirs) -> Result<CgroupStats> {
    match dirs {
        CgroupDirs::V1(v1_dirs) => v1::read(fetch, v1_dirs),
        CgroupDirs::V2(dir) => v2::read(fetch, dir),
    }
}

/// How often a file's content changes, which decides how a
/// [`StatsReader`] may reuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Changes {
    /// Counters and gauges: read on every collection.
    Always,
    /// Limits: change only when someone writes them (resize).
    Rarely,
}

/// Where the readers get file contents from: the filesystem each time
/// ([`OneShot`]) or a [`StatsReader`]'s kept files.
trait Fetch {
    /// The content of `dir/name`; `None` when the file does not exist (the
    /// controller is absent, or the cgroup went away).
    fn fetch(&mut self, dir: &Path, name: &'static str, changes: Changes) -> Result<Option<&str>>;
}

/// Opens, reads and closes each file.
#[derive(Default)]
struct OneShot(String);

impl Fetch for OneShot {
    fn fetch(&mut self, dir: &Path, name: &'static str, _changes: Changes) -> Result<Option<&str>> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                self.0 = text;
                Ok(Some(&self.0))
            }
            Err(e) if gone(&e) => Ok(None),
            Err(source) => Err(Error::Read { path, source }),
        }
    }
}

/// Linux `ENODEV`: what reading a file of a cgroup removed after `open` answers.
const ENODEV: i32 = 19;

/// True when an I/O error means "no such file (any more)".
fn gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(ENODEV)
}

/// Reads and parses `dir/name` with `parse`; `Ok(None)` when it does not exist.
fn read_parsed<T>(
    fetch: &mut impl Fetch,
    dir: &Path,
    name: &'static str,
    changes: Changes,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>> {
    match fetch.fetch(dir, name, changes)? {
        None => Ok(None),
        Some(text) => parse(text).map(Some).map_err(|message| Error::Parse { path: dir.join(name), message }),
    }
}

/// Reads the three pressure files in `dir`, `None` when the kernel has none.
/// The kernel makes all three or none (they are core cgroup files), so a
/// missing `cpu.pressure` (no PSI, or no such directory in the hybrid
/// unified tree) ends the look-up.
fn read_psi(fetch: &mut impl Fetch, dir: &Path) -> Result<Option<PsiStats>> {
    let cpu = read_parsed(fetch, dir, "cpu.pressure", Changes::Always, parse::pressure)?;
    if cpu.is_none() {
        return Ok(None);
    }
    let memory = read_parsed(fetch, dir, "memory.pressure", Changes::Always, parse::pressure)?;
    let io = read_parsed(fetch, dir, "io.pressure", Changes::Always, parse::pressure)?;
    if cpu.is_none() && memory.is_none() && io.is_none() {
        return Ok(None);
    }
    Ok(Some(PsiStats { cpu, memory, io }))
}
