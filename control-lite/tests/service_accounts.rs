//! ServiceAccounts on an in-process control plane with real kubectl:
//! `default` and `kube-root-ca.crt` in every namespace (recreated when
//! deleted), `kubectl create token`, tokens authenticating as their
//! ServiceAccount until it (or the bound pod) is replaced or deleted, and pod
//! admission (default ServiceAccount, token volume, unknown ServiceAccount
//! refused), and the issuer's discovery documents, whose published key
//! verifies the tokens.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use serde_json::{json, Value};
use support::{eventually, Plane};

mod support;

const WAIT: Duration = Duration::from_secs(60);

/// Writes a kubeconfig that trusts the plane's CA and presents `token` only
/// (no client certificate, which would win over the token).
async fn token_kubeconfig(plane: &Plane, token: &str) -> Result<std::path::PathBuf> {
    let admin: Value = serde_json::from_str(&plane.kubectl(&["config", "view", "--raw", "-o", "json"]).await?)?;
    let cluster = &admin["clusters"][0]["cluster"];
    let config = json!({"apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}]});
    static WRITTEN: AtomicUsize = AtomicUsize::new(0);
    let path = plane.dir.path().join(format!("token-{}.kubeconfig", WRITTEN.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, config.to_string())?;
    Ok(path)
}

/// The status code of a GET of `path` with bearer `token`.
async fn status_with(plane: &Plane, token: &str, path: &str) -> Result<(u16, String)> {
    let config = token_kubeconfig(plane, token).await?;
    let config = config.to_str().context("path")?;
    let out = plane.kubectl_raw(&["--kubeconfig", config, "get", "--raw", path]).await?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        return Ok((200, text));
    }
    let code = ["Unauthorized", "Forbidden"]
        .iter()
        .zip([401, 403])
        .find(|(word, _)| text.contains(*word))
        .map_or(0, |(_, code)| code);
    Ok((code, text))
}

#[tokio::test]
async fn service_accounts_tokens_and_pod_admission() -> Result<()> {
    let plane = Plane::full().await?;
    let ca = std::fs::read_to_string(plane.dir.path().join("pki/ca.crt"))?;
    // Every namespace has its default ServiceAccount and CA, at once.
    plane.kubectl(&["create", "namespace", "team"]).await?;
    plane.kubectl(&["-n", "team", "get", "serviceaccount", "default"]).await?;
    let cm: Value = serde_json::from_str(
        &plane.kubectl(&["-n", "team", "get", "configmap", "kube-root-ca.crt", "-o", "json"]).await?,
    )?;
    ensure!(cm["data"]["ca.crt"] == ca.as_str(), "kube-root-ca.crt holds the cluster CA: {cm}");
    // Deleted: the controller makes them again.
    plane.kubectl(&["-n", "team", "delete", "serviceaccount", "default"]).await?;
    plane.kubectl(&["-n", "team", "delete", "configmap", "kube-root-ca.crt"]).await?;
    eventually("default recreated", WAIT, || async {
        let sa = plane.kubectl_raw(&["-n", "team", "get", "serviceaccount", "default"]).await?;
        let cm = plane.kubectl_raw(&["-n", "team", "get", "configmap", "kube-root-ca.crt"]).await?;
        Ok((sa.status.success() && cm.status.success()).then_some(()))
    })
    .await?;

    // `kubectl create token` and the token's user.
    let token = plane.kubectl(&["-n", "team", "create", "token", "default"]).await?.trim().to_string();
    let (code, body) = status_with(&plane, &token, "/apis").await?;
    ensure!(code == 200, "discovery with the token: {code} {body}");
    let config = token_kubeconfig(&plane, &token).await?;
    let whoami =
        plane.kubectl(&["--kubeconfig", config.to_str().context("path")?, "auth", "whoami", "-o", "json"]).await?;
    let whoami: Value = serde_json::from_str(&whoami)?;
    ensure!(whoami["status"]["userInfo"]["username"] == "system:serviceaccount:team:default", "{whoami}");
    let groups = &whoami["status"]["userInfo"]["groups"];
    ensure!(
        *groups == json!(["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"]),
        "{groups}"
    );
    let (code, body) = status_with(&plane, &token, "/api/v1/namespaces/team/secrets").await?;
    ensure!(code == 403 && body.contains("system:serviceaccount:team:default"), "{code} {body}");
    let short = plane.kubectl_raw(&["-n", "team", "create", "token", "default", "--duration=5m"]).await?;
    ensure!(!short.status.success(), "a 5 minute token is refused");
    ensure!(String::from_utf8_lossy(&short.stderr).contains("10 minutes"), "{short:?}");
    // A token of a ServiceAccount that was deleted and made again is refused.
    plane.kubectl(&["-n", "team", "create", "serviceaccount", "builder"]).await?;
    let builder = plane.kubectl(&["-n", "team", "create", "token", "builder"]).await?.trim().to_string();
    ensure!(status_with(&plane, &builder, "/apis").await?.0 == 200, "builder's token");
    plane.kubectl(&["-n", "team", "delete", "serviceaccount", "builder"]).await?;
    plane.kubectl(&["-n", "team", "create", "serviceaccount", "builder"]).await?;
    let (code, body) = status_with(&plane, &builder, "/apis").await?;
    ensure!(code == 401, "old builder token after recreation: {code} {body}");

    // Pod admission: default ServiceAccount and the token volume.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let file = plane.dir.path().join("pod.json");
    std::fs::write(&file, pod.to_string())?;
    let created: Value =
        serde_json::from_str(&plane.kubectl(&["create", "-f", file.to_str().context("path")?, "-o", "json"]).await?)?;
    ensure!(created["spec"]["serviceAccountName"] == "default", "{created}");
    let volume = &created["spec"]["volumes"][0];
    ensure!(volume["name"].as_str().is_some_and(|n| n.starts_with("kube-api-access-")), "{volume}");
    let mount = &created["spec"]["containers"][0]["volumeMounts"][0];
    ensure!(
        mount["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount" && mount["readOnly"] == true,
        "{mount}"
    );
    let mut other = pod.clone();
    other["metadata"]["name"] = json!("other");
    other["spec"]["serviceAccountName"] = json!("ghost");
    std::fs::write(&file, other.to_string())?;
    let refused = plane.kubectl_raw(&["create", "-f", file.to_str().context("path")?]).await?;
    let err = String::from_utf8_lossy(&refused.stderr);
    ensure!(!refused.status.success() && err.contains("serviceaccount \"ghost\" not found"), "{err}");

    // A token bound to the pod stops working when the pod is deleted.
    let bound = plane
        .kubectl(&["-n", "team", "create", "token", "default", "--bound-object-kind=Pod", "--bound-object-name=web"])
        .await?
        .trim()
        .to_string();
    ensure!(status_with(&plane, &bound, "/apis").await?.0 == 200, "bound token");
    plane.kubectl(&["-n", "team", "delete", "pod", "web", "--grace-period=0", "--force", "--wait=false"]).await?;
    eventually("pod gone", WAIT, || async {
        let out = plane.kubectl_raw(&["-n", "team", "get", "pod", "web"]).await?;
        Ok((!out.status.success()).then_some(()))
    })
    .await?;
    let (code, body) = status_with(&plane, &bound, "/apis").await?;
    ensure!(code == 401, "bound token after the pod's deletion: {code} {body}");
    plane.stop().await;
    Ok(())
}

#[tokio::test]
async fn the_issuers_published_key_verifies_its_tokens() -> Result<()> {
    let plane = Plane::full().await?;
    eventually("the default ServiceAccount", WAIT, || async {
        Ok(plane.kubectl_raw(&["get", "serviceaccount", "default"]).await?.status.success().then_some(()))
    })
    .await?;
    // A token for another relying party (not valid at the apiserver), and
    // one for the apiserver that reads the documents.
    let token = plane.kubectl(&["create", "token", "default", "--audience", "vault"]).await?.trim().to_string();
    let reader = plane.kubectl(&["create", "token", "default"]).await?.trim().to_string();
    // A ServiceAccount may read both documents (system:serviceaccounts is bound).
    let (code, body) = status_with(&plane, &reader, "/.well-known/openid-configuration").await?;
    ensure!(code == 200, "discovery document: {code} {body}");
    let config: Value = serde_json::from_str(&body)?;
    ensure!(config["issuer"] == "https://kubernetes.default.svc.cluster.local", "{config}");
    let server = plane.kubectl(&["config", "view", "-o", "jsonpath={.clusters[0].cluster.server}"]).await?;
    ensure!(config["jwks_uri"] == format!("{}/openid/v1/jwks", server.trim()), "{config} (server {server})");
    let (code, body) = status_with(&plane, &reader, "/openid/v1/jwks").await?;
    ensure!(code == 200, "key set: {code} {body}");
    // The key set alone verifies the token, issuer and audience included.
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&body)?;
    let kid = jsonwebtoken::decode_header(&token)?.kid.context("the token names its key")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).context("the token's key is published")?)?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["vault"]);
    validation.set_issuer(&["https://kubernetes.default.svc.cluster.local"]);
    let claims = jsonwebtoken::decode::<Value>(&token, &key, &validation)?.claims;
    ensure!(claims["sub"] == "system:serviceaccount:default:default", "{claims}");
    // The admin (cluster-admin) reads them too; a stranger's token does not.
    plane.kubectl(&["get", "--raw", "/openid/v1/jwks"]).await?;
    let (code, _) = status_with(&plane, "not-a-token", "/openid/v1/jwks").await?;
    ensure!(code == 401, "an unknown token: {code}");
    plane.stop().await;
    Ok(())
}
