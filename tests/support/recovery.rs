//! Helpers of the restart-recovery suite (`tests/agent_restart.rs`): kill
//! the agent and wait for `bosun up` to start a new one, read process start
//! times, and look for what a removed pod could leave behind (runtime
//! objects, directories, mounts, CNI IPs, cgroups).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context, Result};
use bosun_cri::{api, CriClient};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::cluster::Cluster;

const POD_UID: &str = "io.kubernetes.pod.uid";

/// When process `pid` started (from /proc: boot time + start ticks).
pub fn process_start(pid: i32) -> Result<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat.rsplit_once(')').context("stat format")?.1.split_whitespace().collect();
    // After `(comm)`: starttime is field 22 (1-based), index 19 here.
    let ticks: u64 = fields.get(19).context("starttime")?.parse()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .context("btime")?
        .trim()
        .parse()?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as u64;
    Ok(UNIX_EPOCH + Duration::from_secs(boot) + Duration::from_millis(ticks * 1000 / per_second))
}

/// SIGKILLs the agent and waits for `bosun up` to start a new one; returns
/// the new agent's pid and start time.
pub fn kill_agent(cluster: &Cluster) -> Result<(i32, SystemTime)> {
    let (_, agent) = cluster.component_pids()?;
    kill(Pid::from_raw(agent), Signal::SIGKILL)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((_, pid)) = cluster.component_pids() {
            if pid != agent {
                return Ok((pid, process_start(pid)?));
            }
        }
        ensure!(Instant::now() < deadline, "no new agent within 60 s of the kill");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ns since the epoch of a time.
pub fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or_default()
}

/// Sandbox ids of every pod in the runtime, by pod UID.
pub async fn sandboxes_by_uid(cri: &CriClient) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for s in cri.list_pod_sandboxes(None).await? {
        out.entry(s.labels.get(POD_UID).cloned().unwrap_or_default()).or_default().push(s.id);
    }
    Ok(out)
}

/// Containers of pod `uid`: (id, attempt, state, created ns, finished ns),
/// newest attempt first.
pub async fn containers_of(cri: &CriClient, uid: &str) -> Result<Vec<(String, u32, i32, i64, i64)>> {
    let filter =
        api::ContainerFilter { label_selector: [(POD_UID.to_string(), uid.to_string())].into(), ..Default::default() };
    let mut out = Vec::new();
    for c in cri.list_containers(Some(filter)).await? {
        let status = cri.container_status(&c.id).await?;
        let attempt = c.metadata.as_ref().map(|m| m.attempt).unwrap_or_default();
        out.push((c.id, attempt, status.state, status.created_at, status.finished_at));
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.1));
    Ok(out)
}

/// What pod `uid` left on the node: runtime objects, its directories under
/// the agent's root, mounts, its IP in host-local's store, cgroups.
pub async fn leftovers(cluster: &Cluster, cri: &CriClient, uid: &str, ip: &str) -> Result<Vec<String>> {
    let mut left = Vec::new();
    let selector = [(POD_UID.to_string(), uid.to_string())].into();
    let sandboxes =
        cri.list_pod_sandboxes(Some(api::PodSandboxFilter { label_selector: selector, ..Default::default() })).await?;
    left.extend(sandboxes.iter().map(|s| format!("sandbox {}", s.id)));
    left.extend(containers_of(cri, uid).await?.iter().map(|c| format!("container {}", c.0)));
    let pods = cluster.dir.join("agent/pods");
    for entry in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == uid || name.ends_with(&format!("_{uid}")) {
            left.push(format!("directory {}", entry.path().display()));
        }
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mounts = bosun_stack::teardown::mounts_below(&mountinfo, &pods);
    left.extend(mounts.into_iter().filter(|m| m.contains(uid)).map(|m| format!("mount {m}")));
    if !ip.is_empty() && cluster.dir.join("stack/cni/ipam/bosun").join(ip).exists() {
        left.push(format!("CNI IP {ip}"));
    }
    left.extend(cgroups_of(uid).into_iter().map(|p| format!("cgroup {}", p.display())));
    Ok(left)
}

/// Cgroup directories named after pod `uid` (cgroupfs `pod<uid>` or
/// systemd `...-pod<uid_with_underscores>.slice`), a few levels deep under
/// each hierarchy of /sys/fs/cgroup.
pub fn cgroups_of(uid: &str) -> Vec<PathBuf> {
    let systemd = uid.replace('-', "_");
    let mut found = Vec::new();
    let mut stack: Vec<(PathBuf, usize)> = vec![(Path::new("/sys/fs/cgroup").to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(uid) || name.contains(&systemd) {
                found.push(entry.path());
            } else if depth < 4 {
                stack.push((entry.path(), depth + 1));
            }
        }
    }
    found
}

/// A TCP port that accepts and drops every connection, recording when each
/// came: a registry that fails every pull, to time pull attempts.
pub fn failing_registry() -> Result<(u16, Arc<Mutex<Vec<SystemTime>>>)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if let Ok(mut times) = record.lock() {
                times.push(SystemTime::now());
            }
            drop(stream);
        }
    });
    Ok((port, seen))
}

/// Connections grouped into pull attempts (one attempt may open a few,
/// within `gap` of each other): the first connection of each.
pub fn attempts(connections: &[SystemTime], gap: Duration) -> Vec<SystemTime> {
    let mut out: Vec<SystemTime> = Vec::new();
    let mut last: Option<SystemTime> = None;
    for t in connections {
        let new = last.is_none_or(|l| t.duration_since(l).unwrap_or_default() > gap);
        if new {
            out.push(*t);
        }
        last = Some(*t);
    }
    out
}

/// The kubelet's backoff delay after the `n`-th failure (n >= 1): 10 s
/// doubling to 5 min.
pub fn backoff_after(n: u32) -> Duration {
    Duration::from_secs(10u64.saturating_mul(1 << n.saturating_sub(1).min(5))).min(Duration::from_secs(300))
}
