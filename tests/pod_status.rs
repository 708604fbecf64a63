//! The agent's status manager and event recorder on the real stack
//! (`bosun up`, real kubectl): the statuses of many pods converge; a pod
//! whose status does not change is never patched (its resourceVersion stays
//! put over several steady sync periods); a crash-looping pod gets ONE
//! aggregated BackOff Event whose count grows, not one Event per back-off.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use serde_json::Value;
use support::cluster::Cluster;
use support::pods::is_ready;

const MANY: usize = 20;
/// The agent's steady sync period is 10 s; watch 2.5 of them.
const STEADY_WINDOW: Duration = Duration::from_secs(25);
const DEADLINE: Duration = Duration::from_secs(180);

fn manifest(image: &str) -> String {
    let pod = |name: &str, label: &str, script: &str| {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: {label}\nspec:\n  \
             terminationGracePeriodSeconds: 0\n  containers:\n    - name: main\n      image: {image}\n      \
             command: [\"sh\", \"-c\", \"{script}\"]\n"
        )
    };
    let mut text = pod("crash", "crash", "echo crashing; exit 1");
    for i in 0..MANY {
        text.push_str(&pod(&format!("many-{i}"), "many", "sleep 3600"));
    }
    text
}

/// Running pods of app=many whose Ready condition is True: name -> resourceVersion.
fn ready_versions(cluster: &Cluster) -> Result<BTreeMap<String, String>> {
    let pods = cluster.json(&["get", "pods", "-l", "app=many"])?;
    Ok(pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["status"]["phase"] == "Running")
        .filter(|p| is_ready(p))
        .filter_map(|p| {
            Some((p["metadata"]["name"].as_str()?.to_string(), p["metadata"]["resourceVersion"].as_str()?.to_string()))
        })
        .collect())
}

/// The BackOff Events about pod `crash`.
fn backoff_events(cluster: &Cluster) -> Result<Vec<Value>> {
    let events = cluster.json(&["get", "events"])?;
    Ok(events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == "crash" && e["reason"] == "BackOff")
        .cloned()
        .collect())
}

fn restart_count(cluster: &Cluster, pod: &str) -> Result<i64> {
    let pod = cluster.json(&["get", "pod", pod])?;
    Ok(pod["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0))
}

#[test]
fn status_manager_and_event_recorder_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start("status-node")?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    let (ok, _, err) = cluster.apply_stdin(&manifest(&image))?;
    ensure!(ok, "applying pods: {err}");

    // Every status converges through the one writer.
    let deadline = Instant::now() + DEADLINE;
    let versions = loop {
        let versions = ready_versions(&cluster)?;
        if versions.len() == MANY {
            break versions;
        }
        ensure!(
            Instant::now() < deadline,
            "{} of {MANY} pods Running and Ready: {}",
            versions.len(),
            cluster.kubectl_ok(&["get", "pods", "-o", "wide"])?
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let steady_since = Instant::now();
    // What the steady pods looked like then (to show what a write changed).
    let before = cluster.json(&["get", "pods", "-l", "app=many", "--show-managed-fields"])?;

    // The crash loop: one BackOff Event, its count growing with the back-offs.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let events = backoff_events(&cluster)?;
        ensure!(events.len() <= 1, "one aggregated BackOff Event, got {}: {events:#?}", events.len());
        if events.first().and_then(|e| e["count"].as_i64()).is_some_and(|count| count >= 2) {
            break;
        }
        ensure!(Instant::now() < deadline, "no BackOff Event with count >= 2: {events:#?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let event = &backoff_events(&cluster)?[0];
    ensure!(event["type"] == "Warning", "BackOff is a Warning: {event}");
    ensure!(event["involvedObject"]["fieldPath"] == "spec.containers{main}", "about the container: {event}");
    ensure!(event["firstTimestamp"] != event["lastTimestamp"], "lastTimestamp moved on: {event}");
    ensure!(restart_count(&cluster, "crash")? >= 1, "the crash-looping pod's restarts are reported");

    // Steady pods: nothing changed, so nothing was written (the observation
    // window covers several steady sync periods of every worker).
    let left = STEADY_WINDOW.saturating_sub(steady_since.elapsed());
    std::thread::sleep(left);
    let after = ready_versions(&cluster)?;
    if after != versions {
        // Say what was written, so a failure explains itself.
        let changed: Vec<&String> =
            after.iter().filter(|(pod, v)| versions.get(*pod) != Some(v)).map(|(p, _)| p).collect();
        let mut shown = String::new();
        for pod in &changed {
            let json = cluster.json(&["get", "pod", pod.as_str(), "--show-managed-fields"])?;
            let was = before["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["metadata"]["name"] == pod.as_str())
                .cloned()
                .unwrap_or_default();
            shown.push_str(&format!(
                "\n{pod}: before: metadata {} status {}\n{pod}: after: metadata {} status {}",
                was["metadata"], was["status"], json["metadata"], json["status"]
            ));
        }
        let events = cluster.kubectl_ok(&["get", "events", "--sort-by=.lastTimestamp"])?;
        anyhow::bail!("steady pods were patched: before {versions:?}, after {after:?}{shown}\nevents:\n{events}");
    }

    cluster.kubectl_ok(&["delete", "pods", "--all", "--wait=true", "--timeout=120s"])?;
    Ok(())
}
