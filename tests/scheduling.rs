//! control-lite's scheduler on the real stack (`bosun up`, real kubectl):
//! PriorityClasses and priority admission, FailedScheduling Events worded as
//! upstream for node affinity, taints, pod anti-affinity and topology
//! spread, and preemption of a lower-priority pod (with
//! `preemptionPolicy: Never` respected). One cluster, scenarios in turn.

mod support;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use support::cluster::Cluster;
use support::pods::{pod, wait_event, wait_pod};

const NODE: &str = "sched-node";
const DEADLINE: Duration = Duration::from_secs(120);

/// A pod running `sleep` with `spec` merged into its spec.
fn pod_manifest(image: &str, name: &str, labels: Value, spec: Value) -> String {
    let mut base = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": image, "command": ["sleep", "3600"]}]}});
    for (k, v) in spec.as_object().cloned().unwrap_or_default() {
        base["spec"][k] = v;
    }
    base.to_string()
}

fn apply(cluster: &Cluster, manifest: &str) -> Result<()> {
    let (ok, out, err) = cluster.apply_stdin(manifest)?;
    ensure!(ok, "kubectl apply failed: {err}{out}");
    Ok(())
}

fn node_name(p: &Value) -> &str {
    p["spec"]["nodeName"].as_str().unwrap_or_default()
}

/// Waits for the FailedScheduling Event of `name` and checks its whole message.
fn expect_failed(cluster: &Cluster, name: &str, message: &str) -> Result<()> {
    let got = wait_event(cluster, name, "FailedScheduling", "nodes are available", DEADLINE)?;
    ensure!(got == message, "FailedScheduling of {name}:\n got  {got:?}\n want {message:?}");
    let p = pod(cluster, name)?.context("pod exists")?;
    ensure!(node_name(&p).is_empty(), "{name} must stay pending: {p:#}");
    Ok(())
}

fn delete_pods(cluster: &Cluster, names: &[&str]) -> Result<()> {
    let mut args = vec!["delete", "pod", "--wait=true", "--grace-period=0", "--force"];
    args.extend_from_slice(names);
    cluster.kubectl_ok(&args)?;
    Ok(())
}

#[test]
fn scheduler_plugins_priority_and_preemption_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start(NODE)?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);

    // PriorityClasses: the system ones are built in; user ones are served.
    let classes = cluster.kubectl_ok(&["get", "priorityclasses", "--no-headers"])?;
    for builtin in ["system-node-critical", "system-cluster-critical"] {
        ensure!(classes.contains(builtin), "{builtin} missing: {classes}");
    }
    for (name, value, policy) in
        [("low", 10, "PreemptLowerPriority"), ("high", 1000, "PreemptLowerPriority"), ("polite", 1000, "Never")]
    {
        apply(
            &cluster,
            &json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "preemptionPolicy": policy})
            .to_string(),
        )?;
    }
    let (ok, _, err) = cluster.kubectl(&["create", "priorityclass", "sys", "--value=5"])?;
    ensure!(ok, "kubectl create priorityclass: {err}");
    let (ok, _, err) = cluster.kubectl(&["create", "priorityclass", "system-mine", "--value=5"])?;
    ensure!(!ok && err.contains("reserved"), "system- names are reserved: {err}");

    // Priority admission: the class fills spec.priority; an unknown class is a 422.
    let (ok, out, err) =
        cluster.apply_stdin(&pod_manifest(&image, "unknown-class", json!({}), json!({"priorityClassName": "nope"})))?;
    ensure!(
        !ok && err.contains("spec.priorityClassName") && err.contains("no PriorityClass with name nope was found"),
        "unknown class must be refused: {err}{out}"
    );
    ensure!(err.contains("is invalid"), "422 Invalid: {err}");

    // Node affinity: a required zone no node has.
    let affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["nowhere"]}]}]}}});
    apply(
        &cluster,
        &pod_manifest(&image, "far", json!({}), json!({"affinity": affinity, "priorityClassName": "low"})),
    )?;
    let far = wait_pod(&cluster, "far", "admitted", DEADLINE, |_| true)?;
    ensure!(far["spec"]["priority"] == 10 && far["spec"]["preemptionPolicy"] == "PreemptLowerPriority", "{far:#}");
    expect_failed(
        &cluster,
        "far",
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
    )?;
    // Preferred node affinity never blocks.
    let preferred = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50,
        "preference": {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["nowhere"]}]}}]}});
    apply(&cluster, &pod_manifest(&image, "near", json!({}), json!({"affinity": preferred})))?;
    wait_pod(&cluster, "near", "bound", DEADLINE, |p| node_name(p) == NODE)?;

    // Taints: an untolerated NoSchedule taint blocks; a toleration passes;
    // removing the taint lets the blocked pod in.
    cluster.kubectl_ok(&["taint", "nodes", NODE, "dedicated=db:NoSchedule"])?;
    apply(&cluster, &pod_manifest(&image, "tainted-out", json!({}), json!({})))?;
    expect_failed(
        &cluster,
        "tainted-out",
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}. \
         preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
    )?;
    let toleration = json!([{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]);
    apply(&cluster, &pod_manifest(&image, "tolerant", json!({}), json!({"tolerations": toleration})))?;
    wait_pod(&cluster, "tolerant", "bound", DEADLINE, |p| node_name(p) == NODE)?;
    cluster.kubectl_ok(&["taint", "nodes", NODE, "dedicated-"])?;
    wait_pod(&cluster, "tainted-out", "bound once the taint is gone", DEADLINE, |p| node_name(p) == NODE)?;

    // Pod anti-affinity by hostname: a second `solo` pod cannot join the first.
    let solo = |name: &str| {
        pod_manifest(
            &image,
            name,
            json!({"app": "solo"}),
            json!({"affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "solo"}},
                "topologyKey": "kubernetes.io/hostname"}]}}}),
        )
    };
    apply(&cluster, &solo("solo-1"))?;
    wait_pod(&cluster, "solo-1", "bound", DEADLINE, |p| node_name(p) == NODE)?;
    apply(&cluster, &solo("solo-2"))?;
    expect_failed(
        &cluster,
        "solo-2",
        "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules. \
         preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
    )?;
    // Pod affinity to the solo pod: placed beside it.
    apply(
        &cluster,
        &pod_manifest(
            &image,
            "friend",
            json!({}),
            json!({"affinity": {"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "solo"}},
            "topologyKey": "kubernetes.io/hostname"}]}}}),
        ),
    )?;
    wait_pod(&cluster, "friend", "bound", DEADLINE, |p| node_name(p) == NODE)?;

    // Topology spread: minDomains 2 with one node allows one pod, not two.
    let spread = |name: &str| {
        pod_manifest(
            &image,
            name,
            json!({"app": "spread"}),
            json!({"topologySpreadConstraints": [{"maxSkew": 1,
            "minDomains": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "spread"}}}]}),
        )
    };
    apply(&cluster, &spread("spread-1"))?;
    wait_pod(&cluster, "spread-1", "bound", DEADLINE, |p| node_name(p) == NODE)?;
    apply(&cluster, &spread("spread-2"))?;
    expect_failed(
        &cluster,
        "spread-2",
        "0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints. \
         preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
    )?;
    delete_pods(
        &cluster,
        &["far", "near", "tainted-out", "tolerant", "solo-1", "solo-2", "friend", "spread-1", "spread-2"],
    )?;

    // Preemption: a low-priority pod holds 60% of the node's cpu.
    let node = cluster.json(&["get", "node", NODE])?;
    let cpu = node["status"]["allocatable"]["cpu"].as_str().context("allocatable cpu")?;
    let millis: i64 = match cpu.strip_suffix('m') {
        Some(m) => m.parse()?,
        None => cpu.parse::<i64>()? * 1000,
    };
    let big = json!({"requests": {"cpu": format!("{}m", millis * 6 / 10)}});
    let hungry = |name: &str, class: &str| {
        let mut m: Value =
            serde_json::from_str(&pod_manifest(&image, name, json!({}), json!({"priorityClassName": class})))
                .expect("manifest");
        m["spec"]["containers"][0]["resources"] = big.clone();
        m.to_string()
    };
    apply(&cluster, &hungry("victim", "low"))?;
    wait_pod(&cluster, "victim", "running", DEADLINE, |p| p["status"]["phase"] == "Running")?;
    let victim_uid = pod(&cluster, "victim")?.context("victim")?["metadata"]["uid"].clone();
    // preemptionPolicy: Never waits instead of evicting.
    apply(&cluster, &hungry("polite", "polite"))?;
    expect_failed(
        &cluster,
        "polite",
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.",
    )?;
    delete_pods(&cluster, &["polite"])?;
    // A higher-priority pod evicts the victim, is nominated, then runs there.
    apply(&cluster, &hungry("preemptor", "high"))?;
    let preemptor_uid =
        pod(&cluster, "preemptor")?.context("preemptor")?["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let preempted = wait_event(&cluster, "victim", "Preempted", "Preempted by pod", DEADLINE)?;
    ensure!(preempted == format!("Preempted by pod {preemptor_uid} on node {NODE}"), "{preempted}");
    let running = wait_pod(&cluster, "preemptor", "running", DEADLINE, |p| p["status"]["phase"] == "Running")?;
    ensure!(node_name(&running) == NODE);
    let victim = pod(&cluster, "victim")?;
    ensure!(victim.as_ref().is_none_or(|v| v["metadata"]["uid"] != victim_uid), "victim gone: {victim:#?}");
    delete_pods(&cluster, &["preemptor"])?;
    Ok(())
}
