//! Pod-level helpers for the probe, hook and termination suites: read a
//! pod and its container status through kubectl, wait on conditions, find
//! Events, parse API times and a `kubectl get -w -o json` stream.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use serde_json::Value;

use super::cluster::Cluster;

/// The pod as JSON (`None` when it does not exist).
pub fn pod(cluster: &Cluster, name: &str) -> Result<Option<Value>> {
    let (ok, out, err) = cluster.kubectl(&["get", "pod", name, "-o", "json"])?;
    if !ok && err.contains("NotFound") {
        return Ok(None);
    }
    ensure!(ok, "kubectl get pod {name}: {err}");
    Ok(Some(serde_json::from_str(&out)?))
}

/// The first container status of a pod.
pub fn container(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

/// The restart count of the pod's first container.
pub fn restarts(pod: &Value) -> i64 {
    container(pod)["restartCount"].as_i64().unwrap_or(0)
}

/// A pod condition (`Ready`, `ContainersReady`, ...).
pub fn condition<'a>(pod: &'a Value, type_: &str) -> Option<&'a Value> {
    pod["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

/// Waits until `check` holds for pod `name`; returns the pod then.
pub fn wait_pod(
    cluster: &Cluster,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let current = pod(cluster, name)?;
        if let Some(p) = current.as_ref().filter(|p| check(p)) {
            return Ok(p.clone());
        }
        ensure!(Instant::now() < deadline, "pod {name}: not {what} within {timeout:?}: {current:#?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// (reason, message) of every Event about pod `name`.
pub fn events(cluster: &Cluster, name: &str) -> Result<Vec<(String, String)>> {
    let all = cluster.json(&["get", "events"])?;
    Ok(all["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// Waits for an Event about `name` with `reason` whose message contains
/// `text`; returns that message.
pub fn wait_event(cluster: &Cluster, name: &str, reason: &str, text: &str, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let all = events(cluster, name)?;
        if let Some((_, message)) = all.iter().find(|(r, m)| r == reason && m.contains(text)) {
            return Ok(message.clone());
        }
        ensure!(
            Instant::now() < deadline,
            "no {reason} event containing {text:?} for {name} within {timeout:?}: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// An API time (RFC 3339) as seconds since the epoch.
pub fn seconds(time: &Value) -> Option<i64> {
    time.as_str()?.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Now, in seconds since the epoch (the node's clock: same machine).
pub fn now_seconds() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The objects of a `kubectl get -w -o json` output, in order.
pub fn watch_objects(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text).into_iter::<Value>().map_while(Result::ok).collect()
}

/// Whether `object` (a Pod or Node as JSON) has condition `Ready=True`.
pub fn is_ready(object: &Value) -> bool {
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}
