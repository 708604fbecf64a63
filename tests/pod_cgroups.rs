//! The pod cgroup tree on the real stack (`bosun up`, real kubectl, this
//! machine's kernel): each QoS class lands in its place under `kubepods`
//! with upstream's values read back from cgroupfs, and the containers run
//! inside their pod's cgroup; a pod with a 64Mi limit that allocates without
//! bound is reported OOMKilled (137) while a Guaranteed neighbour keeps
//! running; a pod cgroup left by a crash is gone after the agent restarts;
//! deleting the pods leaves no pod cgroup in any hierarchy.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use support::cluster::Cluster;
use support::pods::wait_pod;

const DEADLINE: Duration = Duration::from_secs(120);
const CGROUPFS: &str = "/sys/fs/cgroup";
const MI: u64 = 1024 * 1024;

fn pod(name: &str, image: &str, resources: &str, command: &str, restart: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: cg\nspec:\n  \
         terminationGracePeriodSeconds: 0\n  restartPolicy: {restart}\n  containers:\n    - name: main\n      \
         image: {image}\n      command: [\"sh\", \"-c\", \"{command}\"]\n      resources: {resources}\n"
    )
}

fn manifest(image: &str) -> String {
    [
        pod("guaranteed", image, "{limits: {cpu: 200m, memory: 64Mi}}", "sleep 3600", "Always"),
        pod("burstable", image, "{requests: {cpu: 100m}, limits: {memory: 128Mi}}", "sleep 3600", "Always"),
        pod("besteffort", image, "{}", "sleep 3600", "Always"),
        pod("hog", image, "{requests: {memory: 16Mi}, limits: {memory: 64Mi}}", "tail /dev/zero", "Never"),
    ]
    .concat()
}

/// The v1 hierarchies (or the v2 root) of this host, as directories.
fn hierarchies() -> Vec<PathBuf> {
    if Path::new(CGROUPFS).join("cgroup.controllers").exists() {
        return vec![PathBuf::from(CGROUPFS)];
    }
    std::fs::read_dir(CGROUPFS)
        .map(|dir| {
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| std::fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false))
                .collect()
        })
        .unwrap_or_default()
}

/// Every directory named `pod<uid>` below any hierarchy's `kubepods`.
fn pod_cgroup_dirs(uid: &str) -> Vec<PathBuf> {
    let name = format!("pod{uid}");
    let mut found = Vec::new();
    for h in hierarchies() {
        for parent in ["kubepods", "kubepods/burstable", "kubepods/besteffort"] {
            let dir = h.join(parent).join(&name);
            if dir.exists() {
                found.push(dir);
            }
        }
    }
    found
}

fn read(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?.trim().to_string())
}

/// A cgroup file of `cgroup` (relative to the hierarchy) for `controller`.
fn file(controller: &str, cgroup: &str, name: &str) -> Result<String> {
    read(&Path::new(CGROUPFS).join(controller).join(cgroup).join(name))
}

fn uid(pod: &Value) -> String {
    pod["metadata"]["uid"].as_str().unwrap_or_default().to_string()
}

/// The main container's process is in a cgroup below `pod_cgroup` (v1 memory hierarchy).
fn container_in(pod: &Value, pod_cgroup: &str) -> Result<bool> {
    let id = pod["status"]["containerStatuses"][0]["containerID"].as_str().unwrap_or_default();
    let id = id.rsplit("://").next().unwrap_or_default();
    ensure!(!id.is_empty(), "container id of {}", pod["metadata"]["name"]);
    let procs = Path::new(CGROUPFS).join("memory").join(pod_cgroup).join(id).join("cgroup.procs");
    Ok(!read(&procs)?.is_empty())
}

fn wait_until(what: &str, timeout: Duration, check: impl Fn() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "not {what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn pods_get_their_qos_cgroups_oom_is_reported_and_nothing_is_left() -> Result<()> {
    ensure!(
        !Path::new(CGROUPFS).join("cgroup.controllers").exists(),
        "this suite reads cgroup v1 files (the CI host's)"
    );
    let cluster = Cluster::start("cg-node")?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    let (ok, _, err) = cluster.apply_stdin(&manifest(&image))?;
    ensure!(ok, "apply: {err}");
    let running = |p: &Value| p["status"]["phase"] == "Running" && p["status"]["containerStatuses"][0]["ready"] == true;
    let guaranteed = wait_pod(&cluster, "guaranteed", "running", DEADLINE, running)?;
    let burstable = wait_pod(&cluster, "burstable", "running", DEADLINE, running)?;
    let besteffort = wait_pod(&cluster, "besteffort", "running", DEADLINE, running)?;

    // Each class in its place, with upstream's values.
    assert_eq!(guaranteed["status"]["qosClass"], "Guaranteed");
    assert_eq!(burstable["status"]["qosClass"], "Burstable");
    assert_eq!(besteffort["status"]["qosClass"], "BestEffort");
    let g = format!("kubepods/pod{}", uid(&guaranteed));
    let b = format!("kubepods/burstable/pod{}", uid(&burstable));
    let e = format!("kubepods/besteffort/pod{}", uid(&besteffort));
    assert_eq!(file("cpu", &g, "cpu.shares")?, "204", "200m request");
    assert_eq!(file("cpu", &g, "cpu.cfs_quota_us")?, "20000", "200m limit");
    assert_eq!(file("cpu", &g, "cpu.cfs_period_us")?, "100000");
    assert_eq!(file("memory", &g, "memory.limit_in_bytes")?, (64 * MI).to_string());
    assert_eq!(file("cpu", &b, "cpu.shares")?, "102", "100m request");
    assert_eq!(file("cpu", &b, "cpu.cfs_quota_us")?, "-1", "no cpu limit: no quota");
    assert_eq!(file("memory", &b, "memory.limit_in_bytes")?, (128 * MI).to_string());
    assert_eq!(file("cpu", &e, "cpu.shares")?, "2");
    assert_eq!(file("cpu", "kubepods/besteffort", "cpu.shares")?, "2");
    let cpus = std::thread::available_parallelism()?.get() as u64;
    assert_eq!(file("cpu", "kubepods", "cpu.shares")?, (cpus * 1024).to_string(), "kubepods: node allocatable");
    for (pod, cgroup) in [(&guaranteed, &g), (&burstable, &b), (&besteffort, &e)] {
        ensure!(container_in(pod, cgroup)?, "{} runs inside {cgroup}", pod["metadata"]["name"]);
    }
    // The container's own limits sit below the pod's.
    let app = guaranteed["status"]["containerStatuses"][0]["containerID"].as_str().unwrap_or_default();
    let app = app.rsplit("://").next().unwrap_or_default();
    assert_eq!(file("memory", &format!("{g}/{app}"), "memory.limit_in_bytes")?, (64 * MI).to_string());

    // OOM: reported from the runtime's OOM event, the neighbour unharmed.
    let hog = wait_pod(&cluster, "hog", "OOMKilled", DEADLINE, |p| {
        !p["status"]["containerStatuses"][0]["state"]["terminated"].is_null()
    })?;
    let terminated = &hog["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["reason"], "OOMKilled", "{terminated}");
    assert_eq!(terminated["exitCode"], 137, "{terminated}");
    let neighbour = support::pods::pod(&cluster, "guaranteed")?.context("guaranteed pod")?;
    assert_eq!(neighbour["status"]["phase"], "Running");
    assert_eq!(support::pods::restarts(&neighbour), 0, "the Guaranteed neighbour kept running");

    // A pod cgroup left by a crash is removed once the agent is back.
    let ghost = "00000000-dead-beef-0000-000000000000";
    let ghost_dirs: Vec<PathBuf> = ["cpu", "memory", "pids"]
        .iter()
        .map(|h| Path::new(CGROUPFS).join(h).join("kubepods/besteffort").join(format!("pod{ghost}")))
        .collect();
    for dir in &ghost_dirs {
        std::fs::create_dir_all(dir)?;
    }
    let (_, agent) = cluster.component_pids()?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent), nix::sys::signal::Signal::SIGKILL)?;
    wait_until("the agent back", DEADLINE, || Ok(cluster.component_pids().map(|(_, a)| a != agent).unwrap_or(false)))?;
    wait_until("the crash's pod cgroup removed", DEADLINE, || Ok(ghost_dirs.iter().all(|d| !d.exists())))?;
    ensure!(!pod_cgroup_dirs(&uid(&guaranteed)).is_empty(), "a live pod keeps its cgroup across the restart");

    // Deleting the pods leaves no pod cgroup in any hierarchy.
    let uids: Vec<String> = [&guaranteed, &burstable, &besteffort, &hog].iter().map(|p| uid(p)).collect();
    cluster.kubectl_ok(&["delete", "pods", "-l", "app=cg", "--wait=false"])?;
    wait_until("pods gone", DEADLINE, || {
        Ok(cluster.json(&["get", "pods", "-l", "app=cg"])?["items"].as_array().is_some_and(|a| a.is_empty()))
    })?;
    wait_until("pod cgroups gone", DEADLINE, || Ok(uids.iter().all(|u| pod_cgroup_dirs(u).is_empty())))?;
    for u in &uids {
        ensure!(pod_cgroup_dirs(u).is_empty(), "pod {u}: {:?}", pod_cgroup_dirs(u));
    }
    Ok(())
}
