//! Node-pressure eviction on the real stack (`bosun up`, real kubectl, this
//! host's cgroup v1): with a hard `memory.available` threshold set some
//! hundred MiB below what the node has now, a BestEffort pod that takes
//! 1 GiB of anonymous memory is evicted (Failed, reason Evicted, upstream's
//! message) while a Guaranteed pod keeps running, and the node shows
//! MemoryPressure (with its NoSchedule taint) while the pressure lasts.

mod support;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use support::cluster::Cluster;
use support::pods::{container, restarts, wait_pod};

const DEADLINE: Duration = Duration::from_secs(120);
const MIB: i64 = 1 << 20;
/// What the hog takes (in pieces of 1 GiB: busybox `tail` holds no more
/// than 2 GiB), and how far below today's available memory the threshold
/// sits. The difference (2 GiB) is how much memory other processes on the
/// machine may free meanwhile without hiding the hog (one CI run saw 1 GiB
/// freed by a build that ended).
const HOG_PIECES: i64 = 3;
const PIECE_MIB: i64 = 1024;
const MARGIN_MIB: i64 = 1024;

/// `memory.available` as the agent computes it: capacity - (root usage - inactive file).
fn memory_available() -> Result<i64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let total_kib: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .context("MemTotal")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    let usage: i64 = std::fs::read_to_string("/sys/fs/cgroup/memory/memory.usage_in_bytes")?.trim().parse()?;
    let stat = std::fs::read_to_string("/sys/fs/cgroup/memory/memory.stat")?;
    let inactive: i64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("total_inactive_file "))
        .context("total_inactive_file")?
        .trim()
        .parse()?;
    Ok(total_kib * 1024 - (usage - inactive.min(usage)))
}

fn manifest(image: &str) -> String {
    // Each piece of the hog holds PIECE_MIB of /dev/zero in a `tail`'s line
    // buffer (no newline ever comes) until its input ends, an hour later.
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: steady\nspec:\n  terminationGracePeriodSeconds: 0\n  \
         containers:\n    - name: app\n      image: {image}\n      command: [\"sleep\", \"3600\"]\n      \
         resources:\n        requests: {{cpu: 50m, memory: 64Mi}}\n        limits: {{cpu: 50m, memory: 64Mi}}\n\
         ---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: hog\nspec:\n  terminationGracePeriodSeconds: 0\n  \
         restartPolicy: Never\n  containers:\n    - name: hog\n      image: {image}\n      \
         command: [\"sh\", \"-c\", \"for i in {pieces}; do (head -c {bytes} /dev/zero; sleep 3600) | tail > /dev/null & done; wait\"]\n",
        bytes = PIECE_MIB * MIB,
        pieces = (1..=HOG_PIECES).map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
    )
}

fn node_condition(node: &Value, type_: &str) -> Option<String> {
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

fn has_taint(node: &Value, key: &str) -> bool {
    node["spec"]["taints"].as_array().is_some_and(|t| t.iter().any(|t| t["key"] == key))
}

#[test]
fn memory_pressure_evicts_besteffort_hog_and_keeps_guaranteed() -> Result<()> {
    let available = memory_available()?;
    let threshold_mib = (available / MIB - MARGIN_MIB).max(100);
    println!("memory.available now {} MiB; threshold {threshold_mib} MiB", available / MIB);
    let args = vec![
        format!("--agent-arg=--eviction-hard=memory.available<{threshold_mib}Mi"),
        "--agent-arg=--eviction-pressure-transition-period=20s".to_string(),
    ];
    let cluster = Cluster::start_with("evict-node", &args)?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    let (ok, _, err) = cluster.apply_stdin(&manifest(&image))?;
    ensure!(ok, "apply: {err}");

    let evicted = wait_pod(&cluster, "hog", "evicted", DEADLINE, |p| p["status"]["reason"] == "Evicted");
    if evicted.is_err() {
        let log = std::fs::read_to_string(cluster.dir.join("logs/agent.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("evict") || l.contains("ERROR")).collect();
        println!("memory.available now {} MiB; agent log:\n{}", memory_available()? / MIB, lines.join("\n"));
    }
    let evicted = evicted?;
    ensure!(evicted["status"]["phase"] == "Failed", "evicted pod is Failed: {}", evicted["status"]);
    let message = evicted["status"]["message"].as_str().unwrap_or_default();
    ensure!(
        message.starts_with("The node was low on resource: memory. Threshold quantity: ")
            && message.contains("Container hog was using"),
        "upstream's message: {message}"
    );
    // The node showed the pressure: condition and taint (checked now, within the 20 s transition period).
    let node = cluster.json(&["get", "node", "evict-node"])?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut node = node;
    while node_condition(&node, "MemoryPressure").as_deref() != Some("True") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        node = cluster.json(&["get", "node", "evict-node"])?;
    }
    ensure!(node_condition(&node, "MemoryPressure").as_deref() == Some("True"), "MemoryPressure: {}", node["status"]);
    ensure!(has_taint(&node, "node.kubernetes.io/memory-pressure"), "taint: {}", node["spec"]);
    // The hog's containers are stopped; the Guaranteed pod keeps running, never restarted.
    wait_pod(&cluster, "hog", "stopped", DEADLINE, |p| container(p)["state"]["terminated"].is_object())?;
    let steady = wait_pod(&cluster, "steady", "running", DEADLINE, |p| container(p)["state"]["running"].is_object())?;
    ensure!(steady["status"]["phase"] == "Running" && restarts(&steady) == 0, "steady: {}", steady["status"]);
    // The pressure goes with the hog: condition False and taint gone after the transition period.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let node = cluster.json(&["get", "node", "evict-node"])?;
        if node_condition(&node, "MemoryPressure").as_deref() == Some("False")
            && !has_taint(&node, "node.kubernetes.io/memory-pressure")
        {
            break;
        }
        ensure!(Instant::now() < deadline, "pressure never cleared: {}", node["status"]["conditions"]);
        std::thread::sleep(Duration::from_millis(500));
    }
    let steady = support::pods::pod(&cluster, "steady")?.context("steady exists")?;
    ensure!(steady["status"]["phase"] == "Running", "steady survived: {}", steady["status"]);
    Ok(())
}
