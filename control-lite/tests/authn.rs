//! Authentication through real HTTPS on an in-process apiserver: anonymous
//! requests get a 401 `Status` except health and version, bearer tokens of
//! the token file authenticate, unknown ones get 401, and a client
//! certificate of another CA fails the handshake.

use anyhow::{ensure, Result};
use bosun_control::auth::ca::Ca;
use serde_json::Value;

mod support;

const TOKEN: &str = "b7c1e0f2-token";

async fn get(request: reqwest::RequestBuilder) -> Result<(u16, String)> {
    let response = request.send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

#[tokio::test]
async fn anonymous_gets_401_except_health_and_tokens_and_certificates_authenticate() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("tokens.csv"), format!("{TOKEN},carol,42,\"team\"\n"))?;
    let api = support::start_apiserver(dir.path()).await?;
    let anonymous = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(api.ca_pem.as_bytes())?)
        .build()?;
    for path in ["/api/v1/secrets", "/api/v1/namespaces/default", "/apis/metrics.k8s.io/v1beta1/nodes", "/nope"] {
        let (code, body) = get(anonymous.get(api.url(path))).await?;
        ensure!(code == 401, "anonymous {path}: {code} {body}");
        let status: Value = serde_json::from_str(&body)?;
        ensure!(status["kind"] == "Status" && status["reason"] == "Unauthorized", "{status}");
    }
    for path in ["/healthz", "/readyz", "/livez", "/version"] {
        let (code, body) = get(anonymous.get(api.url(path))).await?;
        ensure!(code == 200, "anonymous {path}: {code} {body}");
    }
    // Authenticated as carol, whom RBAC grants discovery only.
    let (code, body) = get(anonymous.get(api.url("/apis")).bearer_auth(TOKEN)).await?;
    ensure!(code == 200, "token on discovery: {code} {body}");
    let (code, body) = get(anonymous.get(api.url("/api/v1/namespaces/default")).bearer_auth(TOKEN)).await?;
    ensure!(code == 403 && body.contains("User \\\"carol\\\""), "token: {code} {body}");
    let (code, body) = get(anonymous.get(api.url("/api/v1/namespaces/default")).bearer_auth("wrong")).await?;
    ensure!(code == 401, "unknown token: {code} {body}");
    // The admin certificate; a node's from the same CA.
    let (code, _) = get(api.http()?.get(api.url("/api/v1/namespaces/default"))).await?;
    ensure!(code == 200, "admin: {code}");
    let node = bosun_control::auth::serving::node(
        &Ca::load_or_create(&dir.path().join("pki"))?,
        "n1",
        std::time::Duration::from_secs(3600),
    )?;
    let node_identity = reqwest::Identity::from_pem(format!("{}{}", node.cert_pem, node.key_pem).as_bytes())?;
    let node_client = api.http_builder()?.identity(node_identity).build()?;
    let (code, _) = get(node_client.get(api.url("/api/v1/nodes"))).await?;
    ensure!(code == 200, "node: {code}");
    // Another CA's certificate with the admin's name: refused in the handshake.
    let forged = Ca::generate()?.issue_client("bosun-admin", "system:masters")?;
    let forged = reqwest::Identity::from_pem(format!("{}{}", forged.cert_pem, forged.key_pem).as_bytes())?;
    let forger = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(api.ca_pem.as_bytes())?)
        .identity(forged)
        .build()?;
    let refused = forger.get(api.url("/api/v1/namespaces/default")).send().await;
    ensure!(refused.is_err(), "forged certificate accepted: {:?}", refused.map(|r| r.status()));
    api.token.cancel();
    Ok(())
}
