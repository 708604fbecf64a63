//! Kubeconfigs for clients of the apiserver: its HTTPS URL, the cluster CA
//! and a client certificate (CN = user, O = groups), all embedded. Written
//! 0600 in a 0700 directory.

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::auth::ca::Credential;

/// Writing the kubeconfig failed.
#[derive(Debug, thiserror::Error)]
#[error("write kubeconfig {path}: {source}")]
pub struct Error {
    path: String,
    source: std::io::Error,
}

/// A kubeconfig (JSON, which kubectl reads as YAML) for `server`, trusting
/// `ca_pem` and authenticating as `user`.
pub fn kubeconfig(server: &str, ca_pem: &str, user: &Credential) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bosun", "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": "bosun", "user": {
            "client-certificate-data": b64(&user.cert_pem),
            "client-key-data": b64(&user.key_pem),
        }}],
        "contexts": [{"name": "bosun", "context": {"cluster": "bosun", "user": "bosun", "namespace": "default"}}],
        "current-context": "bosun",
        "preferences": {},
    })
}

/// Writes [`kubeconfig`] to `path` (0600; its directory created 0700).
pub fn write_kubeconfig(path: &Path, server: &str, ca_pem: &str, user: &Credential) -> Result<(), Error> {
    let err = |source| Error { path: path.display().to_string(), source };
    crate::auth::files::write_private(path, kubeconfig(server, ca_pem, user).to_string().as_bytes()).map_err(err)
}

/// A kube-rs client configuration for the same access, in memory.
pub async fn kube_config(
    server: &str,
    ca_pem: &str,
    user: &Credential,
) -> Result<kube::Config, kube::config::KubeconfigError> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&kubeconfig(server, ca_pem, user).to_string())?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await
}
