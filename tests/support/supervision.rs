//! Helpers of the supervision suite (`tests/supervise.rs`): the processes
//! of one cluster (its daemons by role, containerd's shims), the pods of a
//! Deployment as identities, and a request loop that records every answer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::cluster::{get_within, Cluster};

/// argv of every process on the host, by pid.
fn processes() -> BTreeMap<i32, Vec<String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        if !alive(pid) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !argv.is_empty() {
            out.insert(pid, argv);
        }
    }
    out
}

/// True if `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()).is_some_and(|s| s != 'Z')
}

/// The daemons of the cluster at `dir` by role (`containerd`, `registry`,
/// `control`, `agent`): every live process running one, so a duplicate shows.
pub fn daemons(dir: &Path) -> BTreeMap<&'static str, Vec<i32>> {
    let roles = [
        ("containerd", dir.join("stack/containerd/config.toml")),
        ("registry", dir.join("stack/registry/config.yml")),
        ("control", dir.join("control")),
        ("agent", dir.join("agent")),
    ];
    let mut out: BTreeMap<&'static str, Vec<i32>> = BTreeMap::new();
    for (pid, argv) in processes() {
        for (role, marker) in &roles {
            let marker = marker.display().to_string();
            let binary = argv[0].rsplit('/').next().unwrap_or_default();
            if ["containerd", "docker-registry", "bosun"].contains(&binary) && argv[1..].contains(&marker) {
                out.entry(role).or_default().push(pid);
            }
        }
    }
    out
}

/// The one pid of `role`, if exactly one process runs it.
pub fn single(dir: &Path, role: &str) -> Option<i32> {
    match daemons(dir).get(role).map(Vec::as_slice) {
        Some([pid]) => Some(*pid),
        _ => None,
    }
}

/// Pids of the shims of the containerd at `socket`.
pub fn shims(socket: &Path) -> BTreeSet<i32> {
    let socket = socket.display().to_string();
    processes()
        .into_iter()
        .filter(|(_, argv)| argv[0].contains("containerd-shim") && argv.contains(&socket))
        .map(|(pid, _)| pid)
        .collect()
}

/// A pod as its identity and runtime state: (name, phase, restarts,
/// container id), by UID.
pub type PodIdentities = BTreeMap<String, (String, String, i64, String)>;

/// Pods with label `selector`, by UID.
pub fn pod_identities(cluster: &Cluster, selector: &str) -> Result<PodIdentities> {
    let pods = cluster.json(&["get", "pods", "-l", selector])?;
    let mut out = BTreeMap::new();
    for pod in pods["items"].as_array().context("items")? {
        let container = &pod["status"]["containerStatuses"][0];
        out.insert(
            pod["metadata"]["uid"].as_str().unwrap_or_default().to_string(),
            (
                pod["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                pod["status"]["phase"].as_str().unwrap_or_default().to_string(),
                container["restartCount"].as_i64().unwrap_or(-1),
                container["containerID"].as_str().unwrap_or_default().to_string(),
            ),
        );
    }
    Ok(out)
}

/// GETs a URL over and over from the host until stopped, recording when
/// each request started and whether it answered.
pub struct RequestLoop {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(Instant, Result<String, String>)>>,
}

impl RequestLoop {
    pub fn start(url: String) -> RequestLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut results = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let at = Instant::now();
                let answer = get_within(&url, Duration::from_secs(2)).map_err(|e| format!("{e:#}"));
                results.push((at, answer));
            }
            results
        });
        RequestLoop { stop, thread }
    }

    /// Stops the loop; returns every request's start and outcome.
    pub fn finish(self) -> Vec<(Instant, Result<String, String>)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Polls `check` until it returns `Some`, for `timeout` at most.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every live descendant of `roots` (the pods' processes under the shims).
pub fn descendants(roots: &BTreeSet<i32>) -> BTreeSet<i32> {
    let mut parent_of = BTreeMap::new();
    for pid in processes().into_keys() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            parent_of.insert(pid, ppid);
        }
    }
    let mut found = BTreeSet::new();
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, ppid) in &parent_of {
            if (roots.contains(ppid) || found.contains(ppid)) && found.insert(*pid) {
                grew = true;
            }
        }
    }
    found
}

/// What a cluster at `dir` left on the host: daemons, shims, processes
/// that ran under the shims (`pods`), mounts, the bridge, the proxy's
/// nftables table, CNI IP allocations.
pub fn left_on_host(dir: &Path, socket: &Path, pods: &BTreeSet<i32>, bridge: &str) -> Vec<String> {
    let mut left = Vec::new();
    left.extend(daemons(dir).into_iter().map(|(role, pids)| format!("{role} {pids:?}")));
    left.extend(shims(socket).into_iter().map(|pid| format!("shim {pid}")));
    left.extend(pods.iter().filter(|pid| alive(**pid)).map(|pid| format!("pod process {pid}")));
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    left.extend(bosun_stack::teardown::mounts_below(&mountinfo, dir).into_iter().map(|m| format!("mount {m}")));
    if Path::new("/sys/class/net").join(bridge).exists() {
        left.push(format!("link {bridge}"));
    }
    if !super::cluster::nft_table().unwrap_or_default().trim().is_empty() {
        left.push("nft table".into());
    }
    let ipam = dir.join("stack/cni/ipam/bosun");
    for entry in std::fs::read_dir(&ipam).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<std::net::IpAddr>().is_ok() {
            left.push(format!("CNI IP {name}"));
        }
    }
    left
}
