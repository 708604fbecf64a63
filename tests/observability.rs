//! Metrics and logs on the real stack (`bosun up --log-format json`, real
//! kubectl): after a pod runs, the kubelet API's `/metrics` shows the
//! running pod and its start in the pod start histogram, and CRI calls; the
//! apiserver's `/metrics` (`kubectl get --raw`) shows the requests kubectl,
//! the agent and the scheduler made, by verb; the agent's and control's log
//! lines are JSON objects.

mod support;

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use support::cluster::Cluster;
use support::wait::{wait_until, WAIT};

/// The value of the sample `series` (name with its labels, as written) in
/// Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

/// The body of one GET to the node's kubelet API (HTTPS, as the admin).
fn kubelet_get(cluster: &Cluster, node: &str, path: &str) -> Result<String> {
    support::kubelet::Kubelet::of(cluster, node)?.get(path)
}

/// Every line of a daemon's log is one JSON object with a level and a message or fields.
fn json_log_lines(cluster: &Cluster, daemon: &str) -> Result<usize> {
    let path = cluster.dir.join("logs").join(format!("{daemon}.log"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut count = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let object: Value =
            serde_json::from_str(line).with_context(|| format!("{daemon}.log line is not JSON: {line:?}"))?;
        ensure!(object["level"].is_string() && object["timestamp"].is_string(), "{daemon}.log line: {line}");
        count += 1;
    }
    Ok(count)
}

#[test]
fn kubelet_and_apiserver_metrics_and_json_logs() -> Result<()> {
    let node = "metrics-node";
    let cluster = Cluster::start_with(node, &["--log-format".to_string(), "json".to_string()])?;
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: counted\n  labels:\n    app: web\nspec:\n  containers:\n  - name: c\n    image: {}/bosun/app:1.0\n    command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n",
        cluster.registry
    );
    let (ok, _, err) = cluster.apply_stdin(&manifest)?;
    ensure!(ok, "apply: {err}");
    cluster.wait_running(1, WAIT)?;

    // The kubelet: the pod runs and its start was timed (the relist sets
    // the gauges within a second, the worker observes the start at once).
    let kubelet = wait_until("the running pod in the kubelet's metrics", || {
        let text = kubelet_get(&cluster, node, "/metrics")?;
        let running = sample(&text, "kubelet_running_pods").unwrap_or_default();
        let started = sample(&text, "kubelet_pod_start_duration_seconds_count").unwrap_or_default();
        // containerd's /tasks/start of the container reached the PLEG.
        let events = sample(&text, "kubelet_evented_pleg_connection_latency_seconds_count").unwrap_or_default();
        Ok((running >= 1.0 && started >= 1.0 && events >= 1.0).then_some(text))
    })?;
    for want in [
        "# TYPE kubelet_pod_start_duration_seconds histogram",
        &format!("kubelet_node_name{{node=\"{node}\"}} 1"),
        "kubelet_running_containers{container_state=\"running\"}",
        "kubelet_runtime_operations_total{operation_type=\"run_podsandbox\"}",
        "kubelet_runtime_operations_duration_seconds_bucket{",
        "kubelet_pleg_relist_duration_seconds_count",
        "kubelet_pod_worker_duration_seconds_count{operation=\"create\"}",
        "kubelet_started_containers_total",
        "process_resident_memory_bytes",
        // One registry per process: the proxy's series are there too.
        "kubeproxy_sync_proxy_rules_duration_seconds_count",
    ] {
        ensure!(kubelet.contains(want), "{want:?} missing from the kubelet's /metrics:\n{kubelet}");
    }
    let running = sample(&kubelet, "kubelet_running_containers{container_state=\"running\"}").unwrap_or_default();
    ensure!(running >= 1.0, "running containers {running}");

    // The apiserver: kubectl's create, the agent's watch and status
    // patches, the scheduler's binding.
    let api = cluster.kubectl_ok(&["get", "--raw", "/metrics"])?;
    for want in [
        "# TYPE apiserver_request_duration_seconds histogram",
        "apiserver_request_total{verb=\"POST\",resource=\"pods\",subresource=\"\",code=\"201\"}",
        "apiserver_request_total{verb=\"POST\",resource=\"pods\",subresource=\"binding\",code=\"201\"}",
        "apiserver_request_total{verb=\"WATCH\",resource=\"pods\"",
        "apiserver_request_total{verb=\"PATCH\",resource=\"pods\",subresource=\"status\"",
        "apiserver_request_total{verb=\"LIST\",resource=\"pods\"",
        "apiserver_request_duration_seconds_count{verb=\"POST\",resource=\"pods\",subresource=\"\"}",
        "apiserver_longrunning_requests{verb=\"WATCH\"}",
        "bosun_store_commit_duration_seconds_count",
        "apiserver_storage_objects{resource=\"pods\"} 1",
        "apiserver_storage_objects{resource=\"nodes\"} 1",
        "scheduler_schedule_attempts_total{result=\"scheduled\"}",
        "workqueue_depth{name=\"replicaset\"}",
        "workqueue_adds_total{name=\"endpoint_slice\"}",
        "process_open_fds",
    ] {
        ensure!(api.contains(want), "{want:?} missing from the apiserver's /metrics:\n{api}");
    }
    let scheduled = sample(&api, "scheduler_schedule_attempts_total{result=\"scheduled\"}").unwrap_or_default();
    ensure!(scheduled >= 1.0, "scheduled attempts {scheduled}");

    // `bosun up --log-format json` passed the format on to its daemons.
    ensure!(json_log_lines(&cluster, "agent")? > 0, "the agent logged nothing");
    ensure!(json_log_lines(&cluster, "control")? > 0, "control logged nothing");
    Ok(())
}
