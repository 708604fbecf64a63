//! A kubeconfig for clients of the (plain HTTP, unauthenticated) apiserver.

use std::path::Path;

use serde_json::{json, Value};

/// Writing the kubeconfig failed.
#[derive(Debug, thiserror::Error)]
#[error("write kubeconfig {path}: {source}")]
pub struct Error {
    path: String,
    source: std::io::Error,
}

/// A kubeconfig (JSON, which kubectl reads as YAML) for `server`.
pub fn kubeconfig(server: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bosun", "cluster": {"server": server}}],
        "users": [{"name": "bosun", "user": {}}],
        "contexts": [{"name": "bosun", "context": {"cluster": "bosun", "user": "bosun", "namespace": "default"}}],
        "current-context": "bosun",
        "preferences": {},
    })
}

/// Writes [`kubeconfig`] for `server` to `path` (creating its directory).
pub fn write_kubeconfig(path: &Path, server: &str) -> Result<(), Error> {
    let err = |source| Error { path: path.display().to_string(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(path, kubeconfig(server).to_string()).map_err(err)
}
