//! End to end on one machine: `bosun up` -> `kubectl apply` of a Deployment
//! and a Service -> control-lite (store, controllers, scheduler) -> agent ->
//! our containerd -> nftables Service routing, with the real `kubectl`.
//! Prints the measured latencies (apply -> 3 pods Running, pod delete ->
//! Service no longer routing to it).

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

/// A `bosun up` child; stopped (SIGTERM, as `bosun down` does) on drop.
struct Cluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    registry: String,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }
}

fn bosun() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bosun"))
}

fn up_args(dir: &Path, registry: &str, api: &str, kubelet_port: u16, id: u32) -> Vec<String> {
    [
        "up",
        "--dir",
        &dir.display().to_string(),
        "--registry",
        registry,
        "--listen",
        api,
        "--pod-cidr",
        &format!("10.202.{id}.0/24"),
        "--cluster-cidr",
        "10.202.0.0/16",
        "--service-cidr",
        "10.96.0.0/16",
        "--bridge",
        &format!("bse{id}"),
        "--kubelet-port",
        &kubelet_port.to_string(),
        "--node-name",
        "e2e-node",
        "--pause-binary",
        &support::pause_binary().display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn start_cluster() -> Result<Cluster> {
    let tmp = tempfile::Builder::new().prefix("bosun-e2e-").tempdir()?;
    let dir = tmp.path().to_path_buf();
    let registry = format!("127.0.0.1:{}", support::free_port());
    let api = format!("127.0.0.1:{}", support::free_port());
    let id = std::process::id() % 200;
    let args = up_args(&dir, &registry, &api, support::free_port(), id);
    let mut child = bosun().args(&args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
    let stdout = child.stdout.take().context("up stdout")?;
    let mut cluster = Cluster { kubeconfig: dir.join("kubeconfig"), dir, registry, child: Some(child), _tmp: tmp };
    // Wait for the "bosun is up" banner.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("[bosun up] {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.starts_with("bosun is up") => break,
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => bail!("bosun up exited before it was up"),
        }
        if let Some(status) = cluster.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            bail!("bosun up exited with {status}");
        }
        ensure!(Instant::now() < deadline, "bosun up not up within 120 s");
    }
    ensure!(cluster.kubeconfig.exists(), "kubeconfig written");
    // Running it again while it runs is harmless.
    let again = bosun().args(&args).output()?;
    ensure!(again.status.success(), "second up: {}", String::from_utf8_lossy(&again.stderr));
    ensure!(String::from_utf8_lossy(&again.stdout).contains("already up"), "second up says it is already up");
    Ok(cluster)
}

impl Cluster {
    fn kubectl(&self, args: &[&str]) -> Result<(bool, String, String)> {
        let out = Command::new("kubectl").env("KUBECONFIG", &self.kubeconfig).args(args).output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        ))
    }

    fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let (ok, out, err) = self.kubectl(args)?;
        ensure!(ok, "kubectl {args:?} failed: {err}{out}");
        Ok(out)
    }

    fn json(&self, args: &[&str]) -> Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        Ok(serde_json::from_str(&self.kubectl_ok(&all)?)?)
    }

    fn apply_stdin(&self, manifest: &str) -> Result<(bool, String, String)> {
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        std::io::Write::write_all(child.stdin.as_mut().context("stdin")?, manifest.as_bytes())?;
        drop(child.stdin.take());
        let out = child.wait_with_output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        ))
    }

    /// Running pods of app=web: (name, ip).
    fn running_pods(&self) -> Result<Vec<(String, String)>> {
        let pods = self.json(&["get", "pods", "-l", "app=web"])?;
        Ok(pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| p["status"]["containerStatuses"][0]["ready"] == true)
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                    p["status"]["podIP"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }

    fn wait_running(&self, n: usize, timeout: Duration) -> Result<Vec<(String, String)>> {
        let deadline = Instant::now() + timeout;
        loop {
            let pods = self.running_pods()?;
            if pods.len() == n {
                return Ok(pods);
            }
            ensure!(
                Instant::now() < deadline,
                "{} of {n} pods running after {timeout:?}: {}",
                pods.len(),
                self.kubectl_ok(&["get", "pods", "-o", "wide"])?
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ready endpoint addresses of the web Service.
    fn endpoints(&self) -> Result<BTreeSet<String>> {
        let slices = self.json(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web"])?;
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

    fn cri_socket(&self) -> PathBuf {
        self.dir.join("stack/containerd/containerd.sock")
    }
}

/// One HTTP GET to the Service from the host.
fn get(url: &str) -> Result<String> {
    let out = Command::new("curl").args(["-sS", "--noproxy", "*", "--max-time", "2", url]).output()?;
    ensure!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn pods_answering(url: &str, requests: usize) -> Result<BTreeSet<String>> {
    (0..requests).map(|_| get(url)).collect()
}

fn web_manifest(registry: &str) -> Result<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/web.yaml"))?;
    Ok(text.replace("127.0.0.1:5000", registry))
}

#[test]
fn kubectl_apply_to_service_routing_end_to_end() -> Result<()> {
    let cluster = start_cluster()?;
    let manifest = web_manifest(&cluster.registry)?;
    let manifest_path = cluster.dir.join("web.yaml");
    std::fs::write(&manifest_path, &manifest)?;
    let manifest_path = manifest_path.display().to_string();

    // The node registered and is Ready.
    let node = cluster.json(&["get", "node", "e2e-node"])?;
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    ensure!(ready, "node Ready: {node}");

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
    while cluster.endpoints()?.len() < 3 || get(&url).is_err() {
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
    while cluster.endpoints()?.len() != 5 {
        ensure!(Instant::now() < deadline, "5 endpoints within 30 s: {:?}", cluster.endpoints()?);
        std::thread::sleep(Duration::from_millis(100));
    }
    // Delete one pod: a replacement comes, and the Service stops sending to it.
    let (victim, victim_ip) = pods[0].clone();
    let deleted = Instant::now();
    cluster.kubectl_ok(&["delete", "pod", &victim, "--wait=false"])?;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Unrouted = gone from the EndpointSlice and from the nftables backends.
    while cluster.endpoints()?.contains(&victim_ip) || nft_table()?.contains(&format!("{victim_ip} . ")) {
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

/// The proxy's nftables table as text.
fn nft_table() -> Result<String> {
    let out = Command::new("nft").args(["list", "table", "ip", "bosun"]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn count_sandboxes(socket: &Path) -> Result<usize> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let cri = bosun_cri::CriClient::connect(socket, bosun_cri::ClientOptions::default()).await?;
        Ok(cri.list_pod_sandboxes(None).await?.len())
    })
}
