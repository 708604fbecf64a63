//! Resource usage on the real stack (`bosun up`, real kubectl, real
//! cgroupfs): `kubectl top pod` and `kubectl top node` print numbers with
//! nothing installed; a pod limited to `cpu: 100m` that spins is throttled
//! (CFS counters on `/metrics/cadvisor`) and uses about 0.1 CPU, measured
//! from the cumulative CPU counter and the times the Summary API recorded.
//! The proxy's Prometheus metrics are served on `127.0.0.1:10249/metrics`.

mod support;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use support::cluster::{get_within, Cluster};
use support::kubelet::Kubelet;
use support::wait::wait_until;

fn pod(cluster: &Cluster, name: &str, script: &str, resources: &str) -> Result<()> {
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {}/bosun/app:1.0\n    command: [\"sh\", \"-c\", {script:?}]\n    resources: {resources}\n",
        cluster.registry
    );
    let (ok, _, err) = cluster.apply_stdin(&manifest)?;
    ensure!(ok, "apply {name}: {err}");
    Ok(())
}

fn summary(kubelet: &Kubelet) -> Result<Value> {
    Ok(serde_json::from_str(&kubelet.get_within("/stats/summary", Duration::from_secs(10))?)?)
}

/// (cpu time in ns, when it was measured) of container `main` of pod `name`.
fn cpu_sample(kubelet: &Kubelet, name: &str) -> Result<Option<(u64, jiff::Timestamp)>> {
    let doc = summary(kubelet)?;
    let Some(pod) = doc["pods"].as_array().context("pods")?.iter().find(|p| p["podRef"]["name"] == name) else {
        return Ok(None);
    };
    let cpu = &pod["containers"][0]["cpu"];
    let (Some(used), Some(time)) = (cpu["usageCoreNanoSeconds"].as_u64(), cpu["time"].as_str()) else {
        return Ok(None);
    };
    Ok(Some((used, time.parse()?)))
}

/// A value of a `/metrics/cadvisor` series for pod `name`.
fn cadvisor(kubelet: &Kubelet, series: &str, name: &str) -> Result<Option<f64>> {
    let text = kubelet.get_within("/metrics/cadvisor", Duration::from_secs(10))?;
    let prefix = format!("{series}{{container=\"main\",namespace=\"default\",pod=\"{name}\"}} ");
    Ok(text.lines().find_map(|l| l.strip_prefix(&prefix)?.split(' ').next()?.parse().ok()))
}

/// `kubectl top` output rows (header skipped) once every expected name has a
/// row with a `<n>m` CPU and a `<n>Ki|Mi|Gi` memory column.
fn top_rows(cluster: &Cluster, args: &[&str], names: &[&str]) -> Result<Option<Vec<Vec<String>>>> {
    let (ok, out, err) = cluster.kubectl(args)?;
    if !ok {
        println!("kubectl {args:?}: {err}");
        return Ok(None);
    }
    let rows: Vec<Vec<String>> =
        out.lines().skip(1).map(|l| l.split_whitespace().map(str::to_string).collect()).collect();
    let cpu = |v: &String| v.strip_suffix('m').is_some_and(|n| n.parse::<u64>().is_ok());
    let memory = |v: &String| {
        ["Ki", "Mi", "Gi"].iter().any(|unit| v.strip_suffix(unit).is_some_and(|n| n.parse::<u64>().is_ok()))
    };
    let numeric = |row: &Vec<String>| row.iter().any(cpu) && row.iter().any(memory);
    let all = names.iter().all(|n| rows.iter().any(|r| r.first().map(String::as_str) == Some(n) && numeric(r)));
    Ok(all.then_some(rows))
}

#[test]
fn top_and_cpu_throttling_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start("stats-node")?;
    pod(&cluster, "spin", "while :; do :; done", "{limits: {cpu: 100m, memory: 64Mi}}")?;
    pod(&cluster, "idle", "exec sleep 3600", "{}")?;
    cluster.kubectl_ok(&["wait", "--for=condition=Ready", "pod/spin", "pod/idle", "--timeout=120s"])?;
    let kubelet = Kubelet::of(&cluster, "stats-node")?;

    // kubectl top pod / node: numbers, served by control-lite from the kubelet.
    let pods = wait_until("kubectl top pod rows", || top_rows(&cluster, &["top", "pod"], &["spin", "idle"]))?;
    println!("kubectl top pod:\n{pods:?}");
    let nodes = wait_until("kubectl top node rows", || top_rows(&cluster, &["top", "node"], &["stats-node"]))?;
    println!("kubectl top node:\n{nodes:?}");
    let node_row = &nodes[0];
    ensure!(node_row.len() == 5 && node_row[2].ends_with('%') && node_row[4].ends_with('%'), "{node_row:?}");
    let one = cluster.kubectl_ok(&["top", "pod", "spin", "--containers"])?;
    ensure!(one.contains("spin") && one.contains("main"), "{one}");

    // The spinner uses about 0.1 CPU: the counter's change over >= 10 s of the
    // Summary's own timestamps.
    let (used0, at0) = wait_until("spin cpu sample", || cpu_sample(&kubelet, "spin"))?;
    let (used1, at1) = wait_until("a later spin cpu sample", || {
        Ok(cpu_sample(&kubelet, "spin")?.filter(|(_, at)| at.duration_since(at0).as_secs_f64() >= 10.0))
    })?;
    let cores = (used1 - used0) as f64 / 1e9 / at1.duration_since(at0).as_secs_f64();
    println!("spin: {cores:.3} CPU over {:.1} s", at1.duration_since(at0).as_secs_f64());
    ensure!((0.05..=0.13).contains(&cores), "a 100m-limited spinner uses about 0.1 CPU, used {cores:.3}");

    // ... and is throttled, more and more.
    let throttled =
        cadvisor(&kubelet, "container_cpu_cfs_throttled_periods_total", "spin")?.context("spin throttled")?;
    let periods = cadvisor(&kubelet, "container_cpu_cfs_periods_total", "spin")?.context("spin periods")?;
    println!("spin: throttled in {throttled} of {periods} CFS periods");
    ensure!(throttled > 0.0 && periods >= throttled, "throttled {throttled} of {periods}");
    let idle = cadvisor(&kubelet, "container_cpu_cfs_throttled_periods_total", "idle")?.context("idle throttled")?;
    ensure!(idle == 0.0, "an unlimited sleeper is never throttled: {idle}");

    // Rates on the Summary API: the spinner's usageNanoCores is ~0.1 core too.
    let doc = summary(&kubelet)?;
    let spin =
        doc["pods"].as_array().context("pods")?.iter().find(|p| p["podRef"]["name"] == "spin").context("spin")?;
    let rate = spin["cpu"]["usageNanoCores"].as_u64().context("spin rate")? as f64 / 1e9;
    ensure!((0.03..=0.15).contains(&rate), "spin usageNanoCores {rate}");
    let memory = spin["containers"][0]["memory"]["availableBytes"].as_u64().context("available under the limit")?;
    ensure!(memory <= 64 << 20, "available {memory} is under the 64Mi limit");
    ensure!(doc["node"]["memory"]["workingSetBytes"].as_u64().is_some_and(|w| w > 0), "node working set");

    // The proxy's metrics on kube-proxy's address: its syncs (at least the
    // first full load, with the `kubernetes` Service) as a histogram.
    let text = get_within("http://127.0.0.1:10249/metrics", Duration::from_secs(10))?;
    let value = |name: &str| -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    ensure!(text.contains("# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram"), "{text}");
    let syncs = value("kubeproxy_sync_proxy_rules_duration_seconds_count").context("sync count")?;
    ensure!(syncs >= 1.0, "syncs {syncs}\n{text}");
    let ports = value("kubeproxy_sync_proxy_rules_service_ports").context("service ports")?;
    ensure!(ports >= 1.0, "service ports {ports}\n{text}");
    ensure!(value("kubeproxy_sync_proxy_rules_last_timestamp_seconds").is_some_and(|t| t > 0.0), "{text}");
    Ok(())
}
