//! TLS bootstrapping end to end, on a real `bosun control` (HTTPS) with the
//! real `kubectl` and the real `bosun token create`: a bootstrap token
//! authenticates as `system:bootstrap:<id>` and may only ask for
//! certificates; the agent's bootstrap (`bosun_agent::tls_bootstrap`, as
//! `bosun agent --bootstrap-kubeconfig` runs it) gets a node client
//! certificate auto-approved and signed, and the kubeconfig it writes
//! authenticates as `system:node:<name>` under NodeRestriction; expired and
//! wrong tokens get 401; `kubectl certificate approve|deny` work on manual
//! requests, signed for `kubernetes.io/kube-apiserver-client`, left
//! unsigned for a signer nobody serves. No containerd: the host lock is
//! not needed.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};
use support::cluster::bosun;
use support::wait::wait_until;

/// A `bosun control` child; stopped (SIGTERM) on drop.
struct Control {
    dir: tempfile::TempDir,
    admin: PathBuf,
    child: Child,
}

impl Drop for Control {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Control {
    fn start() -> Result<Control> {
        let dir = tempfile::tempdir()?;
        let admin = dir.path().join("admin.kubeconfig");
        let log = std::fs::File::create(dir.path().join("control.log"))?;
        let listen = format!("127.0.0.1:{}", support::free_port());
        let child = bosun()
            .args(["control", "--listen", &listen, "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--kubeconfig-out")
            .arg(&admin)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start bosun control")?;
        let control = Control { dir, admin, child };
        wait_until("the apiserver", || {
            Ok((control.admin.exists() && kubectl(&control.admin, &["get", "namespace", "default"])?.status.success())
                .then_some(()))
        })?;
        Ok(control)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn admin_ok(&self, args: &[&str]) -> Result<String> {
        kubectl_ok(&self.admin, args)
    }
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<Output> {
    kubectl_stdin(kubeconfig, args, "")
}

fn kubectl_stdin(kubeconfig: &Path, args: &[&str], stdin: &str) -> Result<Output> {
    use std::io::Write as _;
    let cache = kubeconfig.with_extension("cache");
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run kubectl")?;
    child.stdin.take().context("stdin")?.write_all(stdin.as_bytes())?;
    Ok(child.wait_with_output()?)
}

fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> Result<String> {
    let out = kubectl(kubeconfig, args)?;
    ensure!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn whoami(kubeconfig: &Path) -> Result<(String, Vec<String>)> {
    let review: Value = serde_json::from_str(&kubectl_ok(kubeconfig, &["auth", "whoami", "-o", "json"])?)?;
    let info = &review["status"]["userInfo"];
    let groups = info["groups"].as_array().into_iter().flatten().filter_map(Value::as_str).map(String::from).collect();
    Ok((info["username"].as_str().unwrap_or_default().to_string(), groups))
}

fn can_i(kubeconfig: &Path, args: &[&str]) -> Result<bool> {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let out = kubectl(kubeconfig, &all)?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "yes")
}

fn mode(path: &Path) -> Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

/// A copy of kubeconfig `from` whose token is `token`.
fn with_token(from: &Path, to: &Path, old: &str, token: &str) -> Result<()> {
    std::fs::write(to, std::fs::read_to_string(from)?.replace(old, token))?;
    Ok(())
}

#[test]
fn a_bootstrap_token_joins_a_node_with_an_approved_client_certificate() -> Result<()> {
    let started = std::time::Instant::now();
    let control = Control::start()?;
    let bootstrap = control.path("bootstrap.kubeconfig");

    // `bosun token create` writes the Secret and a bootstrap kubeconfig.
    let out = bosun()
        .args(["token", "create", "--ttl", "1h", "--kubeconfig"])
        .arg(&control.admin)
        .arg("--bootstrap-kubeconfig-out")
        .arg(&bootstrap)
        .output()?;
    ensure!(out.status.success(), "bosun token create: {}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout)?.trim().to_string();
    let (id, _) = token.split_once('.').context("token form")?;
    ensure!(id.len() == 6 && token.len() == 23, "token {token:?}");
    ensure!(mode(&bootstrap)? == 0o600, "bootstrap kubeconfig mode");
    let secret: Value = serde_json::from_str(&control.admin_ok(&[
        "get",
        "secret",
        "-n",
        "kube-system",
        &format!("bootstrap-token-{id}"),
        "-o",
        "json",
    ])?)?;
    ensure!(secret["type"] == "bootstrap.kubernetes.io/token", "{secret}");

    // The token is system:bootstrap:<id> and may only ask for certificates.
    let (user, groups) = whoami(&bootstrap)?;
    ensure!(user == format!("system:bootstrap:{id}"), "bootstrap user {user}");
    ensure!(groups.iter().any(|g| g == "system:bootstrappers"), "groups {groups:?}");
    ensure!(can_i(&bootstrap, &["create", "certificatesigningrequests"])?, "bootstrapper may create CSRs");
    ensure!(!can_i(&bootstrap, &["list", "pods"])?, "bootstrapper may not list pods");
    ensure!(!can_i(&bootstrap, &["get", "secrets", "-n", "kube-system"])?, "bootstrapper may not read secrets");

    // The agent's bootstrap, for real: key, CSR, wait, kubeconfig.
    let node_kubeconfig = control.path("node/kubeconfig");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let wait = Duration::from_secs(120);
    let bootstrapped = runtime.block_on(bosun_agent::tls_bootstrap::ensure_kubeconfig(
        &node_kubeconfig,
        &bootstrap,
        "joiner",
        wait,
        &cancel,
    ))?;
    ensure!(bootstrapped, "bootstrapped");
    ensure!(mode(&node_kubeconfig)? == 0o600, "kubeconfig mode");
    ensure!(mode(&control.path("node"))? == 0o700, "kubeconfig dir mode");
    ensure!(mode(&control.path("node/kubelet-client.key"))? == 0o600, "key mode");
    let again = runtime.block_on(bosun_agent::tls_bootstrap::ensure_kubeconfig(
        &node_kubeconfig,
        &bootstrap,
        "joiner",
        wait,
        &cancel,
    ))?;
    ensure!(!again, "an existing kubeconfig is kept");

    // The request: auto-approved and issued, printed as upstream.
    let table = control.admin_ok(&["get", "csr"])?;
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    ensure!(header == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"], "{table}");
    ensure!(
        table.lines().any(|l| l.contains(&format!("system:bootstrap:{id}"))
            && l.contains("kubernetes.io/kube-apiserver-client-kubelet")
            && l.ends_with("Approved,Issued")),
        "{table}"
    );

    // The issued identity is the node's, with the Node authorizer and NodeRestriction.
    let (user, groups) = whoami(&node_kubeconfig)?;
    ensure!(user == "system:node:joiner", "node user {user}");
    ensure!(groups.iter().any(|g| g == "system:nodes"), "node groups {groups:?}");
    let node = |name: &str| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}).to_string();
    let own = kubectl_stdin(&node_kubeconfig, &["create", "-f", "-"], &node("joiner"))?;
    ensure!(own.status.success(), "create own node: {}", String::from_utf8_lossy(&own.stderr));
    let other = kubectl_stdin(&node_kubeconfig, &["create", "-f", "-"], &node("someone-else"))?;
    let stderr = String::from_utf8_lossy(&other.stderr);
    ensure!(!other.status.success() && stderr.contains("Forbidden"), "create another node: {stderr}");
    ensure!(!can_i(&node_kubeconfig, &["get", "secrets", "-n", "default"])?, "node may not read secrets");
    ensure!(can_i(&node_kubeconfig, &["create", "certificatesigningrequests"])?, "node may renew");

    // Renewal with the node's own identity: auto-approved as selfnodeclient.
    let before = std::fs::read_to_string(&node_kubeconfig)?;
    runtime.block_on(bosun_agent::tls_bootstrap::renew(&node_kubeconfig, "joiner", wait, &cancel))?;
    ensure!(std::fs::read_to_string(&node_kubeconfig)? != before, "renewed kubeconfig");
    ensure!(whoami(&node_kubeconfig)?.0 == "system:node:joiner", "renewed identity");
    let table = control.admin_ok(&["get", "csr", "--no-headers"])?;
    ensure!(table.lines().any(|l| l.contains(" system:node:joiner ") && l.ends_with("Approved,Issued")), "{table}");

    // Expired and wrong tokens: 401.
    let expired = bosun_control::auth::bootstrap_token::secret_for(
        "expire",
        "0123456789abcdef",
        Some("2020-01-01T00:00:00Z"),
        &[],
        "expired",
    );
    control_apply(&control, &expired)?;
    for (name, bad) in [("expired", "expire.0123456789abcdef"), ("wrong", &format!("{id}.0000000000000000"))] {
        let path = control.path(&format!("{name}.kubeconfig"));
        with_token(&bootstrap, &path, &token, bad)?;
        let out = kubectl(&path, &["get", "--raw", "/api"])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(!out.status.success() && stderr.contains("Unauthorized"), "{name} token: {stderr}");
    }

    manual_requests(&control, &bootstrap)?;
    eprintln!("tls bootstrap test took {:?}", started.elapsed());
    Ok(())
}

fn control_apply(control: &Control, obj: &Value) -> Result<()> {
    let out = kubectl_stdin(&control.admin, &["create", "-f", "-"], &obj.to_string())?;
    ensure!(out.status.success(), "create: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

fn csr_object(name: &str, cn: &str, orgs: &[&str], signer: &str, usages: &[&str]) -> Result<(Value, String)> {
    let (csr, key) = bosun_control::auth::csr::generate(cn, orgs)?;
    let obj = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": base64::engine::general_purpose::STANDARD.encode(csr), "signerName": signer,
            "usages": usages, "expirationSeconds": 3600, "username": "forged"}});
    Ok((obj, key))
}

fn csr_json(control: &Control, name: &str) -> Result<Value> {
    Ok(serde_json::from_str(&control.admin_ok(&["get", "csr", name, "-o", "json"])?)?)
}

/// `kubectl certificate approve|deny` on requests an admin made by hand.
fn manual_requests(control: &Control, bootstrap: &Path) -> Result<()> {
    // Another signer: approved, but nobody here signs it.
    let (custom, _) = csr_object("custom", "thing", &[], "example.com/custom", &["digital signature"])?;
    control_apply(control, &custom)?;
    let csr = csr_json(control, "custom")?;
    ensure!(csr["spec"]["username"] == "bosun-admin", "requester from the server: {}", csr["spec"]);
    // Created by server-side apply: the requester is still the caller.
    let (mut applied, _) = csr_object("applied", "thing", &[], "example.com/custom", &["digital signature"])?;
    applied["spec"]["groups"] = json!(["system:masters"]);
    let out = kubectl_stdin(
        &control.admin,
        &["apply", "--server-side", "--field-manager=t", "-f", "-"],
        &applied.to_string(),
    )?;
    ensure!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stderr));
    let csr = csr_json(control, "applied")?;
    ensure!(csr["spec"]["username"] == "bosun-admin", "applied: requester from the server: {}", csr["spec"]);
    ensure!(csr["spec"]["groups"] != json!(["system:masters"]), "applied: groups from the server: {}", csr["spec"]);
    // A bootstrap token may not approve.
    let out = kubectl(bootstrap, &["certificate", "approve", "custom"])?;
    ensure!(!out.status.success(), "bootstrapper approved");
    control.admin_ok(&["certificate", "approve", "custom"])?;
    let row = control.admin_ok(&["get", "csr", "custom", "--no-headers"])?;
    ensure!(row.contains("example.com/custom") && row.contains("60m") && row.trim_end().ends_with("Approved"), "{row}");

    // The apiserver client signer: approved by kubectl, signed by the controller.
    let (alice, key) = csr_object("alice", "alice", &["dev"], "kubernetes.io/kube-apiserver-client", &["client auth"])?;
    control_apply(control, &alice)?;
    let row = control.admin_ok(&["get", "csr", "alice", "--no-headers"])?;
    ensure!(row.trim_end().ends_with("Pending"), "{row}");
    control.admin_ok(&["certificate", "approve", "alice"])?;
    let cert = wait_until("alice's certificate", || {
        let csr = csr_json(control, "alice")?;
        Ok(csr["status"]["certificate"].as_str().filter(|c| !c.is_empty()).map(String::from))
    })?;
    let alice_config = control.path("alice.kubeconfig");
    write_client_kubeconfig(&control.admin, &alice_config, &cert, &key)?;
    let (user, groups) = whoami(&alice_config)?;
    ensure!(user == "alice" && groups.iter().any(|g| g == "dev"), "alice is {user} {groups:?}");

    // Deny: Denied, never signed.
    let (mallory, _) = csr_object("mallory", "mallory", &[], "kubernetes.io/kube-apiserver-client", &["client auth"])?;
    control_apply(control, &mallory)?;
    control.admin_ok(&["certificate", "deny", "mallory"])?;
    let row = control.admin_ok(&["get", "csr", "mallory", "--no-headers"])?;
    ensure!(row.trim_end().ends_with("Denied"), "{row}");
    let out = kubectl(&control.admin, &["certificate", "approve", "mallory"])?;
    let csr = csr_json(control, "mallory")?;
    ensure!(
        csr["status"]["certificate"].is_null(),
        "a denied request got a certificate (approve said {})",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The admin kubeconfig with its user replaced by `cert` (base64 PEM) and `key` (PEM).
fn write_client_kubeconfig(admin: &Path, to: &Path, cert: &str, key: &str) -> Result<()> {
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(admin)?)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    let user = &mut doc["users"][0]["user"];
    *user = serde_yaml_ng::to_value(json!({"client-certificate-data": cert, "client-key-data": b64}))?;
    std::fs::write(to, serde_yaml_ng::to_string(&doc)?)?;
    Ok(())
}
