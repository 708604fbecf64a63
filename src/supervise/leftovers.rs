//! What a `bosun up` that died without cleaning up (SIGKILL, OOM kill) left
//! running for its directory, and stopping it before a new `bosun up`
//! starts there.
//!
//! The daemons of a dead `bosun up` normally die with it (PDEATHSIG, see
//! `bosun_stack::process`); this catches a daemon that missed the signal or
//! ignores it. A daemon belongs to the cluster at `dir` when it runs one of
//! bosun's daemon binaries with one of the cluster's own paths as an
//! argument (containerd's config file, the registry's config, control's data
//! dir, the agent's root dir). containerd's shims are not daemons of `bosun
//! up`: they hold the pods, and the new containerd adopts them.

use std::path::Path;
use std::time::{Duration, Instant};

use bosun_stack::teardown::{process_table, ProcessEntry as Process};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The binaries `bosun up` runs as daemons (by file name).
const DAEMON_BINARIES: &[&str] = &["containerd", "docker-registry", "bosun"];

/// Arguments only the daemons of the cluster at `dir` carry.
pub fn markers(dir: &Path) -> Vec<String> {
    [
        dir.join("stack/containerd/config.toml"),
        dir.join("stack/registry/config.yml"),
        dir.join("control"),
        dir.join("agent"),
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect()
}

/// The pids of `processes` that are daemons of the cluster with `markers`,
/// except `own` (the new `bosun up`).
pub fn leftover_pids(processes: &[Process], markers: &[String], own: i32) -> Vec<i32> {
    processes
        .iter()
        .filter(|p| p.pid != own)
        .filter(|p| {
            let binary = p.argv.first().map(|a| a.rsplit('/').next().unwrap_or(a.as_str()));
            binary.is_some_and(|b| DAEMON_BINARIES.contains(&b))
        })
        .filter(|p| p.argv.iter().skip(1).any(|arg| markers.contains(arg)))
        .map(|p| p.pid)
        .collect()
}

/// True if `pid` exists and has not exited (a zombie has).
pub fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) S ...`: the state follows the last ')'.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()).is_some_and(|state| state != 'Z')
}

/// Stops the daemons a dead `bosun up` left for `dir`: SIGTERM, SIGKILL
/// after `grace`, and waits (`grace` again at most) until they are gone.
/// Returns their pids.
pub async fn stop_leftovers(dir: &Path, grace: Duration) -> Vec<i32> {
    let pids = leftover_pids(&process_table(), &markers(dir), std::process::id() as i32);
    for pid in &pids {
        tracing::warn!(pid, "stopping a daemon a previous bosun up left running");
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let mut deadline = Instant::now() + grace;
    let mut killed = false;
    let mut interval = tokio::time::interval(Duration::from_millis(50));
    loop {
        let running: Vec<i32> = pids.iter().copied().filter(|pid| alive(*pid)).collect();
        if running.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            if killed {
                tracing::error!(?running, "daemons left by a previous bosun up survive SIGKILL");
                break;
            }
            for pid in running {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            killed = true;
            deadline = Instant::now() + grace;
        }
        interval.tick().await;
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: i32, argv: &str) -> Process {
        Process { pid, ppid: 1, argv: argv.split(' ').map(String::from).collect() }
    }

    #[test]
    fn finds_the_daemons_of_this_clusters_dir_only() {
        let markers = markers(Path::new("/var/lib/bosun"));
        let processes = [
            process(10, "containerd --config /var/lib/bosun/stack/containerd/config.toml"),
            process(11, "docker-registry serve /var/lib/bosun/stack/registry/config.yml"),
            process(12, "/usr/local/bin/bosun control --data-dir /var/lib/bosun/control --listen 127.0.0.1:6443"),
            process(13, "/usr/local/bin/bosun agent --kubeconfig k --root-dir /var/lib/bosun/agent"),
            // Another cluster's daemons.
            process(20, "containerd --config /tmp/other/stack/containerd/config.toml"),
            process(21, "/usr/local/bin/bosun agent --root-dir /var/lib/bosun/agent2"),
            // Shims hold the pods: never leftovers.
            process(30, "/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -address /var/lib/bosun/stack/containerd/containerd.sock"),
            // Not a daemon binary, even with the dir on its command line.
            process(31, "less /var/lib/bosun/agent"),
            // The new bosun up itself.
            process(40, "/usr/local/bin/bosun up --dir /var/lib/bosun/agent"),
            process(41, ""),
        ];
        assert_eq!(leftover_pids(&processes, &markers, 40), vec![10, 11, 12, 13]);
    }
}
