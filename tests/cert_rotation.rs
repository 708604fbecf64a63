//! Client certificate rotation on the real stack: `bosun up` with
//! `bosun control --cluster-signing-duration=90s`, so the node certificate
//! `bosun control` issues lives 90 s; the agent renews it through a
//! CertificateSigningRequest (auto-approved as `selfnodeclient`, signed for
//! 90 s again) at 70–90% of its life, rewrites its kubeconfig (0600) and
//! reloads its API client. The node stays Ready past the first
//! certificate's expiry: its Lease keeps being renewed with the new one.
//! With `--rotate-server-certificates` and `bosun control
//! --approve-kubelet-serving-certificates`, the kubelet API's serving
//! certificate comes from a `kubelet-serving` CSR: curl verifies it with the
//! cluster CA.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context, Result};
use bosun_agent::cert_rotation::{client_cert, ClientCert};
use support::cluster::Cluster;
use support::wait::wait_within;

const NODE: &str = "rotor";
/// The signing duration the control plane is started with.
const SIGNING_SECS: i64 = 90;
/// Generous: a rotation is due 60–80 s after issue, expiry at 90 s.
const DEADLINE: Duration = Duration::from_secs(300);

fn cert_of(path: &Path) -> Result<ClientCert> {
    client_cert(path, &std::fs::read_to_string(path)?)?.context("the node kubeconfig has a client certificate")
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

fn mode(path: &Path) -> Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

#[test]
fn the_agent_rotates_its_client_certificate_and_stays_ready() -> Result<()> {
    let started = std::time::Instant::now();
    let extra = [
        format!("--control-arg=--cluster-signing-duration={SIGNING_SECS}s"),
        "--control-arg=--approve-kubelet-serving-certificates".to_string(),
        "--agent-arg=--rotate-server-certificates".to_string(),
    ];
    let cluster = Cluster::start_with(NODE, &extra)?;
    let kubeconfig = cluster.dir.join("node.kubeconfig");
    let first = cert_of(&kubeconfig)?;
    ensure!(first.common_name == format!("system:node:{NODE}"), "{first:?}");
    let life = first.not_after - first.not_before;
    ensure!(life == SIGNING_SECS + SIGNING_SECS / 10, "capped at the signing duration (+ backdate): {first:?}");

    // The kubelet API serves a certificate of the cluster CA, for the node IP.
    let node = cluster.json(&["get", "node", NODE])?;
    let ip = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .context("node InternalIP")?
        .to_string();
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_i64().context("kubelet port")?;
    let ca = cluster.dir.join("control/pki/ca.crt");
    let url = format!("https://{ip}:{port}/healthz");
    wait_within("the kubelet API verified with the cluster CA", DEADLINE, || {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--noproxy", "*", "--max-time", "10", "-o", "/dev/null", "--cacert"])
            .arg(&ca)
            .arg(&url)
            .output()?;
        Ok(out.status.success().then_some(()))
    })?;
    let table = cluster.kubectl_ok(&["get", "csr", "--no-headers"])?;
    ensure!(
        table.lines().any(|l| l.contains("kubernetes.io/kubelet-serving")
            && l.contains(&format!(" system:node:{NODE} "))
            && l.ends_with("Approved,Issued")),
        "{table}"
    );
    let serving = cluster.dir.join("agent/pki/kubelet-server-current.pem");
    ensure!(mode(&serving)? == 0o600, "issued serving certificate and key are private");

    // Renewed before it expires, written 0600.
    let second = wait_within("a rotated node certificate", DEADLINE, || {
        let now = cert_of(&kubeconfig)?;
        Ok((now.serial != first.serial).then_some(now))
    })?;
    let rotated_after = started.elapsed();
    ensure!(second.common_name == first.common_name, "same identity: {second:?}");
    ensure!(second.not_after > first.not_after, "later expiry: {first:?} -> {second:?}");
    ensure!(unix_now() < first.not_after, "rotated before the old certificate expired");
    ensure!(mode(&kubeconfig)? == 0o600, "kubeconfig mode after rotation");

    // The request that did it: the node's own, auto-approved and issued.
    let table = cluster.kubectl_ok(&["get", "csr", "--no-headers"])?;
    ensure!(
        table.lines().any(|l| l.contains(&format!(" system:node:{NODE} ")) && l.ends_with("Approved,Issued")),
        "{table}"
    );

    // Past the first certificate's expiry, the agent still writes: its
    // Lease is renewed (with the new certificate) and the node is Ready.
    let expired_at = first.not_after;
    wait_within("the node's Lease renewed after the first certificate expired", DEADLINE, || {
        let lease = cluster.json(&["get", "lease", "-n", "kube-node-lease", NODE])?;
        let renewed = lease["spec"]["renewTime"].as_str().unwrap_or_default();
        let renewed: jiff::Timestamp = match renewed.parse() {
            Ok(t) => t,
            Err(_) => return Ok(None),
        };
        Ok((renewed.as_second() > expired_at + 5).then_some(()))
    })?;
    let node = cluster.json(&["get", "node", NODE])?;
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    ensure!(ready, "node Ready after the first certificate expired: {}", node["status"]["conditions"]);

    // The current kubeconfig authenticates as the node.
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"])
        .output()?;
    ensure!(out.status.success(), "whoami: {}", String::from_utf8_lossy(&out.stderr));
    ensure!(String::from_utf8_lossy(&out.stdout) == format!("system:node:{NODE}"), "whoami");
    let log = std::fs::read_to_string(cluster.dir.join("logs/agent.log"))?;
    ensure!(log.contains("API client reloaded"), "the agent reloaded its client");
    eprintln!("rotated after {rotated_after:?}; test took {:?}", started.elapsed());
    Ok(())
}
