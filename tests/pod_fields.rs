//! Pod spec fields on the real stack (`bosun up`, real kubectl) that issue 8
//! left for last: `readinessGates` (Ready waits for every gate's condition,
//! which someone else writes through the status subresource and the agent
//! keeps).
//!
//! One cluster for the whole binary; the scenarios share it.

mod support;

use std::time::Duration;

use anyhow::{ensure, Result};
use serde_json::Value;
use support::cluster::Cluster;
use support::pods::{condition, wait_pod};

const WAIT: Duration = Duration::from_secs(90);

fn status_of<'a>(pod: &'a Value, type_: &str) -> &'a str {
    condition(pod, type_).and_then(|c| c["status"].as_str()).unwrap_or("missing")
}

fn apply(cluster: &Cluster, manifest: &str) -> Result<()> {
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    let (ok, out, err) = cluster.apply_stdin(&manifest.replace("IMAGE", &image))?;
    ensure!(ok, "kubectl apply: {err}{out}");
    Ok(())
}

const GATED: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: gated, labels: {app: gated}}
  spec:
    terminationGracePeriodSeconds: 1
    readinessGates: [{conditionType: example.com/lb}]
    containers:
    - {name: app, image: IMAGE, command: ["sleep", "3600"], ports: [{containerPort: 80}]}
- apiVersion: v1
  kind: Service
  metadata: {name: gated}
  spec:
    selector: {app: gated}
    ports: [{port: 80}]
"#;

/// Ready of the gated pod's endpoint in its Service's EndpointSlice.
fn endpoint_ready(cluster: &Cluster) -> Result<Option<bool>> {
    let slices = cluster.json(&["get", "endpointslices", "-l", "kubernetes.io/service-name=gated"])?;
    Ok(slices["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
        .find(|e| e["targetRef"]["name"] == "gated")
        .and_then(|e| e["conditions"]["ready"].as_bool()))
}

fn wait_endpoint(cluster: &Cluster, ready: bool) -> Result<()> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = endpoint_ready(cluster)?;
        if now == Some(ready) {
            return Ok(());
        }
        ensure!(std::time::Instant::now() < deadline, "gated endpoint ready={now:?}, want {ready}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn patch_gate(cluster: &Cluster, status: &str) -> Result<()> {
    let patch = format!(r#"{{"status":{{"conditions":[{{"type":"example.com/lb","status":"{status}"}}]}}}}"#);
    cluster.kubectl_ok(&["patch", "pod", "gated", "--subresource=status", "-p", &patch])?;
    Ok(())
}

/// A gated pod is not Ready while its containers are, until the gate's
/// condition is True; the agent keeps that condition in every write.
fn readiness_gates(cluster: &Cluster) -> Result<()> {
    apply(cluster, GATED)?;
    let pod = wait_pod(cluster, "gated", "containers ready", WAIT, |p| status_of(p, "ContainersReady") == "True")?;
    let ready = condition(&pod, "Ready").cloned().unwrap_or_default();
    ensure!(ready["status"] == "False", "Ready while the gate is missing: {ready}");
    ensure!(ready["reason"] == "ReadinessGatesNotReady", "reason: {ready}");
    let message = ready["message"].as_str().unwrap_or_default();
    ensure!(message.contains(r#"readiness gate "example.com/lb" does not exist"#), "message: {message}");
    wait_endpoint(cluster, false)?;

    patch_gate(cluster, "True")?;
    let pod = wait_pod(cluster, "gated", "Ready", WAIT, |p| status_of(p, "Ready") == "True")?;
    ensure!(status_of(&pod, "example.com/lb") == "True", "gate condition kept: {:#?}", pod["status"]);
    wait_endpoint(cluster, true)?;

    patch_gate(cluster, "False")?;
    let pod = wait_pod(cluster, "gated", "unready again", WAIT, |p| status_of(p, "Ready") == "False")?;
    let message = condition(&pod, "Ready").and_then(|c| c["message"].as_str()).unwrap_or_default();
    ensure!(message.contains(r#"is not "True", but False"#), "message: {message}");
    ensure!(status_of(&pod, "example.com/lb") == "False", "gate condition kept: {:#?}", pod["status"]);
    ensure!(status_of(&pod, "ContainersReady") == "True", "containers stay ready");
    wait_endpoint(cluster, false)?;
    cluster.kubectl_ok(&["delete", "pod", "gated", "--wait=false"])?;
    Ok(())
}

#[test]
fn pod_fields_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start("fields-node")?;
    readiness_gates(&cluster)?;
    Ok(())
}
