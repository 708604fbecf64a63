//! The kubelet API asks who is calling, on the real stack (`bosun up`, real
//! kubectl, real containerd): plain HTTP to the kubelet port gets no HTTP
//! answer; HTTPS without credentials or with an unknown token is 401; a
//! static-token user without RBAC is 403 on `/pods` and `/stats/summary`
//! (SubjectAccessReview at the apiserver) and 200 once bound to
//! `system:kubelet-api-admin`; the admin's client certificate gets 200;
//! `kubectl logs` and `kubectl exec` still work (the apiserver dials the
//! kubelet over TLS with its own client certificate). The serving
//! certificate is self-signed for the node's address (curl verifies it)
//! and its key is 0600.

mod support;

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use support::cluster::Cluster;
use support::kubelet::{Caller, Kubelet};
use support::wait::wait_until;

const TOKEN: &str = "0f6f3d8e-kubelet-auth-test-token";
const NODE: &str = "kauth-node";
const TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn kubelet_api_authenticates_and_authorizes_every_request() -> Result<()> {
    let tokens = tempfile::tempdir()?;
    let token_file = tokens.path().join("tokens.csv");
    std::fs::write(&token_file, format!("{TOKEN},kubelet-reader,2001,\"readers\"\n"))?;
    let cluster = Cluster::start_with(NODE, &["--token-auth-file".into(), token_file.display().to_string()])?;
    let kubelet = Kubelet::of(&cluster, NODE)?;

    plain_http_gets_no_answer(&kubelet)?;
    for path in ["/pods", "/stats/summary", "/metrics", "/healthz"] {
        let (status, body) = kubelet.call(Caller::Anonymous, path, TIMEOUT)?;
        ensure!(status == 401, "anonymous GET {path}: {status} {body}");
    }
    let (status, _) = kubelet.call(Caller::Token("not-a-known-token"), "/pods", TIMEOUT)?;
    ensure!(status == 401, "unknown token: {status}");
    for path in ["/pods", "/stats/summary"] {
        let (status, body) = kubelet.call(Caller::Token(TOKEN), path, TIMEOUT)?;
        ensure!(status == 403, "token user without RBAC GET {path}: {status} {body}");
        ensure!(body.contains("user=kubelet-reader"), "{body}");
    }
    cluster.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "kubelet-reader-api",
        "--clusterrole=system:kubelet-api-admin",
        "--user=kubelet-reader",
    ])?;

    // The admin's client certificate, verified against the cluster CA.
    let pods: serde_json::Value = serde_json::from_str(&kubelet.get("/pods")?)?;
    ensure!(pods["kind"] == "PodList", "{pods}");
    let key = cluster.dir.join("agent/pki/kubelet.key");
    let mode = std::fs::metadata(&key).with_context(|| key.display().to_string())?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "{} is {mode:o}", key.display());

    logs_and_exec_through_the_apiserver(&cluster)?;

    // Denials are cached for 30 s (upstream's kubelet): the binding takes
    // effect within that.
    for path in ["/pods", "/stats/summary"] {
        wait_until(&format!("token user allowed {path}"), || {
            let (status, body) = kubelet.call(Caller::Token(TOKEN), path, TIMEOUT)?;
            ensure!(status == 200 || status == 403, "GET {path}: {status} {body}");
            Ok((status == 200).then_some(()))
        })?;
    }
    Ok(())
}

/// A plain-HTTP request to the kubelet port gets no HTTP answer (the port
/// speaks only TLS).
fn plain_http_gets_no_answer(kubelet: &Kubelet) -> Result<()> {
    let mut stream = std::net::TcpStream::connect(&kubelet.address)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    // The TLS server may already have hung up (broken pipe, reset): no
    // answer either.
    if write!(stream, "GET /pods HTTP/1.0\r\nHost: {}\r\n\r\n", kubelet.address).is_err() {
        return Ok(());
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    ensure!(!answer.starts_with(b"HTTP/"), "plain HTTP answered: {}", String::from_utf8_lossy(&answer));
    ensure!(!String::from_utf8_lossy(&answer).contains("PodList"), "plain HTTP served pods");
    Ok(())
}

fn logs_and_exec_through_the_apiserver(cluster: &Cluster) -> Result<()> {
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: talker\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {}/bosun/app:1.0\n    command: [\"sh\", \"-c\", \"echo hello-from-talker; exec sleep 3600\"]\n",
        cluster.registry
    );
    let (ok, _, err) = cluster.apply_stdin(&manifest)?;
    ensure!(ok, "apply: {err}");
    wait_until("talker logs", || {
        let (_, out, _) = cluster.kubectl(&["logs", "talker"])?;
        Ok((out == "hello-from-talker\n").then_some(()))
    })?;
    let out = cluster.kubectl_ok(&["exec", "talker", "--", "sh", "-c", "echo exec-$((40+2))"])?;
    ensure!(out == "exec-42\n", "{out:?}");
    Ok(())
}
