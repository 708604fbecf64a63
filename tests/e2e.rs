//! End to end on one machine: `bosun up` -> `kubectl apply` of a Deployment
//! and a Service -> control-lite (store, controllers, scheduler) -> agent ->
//! our containerd -> nftables Service routing, with the real `kubectl`.
//! Prints the measured latencies (apply -> 3 pods Running, pod delete ->
//! Service no longer routing to it).

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use support::cluster::{bosun, get, nft_table, Cluster};

/// Ready endpoint addresses of the web Service.
fn endpoints(cluster: &Cluster) -> Result<BTreeSet<String>> {
    let slices = cluster.json(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web"])?;
    Ok(slices["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] == true)
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(String::from))
        .collect())
}

fn pods_answering(url: &str, requests: usize) -> Result<BTreeSet<String>> {
    (0..requests).map(|_| get(url)).collect()
}

#[test]
fn kubectl_apply_to_service_routing_end_to_end() -> Result<()> {
    let cluster = Cluster::start("e2e-node")?;
    let manifest = cluster.web_manifest()?;
    let manifest_path = cluster.dir.join("web.yaml");
    std::fs::write(&manifest_path, &manifest)?;
    let manifest_path = manifest_path.display().to_string();

    // The node registered and is Ready.
    let node = cluster.json(&["get", "node", "e2e-node"])?;
    ensure!(support::pods::is_ready(&node), "node Ready: {node}");

    // 2-4: apply, rollout, 3 pods Running with IPs on our node.
    let applied = Instant::now();
    cluster.kubectl_ok(&["apply", "-f", &manifest_path])?;
    let pods = cluster.wait_running(3, Duration::from_secs(120))?;
    let to_running = applied.elapsed();
    cluster.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=120s"])?;
    let wide = cluster.kubectl_ok(&["get", "pods", "-o", "wide"])?;
    for (name, ip) in &pods {
        let line = wide.lines().find(|l| l.starts_with(name.as_str())).context(format!("{name} in\n{wide}"))?;
        for cell in ["1/1", "Running", ip.as_str(), "e2e-node"] {
            ensure!(line.contains(cell), "{cell:?} in {line:?}");
        }
    }
    let tables = cluster.kubectl_ok(&["get", "deploy,rs,svc,endpointslices,nodes"])?;
    for header in [
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "DESIRED",
        "CURRENT",
        "CLUSTER-IP",
        "PORT(S)",
        "ADDRESSTYPE",
        "ENDPOINTS",
        "ROLES",
        "VERSION",
    ] {
        ensure!(tables.contains(header), "column {header} in\n{tables}");
    }

    // 5: the ClusterIP answers from the host, and all 3 pods answer.
    let cluster_ip = cluster.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"])?;
    let url = format!("http://{cluster_ip}/");
    let deadline = Instant::now() + Duration::from_secs(30);
    while endpoints(&cluster)?.len() < 3 || get(&url).is_err() {
        ensure!(Instant::now() < deadline, "service {url} not routing within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let answers = pods_answering(&url, 30)?;
    let expected: BTreeSet<String> = pods.iter().map(|(name, _)| format!("hello from {name}")).collect();
    ensure!(answers == expected, "30 requests reached {answers:?}, expected {expected:?}");

    // 6: scale to 5; endpoints follow.
    cluster.kubectl_ok(&["scale", "deploy/web", "--replicas=5"])?;
    let pods = cluster.wait_running(5, Duration::from_secs(120))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while endpoints(&cluster)?.len() != 5 {
        ensure!(Instant::now() < deadline, "5 endpoints within 30 s: {:?}", endpoints(&cluster)?);
        std::thread::sleep(Duration::from_millis(100));
    }
    // Delete one pod: a replacement comes, and the Service stops sending to it.
    let (victim, victim_ip) = pods[0].clone();
    let deleted = Instant::now();
    cluster.kubectl_ok(&["delete", "pod", &victim, "--wait=false"])?;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Unrouted = gone from the EndpointSlice and from the nftables backends.
    while endpoints(&cluster)?.contains(&victim_ip) || nft_table()?.contains(&format!("{victim_ip} . ")) {
        ensure!(Instant::now() < deadline, "deleted pod {victim} still routed after 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let to_unrouted = deleted.elapsed();
    let answers = pods_answering(&url, 40)?;
    ensure!(!answers.contains(&format!("hello from {victim}")), "deleted pod still answers: {answers:?}");
    let pods = cluster.wait_running(5, Duration::from_secs(120))?;
    ensure!(pods.iter().all(|(name, _)| name != &victim), "replacement has a new name");

    // 7: logs through the apiserver -> agent.
    let (pod, _) = &pods[0];
    let logs = cluster.kubectl_ok(&["logs", pod])?;
    ensure!(logs.contains(&format!("serving as {pod}")), "kubectl logs {pod}: {logs:?}");
    let logs = cluster.kubectl_ok(&["logs", "deploy/web"])?;
    ensure!(logs.contains("serving as web-"), "kubectl logs deploy/web: {logs:?}");

    // Bad input: clear errors from the server, nothing stored, cluster keeps working.
    let no_containers = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: empty}\nspec:\n  selector: {matchLabels: {app: empty}}\n  template:\n    metadata: {labels: {app: empty}}\n    spec: {containers: []}\n";
    let (ok, _, err) = cluster.apply_stdin(no_containers)?;
    ensure!(!ok && err.contains("spec.template.spec.containers"), "no containers rejected with the field path: {err}");
    let bad_name = manifest.replace("name: web\n  labels", "name: Web_Bad\n  labels");
    let (ok, _, err) = cluster.apply_stdin(bad_name.split("---").next().unwrap_or_default())?;
    ensure!(!ok && err.contains("Web_Bad") && err.contains("metadata.name"), "invalid name rejected: {err}");
    let (ok, _, err) = cluster.apply_stdin("apiVersion: v1\nkind: Frobnicator\nmetadata: {name: x}\n")?;
    ensure!(!ok && err.contains("Frobnicator"), "unknown kind rejected: {err}");
    let deployments = cluster.kubectl_ok(&["get", "deploy", "-o", "name"])?;
    ensure!(deployments.trim() == "deployment.apps/web", "nothing stored by bad input: {deployments}");
    ensure!(get(&url)?.starts_with("hello from web-"), "cluster keeps working");

    // 8: delete everything; pods, sandboxes, containers, nft elements gone within 30 s.
    let sandboxes_before = count_sandboxes(&cluster.cri_socket())?;
    ensure!(sandboxes_before >= 5, "{sandboxes_before} sandboxes before delete");
    let removed = Instant::now();
    cluster.kubectl_ok(&["delete", "-f", &manifest_path, "--wait=false"])?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pods_left = cluster.json(&["get", "pods", "-l", "app=web"])?["items"].as_array().map_or(0, Vec::len);
        let sandboxes = count_sandboxes(&cluster.cri_socket())?;
        let nft_text = nft_table()?;
        let log_dirs = std::fs::read_dir(cluster.dir.join("agent/pods"))
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("default_web-")).count())
            .unwrap_or(0);
        if pods_left == 0 && sandboxes == 0 && log_dirs == 0 && !nft_text.contains(&cluster_ip) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "after 30 s: {pods_left} pods, {sandboxes} sandboxes, {log_dirs} log dirs, cluster IP in nft: {}",
            nft_text.contains(&cluster_ip)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let to_clean = removed.elapsed();

    println!("measured: kubectl apply -> 3 pods Running: {:.2}s", to_running.as_secs_f64());
    println!("measured: kubectl delete pod -> Service no longer routing to it: {:.3}s", to_unrouted.as_secs_f64());
    println!("measured: kubectl delete -f -> everything gone: {:.2}s", to_clean.as_secs_f64());

    // bosun down stops the cluster and removes what it created.
    let down = bosun().args(["down", "--dir", &cluster.dir.display().to_string()]).output()?;
    ensure!(down.status.success(), "bosun down: {}", String::from_utf8_lossy(&down.stderr));
    Ok(())
}

fn count_sandboxes(socket: &Path) -> Result<usize> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let cri = bosun_cri::CriClient::connect(socket, bosun_cri::ClientOptions::default()).await?;
        Ok(cri.list_pod_sandboxes(None).await?.len())
    })
}
