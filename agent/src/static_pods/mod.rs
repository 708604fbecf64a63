//! Static pods: Pod manifests (YAML or JSON, one Pod per file) in the
//! `--pod-manifest-path` directory, run by this agent without any API
//! server, and mirrored to the API as mirror pods when one is reachable
//! (`mirror`).
//!
//! Owns: turning a manifest into the pod the agent runs ([`static_pod`],
//! pure), and the directory source ([`watch_dir`]) that re-reads the
//! directory when inotify reports a change ([`dir_watch`]) and every period
//! as a safety net, and publishes the whole set when it changed.
//! As upstream: the pod is named `<name>-<node>`, bound to this node, and
//! its UID is a digest of the file and the node name, so a changed file is
//! a new pod (the old one is stopped, the new one started) and a removed
//! file stops the pod.
//!
//! A static pod's status is written to its mirror pod (`status`).
//!
//! Must not: run containers (the pod manager's workers do), or read the
//! API (the mirror controller does).

pub mod dir_watch;
pub mod mirror;
pub mod status;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Annotation naming where a pod came from (`file` for static pods).
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// Annotation holding the static pod's digest (its UID).
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// Annotation marking a mirror pod; its value is the static pod's digest.
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";

/// Largest manifest read (a Pod is a few KiB).
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// A manifest that cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is larger than any Pod manifest.
    #[error("{path}: larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: String,
    },
    /// The file is not a Pod.
    #[error("{path}: not a Pod manifest: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
}

/// FNV-1a (64 bit): stable across agent builds and restarts.
fn digest(parts: &[&[u8]]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = parts
        .iter()
        .flat_map(|p| p.iter().chain(std::iter::once(&0u8)))
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME));
    format!("{hash:016x}")
}

/// The pod the agent runs for manifest `bytes` (from file `path`) on node
/// `node`: named `<name>-<node>`, bound to the node, UID and config hash
/// from the file's digest, with the API server's pod defaults filled in
/// (the same function the apiserver applies).
pub fn static_pod(path: &str, bytes: &[u8], node: &str) -> Result<Pod, Error> {
    let parse = |message: String| Error::Parse { path: path.to_string(), message };
    let value: serde_json::Value = serde_yaml_ng::from_slice(bytes).map_err(|e| parse(e.to_string()))?;
    if value.get("kind").and_then(|k| k.as_str()) != Some("Pod") {
        return Err(parse("kind is not Pod".into()));
    }
    let mut pod: Pod = serde_json::from_value(value).map_err(|e| parse(e.to_string()))?;
    let name = pod.metadata.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| parse("no metadata.name".into()))?;
    let spec = pod.spec.as_mut().ok_or_else(|| parse("no spec".into()))?;
    if spec.containers.is_empty() {
        return Err(parse("no containers".into()));
    }
    let hash = digest(&[bytes, node.as_bytes()]);
    spec.node_name = Some(node.to_string());
    bosun_resources::pod_defaults::default_pod_spec(spec);
    let meta = &mut pod.metadata;
    meta.name = Some(format!("{name}-{node}"));
    meta.namespace.get_or_insert_with(|| "default".to_string());
    meta.uid = Some(hash.clone());
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_SOURCE.to_string(), "file".to_string());
    annotations.insert(CONFIG_HASH.to_string(), hash);
    Ok(pod)
}

/// Whether `pod` is a static pod (run from a file, not from the API).
pub fn is_static(pod: &Pod) -> bool {
    annotation(pod, CONFIG_SOURCE) == Some("file")
}

/// Whether `pod` is a mirror pod (the API's copy of a static pod).
pub fn is_mirror(pod: &Pod) -> bool {
    annotation(pod, CONFIG_MIRROR).is_some()
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The manifests of `dir` (regular files not starting with `.`, sorted by
/// name) as pods; files that are not Pods are returned as errors.
pub fn read_dir(dir: &Path, node: &str) -> (Vec<Pod>, Vec<Error>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // A missing directory is an empty one (as upstream).
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return (Vec::new(), Vec::new()),
        Err(source) => return (Vec::new(), vec![Error::Read { path: dir.display().to_string(), source }]),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    paths.sort();
    let (mut pods, mut errors) = (Vec::new(), Vec::new());
    for path in paths {
        let shown = path.display().to_string();
        match read_bounded(&path) {
            Ok(bytes) => match static_pod(&shown, &bytes, node) {
                Ok(pod) => pods.push(pod),
                Err(error) => errors.push(error),
            },
            Err(error) => errors.push(error),
        }
    }
    (pods, errors)
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, Error> {
    let shown = || path.display().to_string();
    let len = std::fs::metadata(path).map_err(|source| Error::Read { path: shown(), source })?.len();
    if len > MAX_MANIFEST_BYTES {
        return Err(Error::TooLarge { path: shown() });
    }
    std::fs::read(path).map_err(|source| Error::Read { path: shown(), source })
}

/// Waits for the watch's next change; without a watch (no directory yet,
/// or it went away) only the poll wakes the source.
async fn next_change(watch: &mut Option<dir_watch::DirWatch>) {
    let Some(current) = watch.as_ref() else {
        return std::future::pending().await;
    };
    match current.changed().await {
        Ok(dir_watch::Change::Manifests) => {}
        Ok(dir_watch::Change::DirectoryGone) => *watch = None,
        Err(error) => {
            tracing::warn!(%error, "static pods: inotify failed; polling only");
            *watch = None;
        }
    }
}

/// Re-reads `dir` whenever inotify reports a change and every `period`,
/// and publishes the static pods on `pods` whenever the set (by UID)
/// changed. A bad manifest is reported once (until it changes) and skipped.
pub async fn watch_dir(
    dir: PathBuf,
    node: String,
    period: Duration,
    pods: watch::Sender<Vec<Arc<Pod>>>,
    token: CancellationToken,
) {
    let mut reported: Vec<String> = Vec::new();
    let mut watch: Option<dir_watch::DirWatch> = None;
    loop {
        if watch.is_none() {
            // Watch before reading, so a change during the read is not missed.
            watch = dir_watch::DirWatch::new(&dir).ok();
        }
        let (dir_c, node_c) = (dir.clone(), node.clone());
        let (found, errors) = tokio::task::spawn_blocking(move || read_dir(&dir_c, &node_c)).await.unwrap_or_default();
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        for message in messages.iter().filter(|m| !reported.contains(m)) {
            tracing::warn!(error = %message, "static pod manifest skipped");
        }
        reported = messages;
        let uids = |pods: &[Arc<Pod>]| pods.iter().map(|p| p.metadata.uid.clone()).collect::<Vec<_>>();
        let found: Vec<Arc<Pod>> = found.into_iter().map(Arc::new).collect();
        pods.send_if_modified(|current| {
            if uids(current) == uids(&found) {
                return false;
            }
            tracing::info!(count = found.len(), dir = %dir.display(), "static pods changed");
            *current = found;
            true
        });
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(period) => {}
            () = next_change(&mut watch) => {}
        }
    }
}

#[cfg(test)]
mod tests;
