//! What a stopped cluster must not leave behind, found on the host.
//!
//! [`Leftovers::find`] looks for processes that name the cluster's
//! directory on their command line (bosun up's daemons, containerd's shims
//! through their socket path, pods' processes are the shims' children and
//! die with them), mounts below the directory, network namespaces and IP
//! allocations of its CNI network, its bridge and its nftables table.
//! [`Leftovers::clean`] removes what it can, so one broken test does not
//! break the next.

use std::fmt;
use std::path::{Path, PathBuf};

use bosun_stack::teardown::{self, ProcessEntry};

/// Everything found; empty when the teardown was complete.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Leftovers {
    pub processes: Vec<String>,
    pub mounts: Vec<String>,
    pub netns: Vec<PathBuf>,
    pub ips: Vec<String>,
    pub bridge: Option<String>,
    pub nft_table: Option<String>,
}

impl Leftovers {
    /// Looks at the host for what the cluster in `dir` may have left.
    pub fn find(dir: &Path, bridge: &str, table: &str) -> Leftovers {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let stack = dir.join("stack");
        Leftovers {
            processes: processes_naming(&teardown::process_table(), dir, std::process::id() as i32),
            mounts: teardown::mounts_below(&mountinfo, dir),
            netns: files_in_dirs_named(&stack.join("containerd"), "netns"),
            ips: allocated_ips(&stack.join("cni/ipam/bosun")),
            bridge: Path::new("/sys/class/net").join(bridge).exists().then(|| bridge.to_string()),
            nft_table: nft_table_exists(table).then(|| table.to_string()),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Leftovers::default()
    }

    /// Removes what it can (best effort): kills the processes, unmounts,
    /// deletes the bridge and the table.
    pub fn clean(&self, dir: &Path) {
        for entry in processes_naming_entries(&teardown::process_table(), dir, std::process::id() as i32) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(entry.pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = teardown::unmount_below(dir);
        if let Some(bridge) = &self.bridge {
            let _ = teardown::delete_link(bridge);
        }
        if let Some(table) = &self.nft_table {
            let _ = std::process::Command::new("nft").args(["delete", "table", "ip", table]).output();
        }
    }
}

impl fmt::Display for Leftovers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "processes {:?}, mounts {:?}, netns {:?}, IPs {:?}, bridge {:?}, nft table {:?}",
            self.processes, self.mounts, self.netns, self.ips, self.bridge, self.nft_table
        )
    }
}

/// Command lines of the processes (other than `me`) that name `dir` (pure).
pub fn processes_naming(table: &[ProcessEntry], dir: &Path, me: i32) -> Vec<String> {
    processes_naming_entries(table, dir, me).map(|p| format!("{} {}", p.pid, p.argv.join(" "))).collect()
}

fn processes_naming_entries<'a>(
    table: &'a [ProcessEntry],
    dir: &Path,
    me: i32,
) -> impl Iterator<Item = &'a ProcessEntry> + 'a {
    let needle = dir.display().to_string();
    table.iter().filter(move |p| p.pid != me && p.argv.iter().any(|a| path_names(a, &needle)))
}

/// `arg` is `dir`, a path below it, or `--flag=<such a path>`.
fn path_names(arg: &str, dir: &str) -> bool {
    let value = arg.split_once('=').map_or(arg, |(_, v)| v);
    value == dir || value.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

fn nft_table_exists(table: &str) -> bool {
    std::process::Command::new("nft")
        .args(["list", "table", "ip", table])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// IPs host-local still holds (one file per IP in its data dir).
fn allocated_ips(ipam: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(ipam) else { return Vec::new() };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

/// Files in directories named `name` below `dir` (network namespaces'
/// mount points live in `.../netns/`).
fn files_in_dirs_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() || path.is_symlink() {
                continue;
            }
            if entry.file_name() == name {
                found.extend(std::fs::read_dir(&path).into_iter().flatten().flatten().map(|e| e.path()));
            } else {
                pending.push(path);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: i32, argv: &[&str]) -> ProcessEntry {
        ProcessEntry { pid, ppid: 1, argv: argv.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn processes_are_the_ones_naming_the_cluster_directory() {
        let dir = Path::new("/tmp/bosun-tc-1");
        let table = [
            entry(10, &["containerd", "--config", "/tmp/bosun-tc-1/stack/containerd/config.toml"]),
            entry(11, &["bosun", "agent", "--root-dir=/tmp/bosun-tc-1/agent"]),
            entry(12, &["containerd", "--config", "/tmp/bosun-tc-10/stack/containerd/config.toml"]),
            entry(13, &["bosun", "up", "--dir", "/tmp/bosun-tc-1"]),
            entry(14, &["sleep", "3600"]),
        ];
        let found = processes_naming(&table, dir, 13);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("10 ") && found[1].starts_with("11 "));
    }
}
