//! ServiceAccount tokens on the real stack (`bosun up`, real kubectl):
//! - `kubectl create token default` gives a token that authenticates as
//!   `system:serviceaccount:default:default` (`kubectl auth whoami`;
//!   discovery allowed, Secrets forbidden by RBAC, the 403 naming that user);
//! - a pod gets the `kube-api-access-*` projected volume: its token
//!   (requested by the agent with the node's identity, bound to the pod)
//!   authenticates from the host as the pod's ServiceAccount, `namespace`
//!   is the pod's and `ca.crt` is the cluster CA;
//! - after the pod is deleted its token gets 401; so does the token of a
//!   ServiceAccount that was deleted and created again.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use base64::Engine as _;
use serde_json::{json, Value};
use support::cluster::Cluster;
use support::pods::wait_pod;

const WAIT: Duration = Duration::from_secs(120);
const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A kubeconfig with the cluster's CA and address and only `token` as
/// credential (a client certificate would win over it).
fn token_kubeconfig(cluster: &Cluster, token: &str) -> Result<PathBuf> {
    static WRITTEN: AtomicUsize = AtomicUsize::new(0);
    let admin: Value = serde_json::from_str(&cluster.kubectl_ok(&["config", "view", "--raw", "-o", "json"])?)?;
    let config = json!({"apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}]});
    let path = cluster.dir.join(format!("token-{}.kubeconfig", WRITTEN.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, config.to_string())?;
    Ok(path)
}

/// kubectl with only `token`: (success, stdout + stderr).
fn with_token(cluster: &Cluster, token: &str, args: &[&str]) -> Result<(bool, String)> {
    let config = token_kubeconfig(cluster, token)?;
    let out = std::process::Command::new("kubectl").arg("--kubeconfig").arg(&config).args(args).output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

/// The token authenticates as `user` (`kubectl auth whoami`): discovery
/// works, Secrets are refused by RBAC naming `user`.
fn authenticates_as(cluster: &Cluster, token: &str, user: &str) -> Result<()> {
    let (ok, text) = with_token(cluster, token, &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"])?;
    ensure!(ok && text == user, "whoami with the token: {text}");
    let (ok, text) = with_token(cluster, token, &["get", "--raw", "/apis"])?;
    ensure!(ok, "discovery with the token: {text}");
    let (ok, text) = with_token(cluster, token, &["get", "secrets"])?;
    ensure!(!ok && text.contains(&format!("User \"{user}\" cannot list resource \"secrets\"")), "{text}");
    Ok(())
}

/// The token is refused with 401.
fn refused(cluster: &Cluster, token: &str) -> Result<()> {
    let (ok, text) = with_token(cluster, token, &["get", "--raw", "/apis"])?;
    ensure!(!ok && text.contains("Unauthorized"), "want 401: {text}");
    Ok(())
}

fn exec_cat(cluster: &Cluster, pod: &str, file: &str) -> Result<String> {
    cluster.kubectl_ok(&["exec", pod, "--", "cat", &format!("{MOUNT}/{file}")])
}

/// The JSON payload of a JWT.
fn claims(token: &str) -> Result<Value> {
    let payload = token.split('.').nth(1).context("no payload")?;
    Ok(serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?)
}

#[test]
fn service_account_tokens_from_kubectl_and_in_pods() -> Result<()> {
    let cluster = Cluster::start("sa-node")?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    const USER: &str = "system:serviceaccount:default:default";

    // `kubectl create token`.
    let token = cluster.kubectl_ok(&["create", "token", "default"])?.trim().to_string();
    authenticates_as(&cluster, &token, USER)?;

    // A pod's mounted token, namespace and CA.
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sa-reader\nspec:\n  containers:\n    - name: c\n      image: {image}\n      command: [\"sleep\", \"3600\"]\n"
    );
    let (ok, out, err) = cluster.apply_stdin(&pod)?;
    ensure!(ok, "apply pod: {err}{out}");
    let running = wait_pod(&cluster, "sa-reader", "Running", WAIT, |p| p["status"]["phase"] == "Running")?;
    ensure!(running["spec"]["serviceAccountName"] == "default", "{}", running["spec"]);
    let volume = &running["spec"]["volumes"][0];
    ensure!(volume["name"].as_str().is_some_and(|n| n.starts_with("kube-api-access-")), "{volume}");
    let pod_token = exec_cat(&cluster, "sa-reader", "token")?;
    let bound = claims(&pod_token)?;
    ensure!(bound["kubernetes.io"]["pod"]["name"] == "sa-reader", "bound to the pod: {bound}");
    ensure!(bound["kubernetes.io"]["pod"]["uid"] == running["metadata"]["uid"], "{bound}");
    authenticates_as(&cluster, &pod_token, USER)?;
    ensure!(exec_cat(&cluster, "sa-reader", "namespace")? == "default", "namespace file");
    let admin: Value = serde_json::from_str(&cluster.kubectl_ok(&["config", "view", "--raw", "-o", "json"])?)?;
    let ca = admin["clusters"][0]["cluster"]["certificate-authority-data"].as_str().context("CA in kubeconfig")?;
    let ca = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(ca)?)?;
    ensure!(exec_cat(&cluster, "sa-reader", "ca.crt")? == ca, "ca.crt is the cluster CA");

    // The pod is deleted: its token is refused.
    cluster.kubectl_ok(&["delete", "pod", "sa-reader", "--wait=true", "--timeout=120s"])?;
    let deadline = Instant::now() + WAIT;
    while cluster.kubectl(&["get", "pod", "sa-reader"])?.0 {
        ensure!(Instant::now() < deadline, "pod not gone after {WAIT:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    refused(&cluster, &pod_token)?;
    authenticates_as(&cluster, &token, USER)?;

    // A ServiceAccount deleted and created again: the old token is refused.
    cluster.kubectl_ok(&["create", "serviceaccount", "bot"])?;
    let bot = cluster.kubectl_ok(&["create", "token", "bot"])?.trim().to_string();
    authenticates_as(&cluster, &bot, "system:serviceaccount:default:bot")?;
    cluster.kubectl_ok(&["delete", "serviceaccount", "bot"])?;
    cluster.kubectl_ok(&["create", "serviceaccount", "bot"])?;
    refused(&cluster, &bot)?;
    Ok(())
}
