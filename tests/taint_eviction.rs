//! Taint-based eviction on the real stack (`bosun up`, real kubectl): a
//! `NoExecute` taint put on the node with `kubectl taint` evicts at once
//! the pod that does not tolerate it, the pod that tolerates it for a few
//! seconds once they ran out (counted from the taint's `timeAdded`, which
//! the apiserver stamps), and never the pod that tolerates it forever.
//! Every pod got the default five-minute tolerations of the `not-ready`
//! and `unreachable` taints at admission.

mod support;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use support::cluster::Cluster;
use support::wait::wait_until;

const NODE: &str = "taint-node";
const TAINT: &str = "bosun.test/evict";
const PATIENCE_SECS: i64 = 4;

fn pod(name: &str, image: &str, toleration: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: web\nspec:\n  \
         terminationGracePeriodSeconds: 0\n  tolerations: [{toleration}]\n  containers:\n    - name: main\n      \
         image: {image}\n      command: [\"sh\", \"-c\", \"sleep 3600\"]\n"
    )
}

/// Seconds since the epoch of an RFC 3339 field.
fn seconds(value: &Value) -> Result<i64> {
    let text = value.as_str().context("not a timestamp")?;
    Ok(text.parse::<jiff::Timestamp>().with_context(|| format!("timestamp {text}"))?.as_second())
}

/// The TaintManagerEviction Event of `pod`, if there is one.
fn eviction_event(cluster: &Cluster, pod: &str) -> Result<Option<Value>> {
    let events = cluster.json(&["get", "events"])?;
    Ok(events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["involvedObject"]["name"] == pod && e["reason"] == "TaintManagerEviction")
        .cloned())
}

fn pod_gone(cluster: &Cluster, pod: &str) -> Result<bool> {
    let (found, _, err) = cluster.kubectl(&["get", "pod", pod])?;
    Ok(!found && err.contains("NotFound"))
}

#[test]
fn no_execute_taints_evict_pods_by_their_tolerations() -> Result<()> {
    let cluster = Cluster::start(NODE)?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    let manifest = [
        pod("intolerant", &image, ""),
        pod(
            "patient",
            &image,
            &format!("{{key: {TAINT}, operator: Exists, effect: NoExecute, tolerationSeconds: {PATIENCE_SECS}}}"),
        ),
        pod("steadfast", &image, &format!("{{key: {TAINT}, operator: Exists, effect: NoExecute}}")),
    ]
    .concat();
    let (ok, _, err) = cluster.apply_stdin(&manifest)?;
    ensure!(ok, "applying pods: {err}");
    cluster.wait_running(3, Duration::from_secs(180))?;

    // Admission gave every pod the default tolerations (300 s).
    let intolerant = cluster.json(&["get", "pod", "intolerant"])?;
    let defaults: Vec<&Value> = intolerant["spec"]["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["effect"] == "NoExecute" && t["tolerationSeconds"] == 300)
        .collect();
    ensure!(defaults.len() == 2, "default not-ready/unreachable tolerations: {}", intolerant["spec"]["tolerations"]);

    cluster.kubectl_ok(&["taint", "node", NODE, &format!("{TAINT}=now:NoExecute")])?;
    let node = cluster.json(&["get", "node", NODE])?;
    let taint = node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["key"] == TAINT)
        .cloned()
        .context("the taint is on the node")?;
    let added = seconds(&taint["timeAdded"]).with_context(|| format!("the apiserver stamps timeAdded: {taint}"))?;

    // The intolerant pod goes at once, the patient one after its seconds.
    wait_until("the intolerant pod evicted and gone", || Ok(pod_gone(&cluster, "intolerant")?.then_some(())))?;
    wait_until("the patient pod evicted and gone", || Ok(pod_gone(&cluster, "patient")?.then_some(())))?;
    let first = eviction_event(&cluster, "intolerant")?.context("an Event says why intolerant went")?;
    let second = eviction_event(&cluster, "patient")?.context("an Event says why patient went")?;
    let message = first["message"].as_str().unwrap_or_default();
    ensure!(message == "Marking for deletion Pod default/intolerant", "upstream's message: {first}");
    let evicted_at = seconds(&second["firstTimestamp"])?;
    // Second precision on both sides: at most one second early.
    ensure!(
        evicted_at >= added + PATIENCE_SECS - 1,
        "patient was evicted {}s after the taint, before its {PATIENCE_SECS}s ran out",
        evicted_at - added
    );

    // The pod tolerating the taint forever stays, through the taint's removal.
    ensure!(eviction_event(&cluster, "steadfast")?.is_none(), "steadfast was never marked");
    cluster.kubectl_ok(&["taint", "node", NODE, &format!("{TAINT}-")])?;
    let running = cluster.running_pods("app=web")?;
    ensure!(running.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>() == ["steadfast"], "left running: {running:?}");
    cluster.kubectl_ok(&["delete", "pods", "--all", "--wait=true", "--timeout=120s"])?;
    Ok(())
}
