//! Leaving nothing behind: pods removed through CRI (so CNI releases IPs and
//! deletes network namespaces), stray shims killed, mounts below the stack
//! directory detached, the bridge and the directory removed.

use std::path::Path;
use std::time::Duration;

use bosun_cri::CriClient;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{Error, Result};

/// Stops and removes every container and pod sandbox the runtime knows, all
/// in parallel, going on past failures so one stuck pod does not leak the
/// others. Returns how many sandboxes were removed; the first error (after
/// everything was tried) otherwise.
pub async fn remove_all_pods(cri: &CriClient, grace: Duration) -> Result<usize> {
    let mut first_error = None;
    let containers = cri.list_containers(None).await?;
    let stops = containers.iter().map(|c| async move {
        cri.stop_container(&c.id, grace.as_secs() as i64).await?;
        cri.remove_container(&c.id).await
    });
    for result in futures::future::join_all(stops).await {
        if let Err(err) = result {
            first_error.get_or_insert(err);
        }
    }
    let sandboxes = cri.list_pod_sandboxes(None).await?;
    let removals = sandboxes.iter().map(|s| async move {
        cri.stop_pod_sandbox(&s.id).await?;
        cri.remove_pod_sandbox(&s.id).await
    });
    let mut removed = 0;
    for result in futures::future::join_all(removals).await {
        match result {
            Ok(()) => removed += 1,
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    match first_error {
        None => Ok(removed),
        Some(err) => Err(err.into()),
    }
}

/// A process as /proc shows it: pid, parent pid, argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessEntry {
    pub pid: i32,
    pub ppid: i32,
    pub argv: Vec<String>,
}

/// What to kill to stop the shims of the containerd at `socket` (a shim
/// names its containerd's address on its command line): the processes the
/// shims run (containers' first processes; killing one ends its PID
/// namespace), then the shims. Killing only a shim would leave its
/// containers running as orphans.
pub fn shim_kill_order(processes: &[ProcessEntry], socket: &Path) -> Vec<i32> {
    let needle = socket.display().to_string();
    let shims: Vec<i32> = processes
        .iter()
        .filter(|p| p.argv.first().is_some_and(|a| a.contains("containerd-shim")) && p.argv.contains(&needle))
        .map(|p| p.pid)
        .collect();
    let children = processes.iter().filter(|p| shims.contains(&p.ppid)).map(|p| p.pid);
    children.chain(shims.iter().copied()).collect()
}

/// Every process of the host, as /proc shows it.
pub fn process_table() -> Vec<ProcessEntry> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse::<i32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let argv = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some(ProcessEntry { pid, ppid, argv })
        })
        .collect()
}

/// Kills the shims of the containerd at `socket` and the containers they
/// run (see [`shim_kill_order`]). Returns how many processes were killed.
pub fn kill_shims(socket: &Path) -> usize {
    shim_kill_order(&process_table(), socket)
        .into_iter()
        .filter(|pid| kill(Pid::from_raw(*pid), Signal::SIGKILL).is_ok())
        .count()
}

/// Mount points at or below `dir`, deepest first (from `/proc/self/mountinfo`).
pub fn mounts_below(mountinfo: &str, dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    let mut mounts: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|mount| mount == &prefix || mount.starts_with(&format!("{prefix}/")))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mounts.dedup();
    mounts
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(raw: &str) -> String {
    raw.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// Detaches every mount below `dir`.
pub fn unmount_below(dir: &Path) -> Result<()> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::Teardown { what: "reading /proc/self/mountinfo".into(), message: e.to_string() })?;
    for mount in mounts_below(&mountinfo, dir) {
        nix::mount::umount2(mount.as_str(), nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| Error::Teardown { what: format!("unmounting {mount}"), message: e.to_string() })?;
    }
    Ok(())
}

/// Deletes a network link (the pod bridge) if it exists.
pub fn delete_link(name: &str) -> Result<()> {
    if !Path::new("/sys/class/net").join(name).exists() {
        return Ok(());
    }
    let output = std::process::Command::new("ip")
        .args(["link", "delete", name])
        .output()
        .map_err(|e| Error::Teardown { what: format!("link {name}"), message: e.to_string() })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Teardown { what: format!("link {name}"), message: String::from_utf8_lossy(&output.stderr).into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_the_shims_children_before_the_shims_and_nothing_of_other_runtimes() {
        let entry = |pid: i32, ppid: i32, argv: &str| ProcessEntry {
            pid,
            ppid,
            argv: argv.split(' ').map(String::from).collect(),
        };
        let socket = Path::new("/tmp/st/containerd/containerd.sock");
        let processes = [
            entry(
                10,
                1,
                "/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id a -address /tmp/st/containerd/containerd.sock",
            ),
            entry(11, 10, "/pause"),
            entry(12, 10, "httpd -f"),
            entry(13, 12, "sh"),
            entry(
                20,
                1,
                "/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id b -address /run/containerd/containerd.sock",
            ),
            entry(21, 20, "/pause"),
            entry(30, 1, "containerd --config /tmp/st/containerd/config.toml"),
        ];
        assert_eq!(shim_kill_order(&processes, socket), vec![11, 12, 10]);
    }

    #[test]
    fn finds_mounts_below_a_dir_deepest_first_and_unescaped() {
        let mountinfo = "\
22 1 0:21 / / rw - ext4 /dev/vda rw
30 22 0:40 / /tmp/st rw - tmpfs tmpfs rw
31 30 0:41 / /tmp/st/a/shm rw - tmpfs shm rw
32 30 0:42 / /tmp/st/with\\040space/rootfs rw - overlay overlay rw
33 22 0:43 / /tmp/stx rw - tmpfs tmpfs rw
";
        assert_eq!(
            mounts_below(mountinfo, Path::new("/tmp/st")),
            vec!["/tmp/st/with space/rootfs".to_string(), "/tmp/st/a/shm".to_string(), "/tmp/st".to_string()]
        );
    }
}
