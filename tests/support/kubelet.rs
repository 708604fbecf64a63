//! Calls to a node's kubelet API from the host, as the apiserver and
//! operators make them: HTTPS at the address and port the Node publishes,
//! the kubelet's self-signed serving certificate (in the agent's
//! `pki/kubelet.crt`) trusted, and the admin's client certificate (or a
//! bearer token, or nothing) as the credential.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use super::access::Access;
use super::cluster::Cluster;

/// Who calls.
pub enum Caller<'a> {
    /// The admin's client certificate (`system:masters`).
    Admin,
    /// `Authorization: Bearer <token>`.
    Token(&'a str),
    /// No credentials.
    Anonymous,
}

/// One node's kubelet API.
pub struct Kubelet {
    /// `https://<InternalIP>:<port>`.
    pub url: String,
    /// `<InternalIP>:<port>`.
    pub address: String,
    /// The kubelet's serving certificate, to verify it with.
    pub ca_file: PathBuf,
    access: Access,
}

impl Kubelet {
    /// The kubelet of `node` in `cluster` (one agent, under `<dir>/agent`).
    pub fn of(cluster: &Cluster, node: &str) -> Result<Kubelet> {
        let node: Value = cluster.json(&["get", "node", node])?;
        let ip = node["status"]["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
            .and_then(|a| a["address"].as_str())
            .context("node InternalIP")?
            .to_string();
        let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64().context("kubelet port")?;
        let address = format!("{ip}:{port}");
        Ok(Kubelet {
            url: format!("https://{address}"),
            address,
            ca_file: cluster.dir.join("agent/pki/kubelet.crt"),
            access: cluster.access()?,
        })
    }

    /// `GET path` as `caller`: (HTTP status, body).
    pub fn call(&self, caller: Caller<'_>, path: &str, timeout: Duration) -> Result<(u16, String)> {
        let mut command = Command::new("curl");
        command.args(["-sS", "--noproxy", "*", "--max-time", &format!("{:.3}", timeout.as_secs_f64())]);
        command.arg("--cacert").arg(&self.ca_file).args(["-w", "\n%{http_code}"]);
        match caller {
            Caller::Admin => {
                let files = self.access.files.path();
                command.arg("--cert").arg(files.join("client.crt")).arg("--key").arg(files.join("client.key"));
            }
            Caller::Token(token) => {
                command.args(["-H", &format!("Authorization: Bearer {token}")]);
            }
            Caller::Anonymous => {}
        }
        let url = format!("{}{path}", self.url);
        let out = command.arg(&url).output()?;
        ensure!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').context("curl's status line")?;
        Ok((code.trim().parse().with_context(|| format!("status {code:?}"))?, body.to_string()))
    }

    /// `GET path` as the admin within `timeout`; must answer 200: the body.
    pub fn get_within(&self, path: &str, timeout: Duration) -> Result<String> {
        let (status, body) = self.call(Caller::Admin, path, timeout)?;
        ensure!(status == 200, "GET {path} on the kubelet: {status} {body}");
        Ok(body)
    }

    /// `GET path` as the admin (60 s at most); must answer 200: the body.
    pub fn get(&self, path: &str) -> Result<String> {
        self.get_within(path, Duration::from_secs(60))
    }
}
