//! `bosun agent` as a drop-in kubelet (issue 9): a second node joins a
//! `bosun up` cluster through an agent started with a kubelet-style command
//! line and a `KubeletConfiguration` file, on its own containerd (a
//! `TestStack`, so the two agents never share a runtime):
//! - `--bootstrap-kubeconfig` stands in while `--kubeconfig` does not exist;
//! - `--hostname-override`, `--container-runtime-endpoint=unix://...`,
//!   `--node-labels`, `--register-with-taints`, `--root-dir`, `--node-ip`
//!   take effect on the Node; `--max-pods=30` wins over the file's
//!   `maxPods: 50` (flags win), the file's `port` is the kubelet endpoint;
//! - the file's fields bosun does not honour are reported once in the log;
//! - the file's `tlsCertFile`/`tlsPrivateKeyFile` serve the kubelet API, and
//!   its `authentication.x509.clientCAFile` is the client CA; a file asking
//!   for `authorization.mode: AlwaysAllow` is refused, naming the field;
//! - a pod bound to the node runs there;
//! - an unknown kubelet flag is refused with an error naming it.
//!
//! (`--no-proxy` is bosun's own flag: the cluster's first agent already
//! programs the host's one nftables table.)

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use support::cluster::{bosun, Cluster};
use support::pods::{is_ready, wait_pod};
use support::{free_port, TestStack};

const LONG: Duration = Duration::from_secs(120);
const NODE: &str = "kubelet-style-node";

/// The second agent; stopped (SIGTERM, then waited for) on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

#[test]
fn an_agent_with_a_kubelet_command_line_joins_the_cluster() -> Result<()> {
    unknown_kubelet_flags_are_refused_by_name()?;
    let cluster = Cluster::start("kubelet-flags-a")?;
    let runtime = tokio::runtime::Runtime::new()?;
    let stack = runtime.block_on(TestStack::start())?;
    let result = join_and_run_a_pod(&cluster, &stack);
    runtime.block_on(stack.teardown())?;
    result
}

fn unknown_kubelet_flags_are_refused_by_name() -> Result<()> {
    let out = bosun().args(["agent", "--image-credential-provider-config=/x"]).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "an unknown flag is refused");
    ensure!(stderr.contains("--image-credential-provider-config"), "the error names the flag: {stderr}");
    let dir = tempfile::tempdir()?;
    let open = dir.path().join("open.yaml");
    std::fs::write(
        &open,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nauthorization: {mode: AlwaysAllow}\n",
    )?;
    let out = bosun().args(["agent", &format!("--config={}", open.display())]).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "an AlwaysAllow kubelet API is refused");
    ensure!(stderr.contains("authorization.mode"), "the error names the field: {stderr}");
    Ok(())
}

/// A self-signed serving certificate for 127.0.0.1 (cert, key), by openssl.
fn serving_pair(dir: &std::path::Path) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let (cert, key) = (dir.join("kubelet.crt"), dir.join("kubelet.key"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=kubelet-style-node", "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()?;
    ensure!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    Ok((cert, key))
}

fn join_and_run_a_pod(cluster: &Cluster, stack: &TestStack) -> Result<()> {
    let work = cluster.dir.join("kubelet-b");
    std::fs::create_dir_all(work.join("manifests"))?;
    let port = free_port();
    let config = work.join("kubelet-config.yaml");
    let (cert, key) = serving_pair(&work)?;
    let client_ca = cluster.dir.join("control/pki/ca.crt");
    std::fs::write(
        &config,
        format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nport: {port}\nmaxPods: 50\n\
             clusterDomain: cluster.local\ncontainerRuntimeEndpoint: unix:///nonexistent/containerd.sock\n\
             cgroupRoot: /bosun-kubelet-b\nfeatureGates: {{}}\ntlsCertFile: {}\ntlsPrivateKeyFile: {}\n\
             authentication:\n  anonymous: {{enabled: false}}\n  webhook: {{enabled: true, cacheTTL: 2m}}\n  \
             x509: {{clientCAFile: {}}}\nauthorization: {{mode: Webhook}}\n",
            cert.display(),
            key.display(),
            client_ca.display()
        ),
    )?;
    let log_path = work.join("agent.log");
    let args = [
        "agent".to_string(),
        format!("--kubeconfig={}", work.join("kubelet.conf").display()),
        format!("--bootstrap-kubeconfig={}", cluster.kubeconfig.display()),
        format!("--config={}", config.display()),
        format!("--hostname-override={NODE}"),
        format!("--container-runtime-endpoint=unix://{}", stack.config.containerd_socket().display()),
        format!("--pod-manifest-path={}", work.join("manifests").display()),
        format!("--root-dir={}", work.join("root").display()),
        "--node-ip=127.0.0.1".to_string(),
        "--node-labels=tier=kubelet-style,zone=b".to_string(),
        "--register-with-taints=dedicated=kubelet:NoSchedule".to_string(),
        "--max-pods=30".to_string(),
        "--cluster-domain=cluster.local".to_string(),
        "--no-proxy".to_string(),
    ];
    let log = std::fs::File::create(&log_path)?;
    let child = bosun().args(&args).stdout(Stdio::null()).stderr(log).spawn()?;
    let _agent = Agent(child);

    let node = wait_node_ready(cluster, &log_path)?;
    let labels = &node["metadata"]["labels"];
    ensure!(labels["tier"] == "kubelet-style" && labels["zone"] == "b", "--node-labels: {labels}");
    ensure!(labels["kubernetes.io/hostname"] == NODE, "--hostname-override names the node: {labels}");
    let taints = node["spec"]["taints"].as_array().cloned().unwrap_or_default();
    ensure!(
        taints.iter().any(|t| t["key"] == "dedicated" && t["value"] == "kubelet" && t["effect"] == "NoSchedule"),
        "--register-with-taints: {taints:?}"
    );
    ensure!(
        node["status"]["capacity"]["pods"] == "30",
        "--max-pods wins over the file: {}",
        node["status"]["capacity"]
    );
    ensure!(
        node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == port,
        "the file's port is the kubelet endpoint: {}",
        node["status"]["daemonEndpoints"]
    );
    let text = std::fs::read_to_string(&log_path)?;
    let reports: Vec<&str> = text.lines().filter(|l| l.contains("kubelet config fields not honoured")).collect();
    ensure!(reports.len() == 1, "the ignored fields are reported once: {reports:?}");
    ensure!(
        reports[0].contains("authentication.webhook.cacheTTL, featureGates"),
        "the report names them: {}",
        reports[0]
    );
    // The kubelet API serves the file's certificate (curl trusts only it)
    // and refuses a caller with no credentials.
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&cert)
        .arg(format!("https://127.0.0.1:{port}/pods"))
        .output()?;
    let code = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "TLS with the file's certificate: {}", String::from_utf8_lossy(&out.stderr));
    ensure!(code == "401", "anonymous is refused: {code}");

    let manifest = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "on-kubelet-style-node"}},
           "spec": {{"nodeName": "{NODE}", "terminationGracePeriodSeconds": 1,
                     "tolerations": [{{"key": "dedicated", "operator": "Exists"}}],
                     "containers": [{{"name": "app", "image": "{}", "command": ["sleep", "600"]}}]}}}}"#,
        stack.app_image()
    );
    let (ok, out, err) = cluster.apply_stdin(&manifest)?;
    ensure!(ok, "apply: {out}{err}");
    let p = wait_pod(cluster, "on-kubelet-style-node", "running", LONG, |p| p["status"]["phase"] == "Running")?;
    ensure!(p["status"]["hostIP"] == "127.0.0.1", "--node-ip is the pod's hostIP: {}", p["status"]);
    cluster.kubectl_ok(&["delete", "pod", "on-kubelet-style-node", "--wait", "--timeout=120s"])?;
    Ok(())
}

/// Waits until Node [`NODE`] exists and is Ready; returns it.
fn wait_node_ready(cluster: &Cluster, log: &std::path::Path) -> Result<serde_json::Value> {
    let deadline = Instant::now() + LONG;
    loop {
        let (ok, out, _) = cluster.kubectl(&["get", "node", NODE, "-o", "json"])?;
        if ok {
            let node: serde_json::Value = serde_json::from_str(&out)?;
            if is_ready(&node) {
                return Ok(node);
            }
        }
        ensure!(
            Instant::now() < deadline,
            "node {NODE} not Ready within {LONG:?}; agent log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
