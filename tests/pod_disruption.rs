//! PodDisruptionBudgets and `kubectl drain` on the real stack (issue 13):
//! one `bosun up` node, the real kubectl, a Deployment `web` of 2 replicas.
//! - `kubectl create pdb web --min-available=2` (sent as protobuf): `kubectl
//!   get pdb` prints kubectl's columns and ALLOWED DISRUPTIONS 0;
//! - `kubectl drain --timeout=5s` cordons the node and fails: every eviction
//!   is refused with upstream's disruption budget message; both pods run on;
//! - at `minAvailable: 1` the drain evicts exactly one pod (its replacement
//!   is Pending: the only node is cordoned) and times out on the other;
//! - at `minAvailable: 0` the drain succeeds, both pods are Pending, and
//!   `kubectl uncordon` brings them back to Running.

mod support;

use std::time::Duration;

use anyhow::{ensure, Result};
use serde_json::Value;
use support::cluster::Cluster;
use support::wait::wait_until;

const NODE: &str = "pdb-node";
const REFUSED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// Waits until budget `web` has seen its current generation and allows `allowed`.
fn settled(cluster: &Cluster, allowed: i64) -> Result<Value> {
    wait_until(&format!("budget web allowing {allowed}"), || {
        let pdb = cluster.json(&["get", "pdb", "web"])?;
        let seen = pdb["status"]["observedGeneration"] == pdb["metadata"]["generation"];
        Ok((seen && pdb["status"]["disruptionsAllowed"] == allowed).then_some(pdb))
    })
}

/// The app=web pods: (name, phase, node).
fn web_pods(cluster: &Cluster) -> Result<Vec<(String, String, String)>> {
    let list = cluster.json(&["get", "pods", "-l", "app=web"])?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&p["metadata"]["name"]), s(&p["status"]["phase"]), s(&p["spec"]["nodeName"]))
        })
        .collect())
}

fn drain(cluster: &Cluster, timeout: &str) -> Result<(bool, String)> {
    let (ok, out, err) = cluster.kubectl(&["drain", NODE, "--ignore-daemonsets", &format!("--timeout={timeout}")])?;
    let output = format!("{out}{err}");
    println!("kubectl drain --timeout={timeout} (ok={ok}):\n{output}");
    Ok((ok, output))
}

fn unschedulable(cluster: &Cluster) -> Result<bool> {
    Ok(cluster.json(&["get", "node", NODE])?["spec"]["unschedulable"] == true)
}

#[test]
fn drain_respects_the_disruption_budget() -> Result<()> {
    let cluster = Cluster::start(NODE)?;
    let manifest = cluster.web_manifest()?.replace("replicas: 3", "replicas: 2");
    let (ok, out, err) = cluster.apply_stdin(&manifest)?;
    ensure!(ok, "apply: {err}{out}");
    cluster.wait_running(2, Duration::from_secs(120))?;

    cluster.kubectl_ok(&["create", "poddisruptionbudget", "web", "--selector=app=web", "--min-available=2"])?;
    let pdb = settled(&cluster, 0)?;
    ensure!(pdb["status"]["currentHealthy"] == 2 && pdb["status"]["expectedPods"] == 2, "{}", pdb["status"]);
    let table = cluster.kubectl_ok(&["get", "pdb"])?;
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    ensure!(header == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    ensure!(row[..4] == ["web", "2", "N/A", "0"], "{table}");
    let described = cluster.kubectl_ok(&["describe", "pdb", "web"])?;
    let words = described.split_whitespace().collect::<Vec<_>>().join(" ");
    ensure!(words.contains("Min available: 2") && words.contains("Allowed disruptions: 0"), "{described}");

    // No disruption allowed: the drain cordons, is refused, and gives up.
    let (ok, output) = drain(&cluster, "5s")?;
    ensure!(!ok && output.contains(REFUSED), "drain must be refused by the budget: {output}");
    ensure!(unschedulable(&cluster)?, "the node is cordoned");
    cluster.wait_running(2, Duration::from_secs(30))?;

    // One allowed: exactly one pod is evicted; its replacement cannot be scheduled.
    cluster.kubectl_ok(&["patch", "pdb", "web", "--type=merge", "-p", r#"{"spec":{"minAvailable":1}}"#])?;
    settled(&cluster, 1)?;
    // Long enough for the evicted pod's deletion to be seen, short for the refused one.
    let (ok, output) = drain(&cluster, "20s")?;
    ensure!(!ok && output.contains("evicted") && output.contains(REFUSED), "one eviction, then refused: {output}");
    let pods = wait_until("one running and one pending web pod", || {
        let pods = web_pods(&cluster)?;
        let running = pods.iter().filter(|p| p.1 == "Running").count();
        let pending = pods.iter().filter(|p| p.1 == "Pending" && p.2.is_empty()).count();
        Ok((pods.len() == 2 && running == 1 && pending == 1).then_some(pods))
    })?;
    println!("after one eviction: {pods:?}");

    // None needed: the drain completes; both pods wait for a schedulable node.
    cluster.kubectl_ok(&["patch", "pdb", "web", "--type=merge", "-p", r#"{"spec":{"minAvailable":0}}"#])?;
    settled(&cluster, 1)?;
    let (ok, output) = drain(&cluster, "120s")?;
    ensure!(ok && output.contains(&format!("node/{NODE} drained")), "drain: {output}");
    ensure!(unschedulable(&cluster)?, "the drained node stays cordoned");
    wait_until("both web pods pending", || {
        let pods = web_pods(&cluster)?;
        Ok((pods.len() == 2 && pods.iter().all(|p| p.1 == "Pending" && p.2.is_empty())).then_some(()))
    })?;

    cluster.kubectl_ok(&["uncordon", NODE])?;
    ensure!(!unschedulable(&cluster)?, "uncordoned");
    cluster.wait_running(2, Duration::from_secs(120))?;
    let pdb = settled(&cluster, 2)?;
    ensure!(pdb["status"]["currentHealthy"] == 2, "{}", pdb["status"]);
    Ok(())
}
