//! apps/v1 DaemonSets and StatefulSets on the real stack (`bosun up`, real
//! kubectl), one cluster shared by the scenarios:
//! - a DaemonSet gets exactly one Ready pod on the node (placed by the
//!   scheduler through its node affinity), `kubectl rollout status ds`
//!   succeeds, `kubectl get ds` prints upstream's columns, and an env change
//!   in the template rolls the pod;
//! - a StatefulSet of 3 creates web-0, web-1, web-2 in order (each after the
//!   previous one was Ready, read from the pods' recorded times), `kubectl
//!   scale sts --replicas=1` removes web-2 then web-1, and a template change
//!   rolls the pods in reverse ordinal order; with a partition only the
//!   pods at or above it update, and a deleted pod below it comes back at the
//!   current revision;
//! - both keep ControllerRevisions: `kubectl rollout history` lists them and
//!   `kubectl rollout undo ds` brings the previous template back;
//! - invalid objects (selector not matching, volumeClaimTemplates) get a 422
//!   naming the field.

mod support;

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use support::cluster::Cluster;
use support::pods::{seconds, watch_objects};
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
    for field in
        ["desiredNumberScheduled", "currentNumberScheduled", "numberReady", "updatedNumberScheduled", "numberAvailable"]
    {
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

    // History: two ControllerRevisions; `rollout undo` brings VERSION=1 back.
    let history = cluster.kubectl_ok(&["rollout", "history", "ds/agent"])?;
    let numbers: Vec<&str> = history.lines().filter_map(|l| l.split_whitespace().next()).collect();
    ensure!(numbers.contains(&"1") && numbers.contains(&"2"), "rollout history: {history}");
    let revisions = cluster.kubectl_ok(&["get", "controllerrevisions"])?;
    ensure!(revisions.contains("daemonset.apps/agent"), "kubectl get controllerrevisions: {revisions}");
    cluster.kubectl_ok(&["rollout", "undo", "ds/agent"])?;
    cluster.kubectl_ok(&["rollout", "status", "ds/agent", ROLLOUT_TIMEOUT])?;
    let undone = wait_until("the undone daemon pod", || {
        let pods = live_pods(cluster, "app=agent")?;
        Ok((pods.len() == 1 && env_of(&pods[0], "VERSION").as_deref() == Some("1") && is_ready(&pods[0])).then_some(()))
    });
    undone.context("rollout undo")?;
    cluster.kubectl_ok(&["delete", "ds", "agent", "--wait=true"])?;
    wait_until("daemon pods collected", || Ok(live_pods(cluster, "app=agent")?.is_empty().then_some(())))?;
    Ok(())
}

/// Pods web-0..web-(n-1) by ordinal, live ones only.
fn members(cluster: &Cluster) -> Result<Vec<Value>> {
    let mut pods = live_pods(cluster, "app=web")?;
    pods.sort_by_key(|p| {
        p["metadata"]["labels"]["apps.kubernetes.io/pod-index"].as_str().unwrap_or_default().to_string()
    });
    Ok(pods)
}

fn created(pod: &Value) -> Result<i64> {
    seconds(&pod["metadata"]["creationTimestamp"]).context("creationTimestamp")
}

fn ready_at(pod: &Value) -> Result<i64> {
    let ready = pod["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Ready");
    ready.and_then(|c| seconds(&c["lastTransitionTime"])).context("Ready time")
}

/// Each pod of `order` was created no earlier than the previous one became
/// Ready, and strictly after it was created (readiness takes >= 1 s).
fn check_created_in_order(pods: &[&Value]) -> Result<()> {
    for pair in pods.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        let names = (&before["metadata"]["name"], &after["metadata"]["name"]);
        ensure!(
            created(after)? >= ready_at(before)? && created(after)? > created(before)?,
            "{} created before {} was Ready: {before:#} {after:#}",
            names.1,
            names.0
        );
    }
    Ok(())
}

fn statefulset_scenario(cluster: &Cluster, image: &str) -> Result<()> {
    let sts = |version: &str| {
        let mut main = container(image, version);
        // Readiness takes at least a second, so the order shows in whole-second timestamps.
        main["readinessProbe"] = json!({"exec": {"command": ["true"]}, "initialDelaySeconds": 1, "periodSeconds": 1});
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
            "spec": {"replicas": 3, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [main]}}}})
    };
    let mut with_claims = sts("1");
    with_claims["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]);
    expect_invalid(cluster, &with_claims, "spec.volumeClaimTemplates")?;

    apply(cluster, &sts("1"))?;
    cluster.kubectl_ok(&["rollout", "status", "sts/web", ROLLOUT_TIMEOUT])?;
    let pods = members(cluster)?;
    let names: Vec<&str> = pods.iter().filter_map(|p| p["metadata"]["name"].as_str()).collect();
    ensure!(names == ["web-0", "web-1", "web-2"], "members: {names:?}");
    for (i, p) in pods.iter().enumerate() {
        let name = format!("web-{i}");
        ensure!(is_ready(p), "{name} Ready: {p:#}");
        ensure!(p["spec"]["hostname"] == name.as_str() && p["spec"]["subdomain"] == "web", "identity: {p:#}");
        ensure!(p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == name.as_str(), "labels: {p:#}");
    }
    check_created_in_order(&pods.iter().collect::<Vec<_>>())?;
    let table = cluster.kubectl_ok(&["get", "sts", "web"])?;
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    ensure!(header == ["NAME", "READY", "AGE"] && table.contains("3/3"), "kubectl get sts: {table}");

    // Scale down to 1: web-2 goes first, web-1 only once web-2 is gone
    // (in the order the apiserver's watch records).
    let watch_file = cluster.dir.join("sts-watch.json");
    let mut watch = std::process::Command::new("kubectl")
        .env("KUBECONFIG", &cluster.kubeconfig)
        .args(["get", "pods", "-l", "app=web", "-w", "-o", "json", "--output-watch-events"])
        .stdout(std::fs::File::create(&watch_file)?)
        .spawn()?;
    cluster.kubectl_ok(&["scale", "sts", "web", "--replicas=1"])?;
    let scaled = wait_until("web scaled to 1", || {
        let all = cluster.json(&["get", "pods", "-l", "app=web"])?;
        let left: Vec<Value> = all["items"].as_array().cloned().unwrap_or_default();
        Ok((left.len() == 1).then_some(left))
    });
    let _ = watch.kill();
    let _ = watch.wait();
    let scaled = scaled?;
    ensure!(scaled[0]["metadata"]["name"] == "web-0", "web-0 stays: {scaled:#?}");
    cluster.kubectl_ok(&["rollout", "status", "sts/web", ROLLOUT_TIMEOUT])?;
    let events = watch_objects(&std::fs::read_to_string(&watch_file)?);
    let position = |name: &str, what: &dyn Fn(&Value) -> bool| {
        events.iter().position(|e| e["object"]["metadata"]["name"] == name && what(e))
    };
    let terminating = |e: &Value| !e["object"]["metadata"]["deletionTimestamp"].is_null();
    let removed = |e: &Value| e["type"] == "DELETED";
    let web2_gone = position("web-2", &removed).context("web-2 DELETED in the watch")?;
    let web1_terminating = position("web-1", &terminating).context("web-1 terminating in the watch")?;
    ensure!(
        position("web-2", &terminating).is_some_and(|t| t < web2_gone) && web2_gone < web1_terminating,
        "scale-down order: web-2 deleted at event {web2_gone}, web-1 terminating at event {web1_terminating}"
    );

    // Back to 3, then a template change rolls web-2, web-1, web-0 in turn.
    cluster.kubectl_ok(&["scale", "sts", "web", "--replicas=3"])?;
    cluster.kubectl_ok(&["rollout", "status", "sts/web", ROLLOUT_TIMEOUT])?;
    cluster.kubectl_ok(&["set", "env", "sts/web", "VERSION=2"])?;
    cluster.kubectl_ok(&["rollout", "status", "sts/web", ROLLOUT_TIMEOUT])?;
    let rolled = members(cluster)?;
    ensure!(rolled.len() == 3, "three members after the roll: {rolled:#?}");
    for p in &rolled {
        ensure!(env_of(p, "VERSION").as_deref() == Some("2") && is_ready(p), "rolled: {p:#}");
    }
    check_created_in_order(&[&rolled[2], &rolled[1], &rolled[0]]).context("rolled in reverse ordinal order")?;
    let status = cluster.json(&["get", "sts", "web"])?["status"].clone();
    ensure!(
        status["currentRevision"] == status["updateRevision"] && status["updatedReplicas"] == 3,
        "status after the roll: {status:#}"
    );
    // A partitioned update: only web-2 (ordinal >= 2) moves to VERSION=3; a
    // deleted web-0 comes back at the current revision (VERSION=2).
    let partitioned = json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 2}},
        "template": {"spec": {"containers": [{"name": "main", "env": [{"name": "VERSION", "value": "3"}]}]}}}});
    cluster.kubectl_ok(&["patch", "sts", "web", "-p", &partitioned.to_string()])?;
    cluster.kubectl_ok(&["rollout", "status", "sts/web", ROLLOUT_TIMEOUT])?;
    let versions = |pods: &[Value]| pods.iter().map(|p| env_of(p, "VERSION").unwrap_or_default()).collect::<Vec<_>>();
    let split = members(cluster)?;
    ensure!(versions(&split) == ["2", "2", "3"], "partitioned roll: {:?}", versions(&split));
    let old_web0 = split[0]["metadata"]["uid"].clone();
    cluster.kubectl_ok(&["delete", "pod", "web-0", "--wait=true"])?;
    let back = wait_until("web-0 back and Ready", || {
        let pods = members(cluster)?;
        let web0 = pods.first().filter(|p| p["metadata"]["name"] == "web-0" && p["metadata"]["uid"] != old_web0);
        Ok(web0.filter(|p| is_ready(p)).cloned())
    })?;
    let current = cluster.json(&["get", "sts", "web"])?["status"]["currentRevision"].clone();
    ensure!(
        env_of(&back, "VERSION").as_deref() == Some("2")
            && back["metadata"]["labels"]["controller-revision-hash"] == current,
        "web-0 recreated at the current revision {current}: {back:#}"
    );

    let history = cluster.kubectl_ok(&["rollout", "history", "sts/web"])?;
    let numbers: Vec<&str> = history.lines().filter_map(|l| l.split_whitespace().next()).collect();
    ensure!(["1", "2", "3"].iter().all(|n| numbers.contains(n)), "rollout history: {history}");
    cluster.kubectl_ok(&["delete", "sts", "web", "--wait=true"])?;
    wait_until("stateful pods collected", || Ok(live_pods(cluster, "app=web")?.is_empty().then_some(())))?;
    Ok(())
}

#[test]
fn daemonsets_and_statefulsets_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start(NODE)?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    daemonset_scenario(&cluster, &image).context("daemonset")?;
    statefulset_scenario(&cluster, &image).context("statefulset")?;
    Ok(())
}
