//! In-place pod resize on the real stack (`bosun up`, real kubectl 1.32,
//! containerd's runc on this host's cgroup v1): `kubectl patch --subresource
//! resize` from 100m to 300m CPU shows in the container's cgroup
//! (`cpu.cfs_quota_us`, read on the host) within 2 s with no restart, and
//! the status reports the new resources, the allocation and
//! `observedGeneration`; a memory resize whose policy says RestartContainer
//! restarts the container into the new limit; a resize the node cannot hold
//! is `PodResizePending`/`Infeasible` and changes nothing; the apiserver
//! refuses a QoS change through `resize` and any resources change through
//! the main resource.

mod support;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use support::cluster::Cluster;
use support::pods::{condition, container, restarts, wait_pod};

const DEADLINE: Duration = Duration::from_secs(120);
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

fn pod_manifest(name: &str, image: &str, cpu: &str, memory: &str, policy: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  \
         containers:\n    - name: app\n      image: {image}\n      command: [\"sleep\", \"3600\"]\n      \
         resizePolicy: {policy}\n      resources:\n        requests: {{cpu: {cpu}, memory: {memory}}}\n        \
         limits: {{cpu: {cpu}, memory: {memory}}}\n"
    )
}

fn resize_patch(cpu: &str, memory: &str) -> String {
    format!(
        r#"{{"spec":{{"containers":[{{"name":"app","resources":{{"requests":{{"cpu":"{cpu}","memory":"{memory}"}},"limits":{{"cpu":"{cpu}","memory":"{memory}"}}}}}}]}}}}"#
    )
}

/// The host path of the container's cgroup for `controller` (from its
/// `/proc/1/cgroup`; v1 without a cgroup namespace shows host paths).
fn cgroup_dir(cluster: &Cluster, pod: &str, controller: &str) -> Result<String> {
    let text = cluster.kubectl_ok(&["exec", pod, "--", "cat", "/proc/1/cgroup"])?;
    let path = text
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers.split(',').any(|c| c == controller).then(|| path.to_string())
        })
        .with_context(|| format!("no {controller} line in {text}"))?;
    Ok(format!("{CGROUP_ROOT}/{controller}{path}"))
}

fn read_number(path: &str) -> Result<i64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    Ok(text.trim().parse()?)
}

fn running(p: &Value) -> bool {
    container(p)["state"]["running"].is_object()
}

fn resize(cluster: &Cluster, pod: &str, cpu: &str, memory: &str) -> Result<(bool, String)> {
    let patch = resize_patch(cpu, memory);
    let (ok, out, err) = cluster.kubectl(&["patch", "pod", pod, "--subresource", "resize", "--patch", &patch])?;
    Ok((ok, format!("{out}{err}")))
}

#[test]
fn in_place_resize_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start("resize-node")?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    let restart_memory = "[{resourceName: memory, restartPolicy: RestartContainer}]";
    let manifests = [
        pod_manifest("cpu", &image, "100m", "64Mi", "[]"),
        pod_manifest("mem", &image, "100m", "64Mi", restart_memory),
        pod_manifest("big", &image, "100m", "64Mi", "[]"),
    ]
    .join("---\n");
    let (ok, _, err) = cluster.apply_stdin(&manifests)?;
    ensure!(ok, "apply: {err}");
    for name in ["cpu", "mem", "big"] {
        wait_pod(&cluster, name, "running", DEADLINE, running)?;
    }

    // 100m -> 300m in place: the quota changes within 2 s, no restart.
    let quota_path = format!("{}/cpu.cfs_quota_us", cgroup_dir(&cluster, "cpu", "cpu")?);
    ensure!(read_number(&quota_path)? == 10_000, "100m is a 10 ms quota");
    let before = wait_pod(&cluster, "cpu", "running", DEADLINE, running)?;
    let (ok, out) = resize(&cluster, "cpu", "300m", "64Mi")?;
    ensure!(ok, "resize: {out}");
    let patched = Instant::now();
    let mut quota = 0;
    while patched.elapsed() < DEADLINE {
        quota = read_number(&quota_path)?;
        if quota == 30_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = patched.elapsed();
    println!("resize 100m -> 300m: cpu.cfs_quota_us {quota} {took:?} after the patch was accepted");
    ensure!(quota == 30_000, "quota is 30 ms after the resize, got {quota}");
    ensure!(took <= Duration::from_secs(2), "the cgroup changed within 2 s, took {took:?}");
    let after = wait_pod(&cluster, "cpu", "reporting 300m", DEADLINE, |p| {
        container(p)["resources"]["limits"]["cpu"] == "300m"
            && p["status"]["observedGeneration"] == p["metadata"]["generation"]
    })?;
    ensure!(restarts(&after) == 0, "no restart: {}", container(&after));
    ensure!(container(&after)["containerID"] == container(&before)["containerID"], "same container");
    ensure!(container(&after)["allocatedResources"]["cpu"] == "300m", "allocated: {}", container(&after));
    ensure!(after["metadata"]["generation"].as_i64() > before["metadata"]["generation"].as_i64(), "generation bumped");
    ensure!(condition(&after, "PodResizeInProgress").is_none() && condition(&after, "PodResizePending").is_none());

    // Refused by the apiserver: a QoS change through resize, resources through the main resource.
    let patch = r#"{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"100m"}}}]}}"#;
    let (ok, _, err) = cluster.kubectl(&["patch", "pod", "cpu", "--subresource", "resize", "--patch", patch])?;
    ensure!(!ok && err.contains("Pod QOS Class may not change as a result of resizing"), "qos change: {err}");
    let (ok, _, err) = cluster.kubectl(&["patch", "pod", "cpu", "--patch", &resize_patch("400m", "64Mi")])?;
    ensure!(!ok && err.contains("pod updates may not change fields"), "main resource: {err}");

    // Memory with RestartContainer: one restart, into the new limit.
    let (ok, out) = resize(&cluster, "mem", "100m", "128Mi")?;
    ensure!(ok, "resize mem: {out}");
    wait_pod(&cluster, "mem", "restarted once", DEADLINE, |p| restarts(p) == 1 && running(p))?;
    let limit = read_number(&format!("{}/memory.limit_in_bytes", cgroup_dir(&cluster, "mem", "memory")?))?;
    ensure!(limit == 128 << 20, "new container has 128Mi, got {limit}");
    wait_pod(&cluster, "mem", "reporting 128Mi", DEADLINE, |p| {
        container(p)["resources"]["limits"]["memory"] == "128Mi"
    })?;

    // More cpu than the node has: Infeasible, nothing changes.
    let big_quota = format!("{}/cpu.cfs_quota_us", cgroup_dir(&cluster, "big", "cpu")?);
    let (ok, out) = resize(&cluster, "big", "1000", "64Mi")?;
    ensure!(ok, "resize big: {out}");
    let pending =
        wait_pod(&cluster, "big", "PodResizePending", DEADLINE, |p| condition(p, "PodResizePending").is_some())?;
    let c = condition(&pending, "PodResizePending").context("condition")?;
    ensure!(c["reason"] == "Infeasible", "reason: {c}");
    ensure!(c["message"].as_str().is_some_and(|m| m.starts_with("Node didn't have enough capacity: cpu")), "{c}");
    ensure!(read_number(&big_quota)? == 10_000, "quota unchanged");
    ensure!(
        container(&pending)["allocatedResources"]["cpu"] == "100m",
        "allocation unchanged: {}",
        container(&pending)
    );
    // Back within the node: the condition goes away.
    let (ok, out) = resize(&cluster, "big", "200m", "64Mi")?;
    ensure!(ok, "resize big back: {out}");
    wait_pod(&cluster, "big", "resized", DEADLINE, |p| {
        condition(p, "PodResizePending").is_none() && container(p)["resources"]["limits"]["cpu"] == "200m"
    })?;
    ensure!(read_number(&big_quota)? == 20_000, "quota 20 ms");
    Ok(())
}
