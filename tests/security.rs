//! TLS and authentication on the real stack (`bosun up`, real kubectl):
//! anonymous requests get 401 except health and version; the generated
//! admin kubeconfig works with kubectl (also by the `localhost` name); the
//! node's own kubeconfig authenticates; a client certificate from another
//! CA is refused in the handshake; a token from `--token-auth-file`
//! authenticates and an unknown one gets 401; every state file is 0600 in
//! a 0700 directory.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use support::access::Access;
use support::cluster::Cluster;

const TOKEN: &str = "31ada4fd-adec-460c-809a-9e56ceb75269";

fn mode(path: &Path) -> Result<u32> {
    Ok(std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?.permissions().mode() & 0o777)
}

#[test]
fn apiserver_serves_https_and_authenticates_every_request() -> Result<()> {
    let tokens = tempfile::tempdir()?;
    let token_file = tokens.path().join("tokens.csv");
    std::fs::write(&token_file, format!("{TOKEN},alice,1001,\"dev,ops\"\n"))?;
    let cluster =
        Cluster::start_with("security-node", &["--token-auth-file".into(), token_file.display().to_string()])?;
    let admin = cluster.access()?;
    ensure!(admin.server.starts_with("https://"), "kubeconfig server {}", admin.server);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(anonymous_and_tokens(&admin))?;
    runtime.block_on(foreign_certificate_is_refused(&admin))?;
    kubectl_works(&cluster, &admin)?;
    state_files_are_private(&cluster)
}

async fn status(request: reqwest::RequestBuilder) -> Result<(u16, String)> {
    let response = request.send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

async fn anonymous_and_tokens(admin: &Access) -> Result<()> {
    let anonymous = admin.anonymous_builder()?.build()?;
    for path in ["/api/v1/secrets", "/api/v1/namespaces/default/pods", "/apis", "/openapi/v2", "/"] {
        let (code, body) = status(anonymous.get(admin.url(path))).await?;
        ensure!(code == 401, "anonymous GET {path}: {code} {body}");
        let body: Value = serde_json::from_str(&body)?;
        ensure!(body["kind"] == "Status" && body["reason"] == "Unauthorized" && body["code"] == 401, "{body}");
    }
    let (code, _) = status(anonymous.post(admin.url("/api/v1/namespaces/default/configmaps")).body("{}")).await?;
    ensure!(code == 401, "anonymous write: {code}");
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let (code, body) = status(anonymous.get(admin.url(path))).await?;
        ensure!(code == 200, "anonymous GET {path}: {code} {body}");
    }
    // The token file's user is authenticated (discovery, which every
    // authenticated user may read) and then authorized by RBAC, which grants
    // it nothing else; an unknown token is 401 even on /healthz.
    let (code, body) = status(anonymous.get(admin.url("/apis")).bearer_auth(TOKEN)).await?;
    ensure!(code == 200 && body.contains("APIGroupList"), "token on discovery: {code} {body}");
    let (code, body) = status(anonymous.get(admin.url("/api/v1/namespaces/default")).bearer_auth(TOKEN)).await?;
    ensure!(code == 403 && body.contains("User \\\"alice\\\""), "token: {code} {body}");
    for path in ["/api/v1/namespaces/default", "/healthz"] {
        let (code, body) = status(anonymous.get(admin.url(path)).bearer_auth("not-a-token")).await?;
        ensure!(code == 401, "unknown token on {path}: {code} {body}");
    }
    // The admin identity over HTTP/2 (ALPN) and HTTP/1.1.
    let (code, _) = status(admin.client()?.get(admin.url("/api/v1/secrets"))).await?;
    ensure!(code == 200, "admin: {code}");
    let http1 = admin.builder()?.http1_only().build()?;
    let (code, _) = status(http1.get(admin.url("/api/v1/secrets"))).await?;
    ensure!(code == 200, "admin over HTTP/1.1: {code}");
    Ok(())
}

/// A client certificate with the admin's name, signed by another CA.
async fn foreign_certificate_is_refused(admin: &Access) -> Result<()> {
    let other = bosun_control::auth::ca::Ca::generate()?;
    let forged = other.issue_client("bosun-admin", "system:masters")?;
    let identity = reqwest::Identity::from_pem(format!("{}{}", forged.cert_pem, forged.key_pem).as_bytes())?;
    let client = admin.anonymous_builder()?.identity(identity).build()?;
    let refused = client.get(admin.url("/api/v1/secrets")).send().await;
    ensure!(refused.is_err(), "a certificate of another CA was accepted: {:?}", refused.map(|r| r.status()));
    Ok(())
}

fn kubectl_works(cluster: &Cluster, admin: &Access) -> Result<()> {
    let nodes = cluster.kubectl_ok(&["get", "nodes", "-o", "name"])?;
    ensure!(nodes.contains("node/security-node"), "{nodes}");
    cluster.kubectl_ok(&["create", "secret", "generic", "s1", "--from-literal=k=v"])?;
    let secret = cluster.kubectl_ok(&["get", "secret", "s1", "-o", "jsonpath={.data.k}"])?;
    ensure!(secret == "dg==", "{secret}");
    // The serving certificate names `localhost` too.
    let port = admin.address().rsplit_once(':').context("port")?.1;
    let by_name = cluster.kubectl_ok(&["--server", &format!("https://localhost:{port}"), "get", "ns", "default"])?;
    ensure!(by_name.contains("default"), "{by_name}");
    // The node's own identity (the agent's kubeconfig) authenticates.
    let node_kubeconfig = cluster.dir.join("node.kubeconfig");
    let out = Command::new("kubectl")
        .env("KUBECONFIG", &node_kubeconfig)
        .args(["get", "node", "security-node", "-o", "name"])
        .output()?;
    ensure!(out.status.success(), "node kubeconfig: {}", String::from_utf8_lossy(&out.stderr));
    let node = Access::from_kubeconfig(&node_kubeconfig)?;
    let subject = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(node.files.path().join("client.crt"))
        .output()?;
    let subject = String::from_utf8_lossy(&subject.stdout).to_string();
    ensure!(subject.contains("system:nodes") && subject.contains("system:node:security-node"), "{subject}");
    Ok(())
}

fn state_files_are_private(cluster: &Cluster) -> Result<()> {
    let control = cluster.dir.join("control");
    for dir in [cluster.dir.clone(), control.clone(), control.join("pki")] {
        ensure!(mode(&dir)? == 0o700, "{} is {:o}", dir.display(), mode(&dir)?);
    }
    let mut files = vec![
        cluster.kubeconfig.clone(),
        cluster.dir.join("node.kubeconfig"),
        control.join("pki/ca.crt"),
        control.join("pki/ca.key"),
        control.join("store.db"),
    ];
    for extra in ["store.db-wal", "store.db-shm"] {
        if control.join(extra).exists() {
            files.push(control.join(extra));
        }
    }
    for file in files {
        ensure!(mode(&file)? == 0o600, "{} is {:o}", file.display(), mode(&file)?);
    }
    Ok(())
}
