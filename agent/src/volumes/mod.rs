//! Pod volumes: decide, then apply.
//!
//! - [`plan`] (pure) turns a pod's `spec.volumes` plus the ConfigMaps and
//!   Secrets it names into [`plan::VolumePlan`]s: where each volume lives
//!   (`<root>/pods/<uid>/volumes/<plugin>/<name>`, or the host path) and what
//!   must be there (an empty dir, a tmpfs, a set of files, a checked host
//!   path). [`payload`] builds the file sets (configMap, secret,
//!   downwardAPI, projected).
//! - [`mounts`] (pure) turns a container's `volumeMounts` into mount requests
//!   (readOnly, subPath/subPathExpr, mountPropagation).
//! - [`apply`] makes a plan true on disk (idempotent) through the narrow
//!   [`Mounter`] trait for tmpfs mounts, resolves subPaths into CRI mounts,
//!   and tears a pod's volumes down. [`atomic_writer`] writes file sets with
//!   the `..data` symlink swap so readers never see a half-written update.
//!   [`ownership`] gives volumes the pod's `fsGroup`.
//!
//! Must not: call the API or the runtime (the pod worker fetches sources and
//! passes CRI mounts on).

pub mod apply;
pub mod atomic_writer;
mod mounter;
pub mod mounts;
pub mod ownership;
pub mod payload;
pub mod plan;

use std::path::{Path, PathBuf};

pub use mounter::{parse_mount_points, FakeMounter, Mounter, NixMounter};

/// Plugin directory of emptyDir volumes (upstream's name).
pub const PLUGIN_EMPTY_DIR: &str = "kubernetes.io~empty-dir";
/// Plugin directory of configMap volumes.
pub const PLUGIN_CONFIG_MAP: &str = "kubernetes.io~configmap";
/// Plugin directory of secret volumes.
pub const PLUGIN_SECRET: &str = "kubernetes.io~secret";
/// Plugin directory of downwardAPI volumes.
pub const PLUGIN_DOWNWARD_API: &str = "kubernetes.io~downward-api";
/// Plugin directory of projected volumes.
pub const PLUGIN_PROJECTED: &str = "kubernetes.io~projected";

/// The ServiceAccount a pod runs as (`default` when unset).
pub fn service_account_of(pod: &k8s_openapi::api::core::v1::Pod) -> String {
    let spec = pod.spec.as_ref();
    let name = spec.and_then(|s| s.service_account_name.as_deref().or(s.service_account.as_deref()));
    name.filter(|n| !n.is_empty()).unwrap_or("default").to_string()
}

/// `<root>/pods/<uid>`: everything the agent keeps for a pod besides its
/// logs (which live in `<root>/pods/<ns>_<name>_<uid>`, the CRI log layout).
pub fn pod_dir(root_dir: &Path, uid: &str) -> PathBuf {
    root_dir.join("pods").join(uid)
}

/// `<root>/pods/<uid>/volumes/<plugin>/<name>`.
pub fn volume_dir(root_dir: &Path, uid: &str, plugin: &str, name: &str) -> PathBuf {
    pod_dir(root_dir, uid).join("volumes").join(plugin).join(name)
}

/// Why a volume or a volume mount cannot be set up. Shown to users in
/// FailedMount Events and waiting messages, so every variant names the volume.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A projected serviceAccountToken source whose token was not issued.
    #[error("volume {volume:?}: no service account token for audience {audience:?} yet")]
    TokenMissing {
        /// The volume.
        volume: String,
        /// The audience asked for (empty: the apiserver's).
        audience: String,
    },
    /// A volume type this node does not support.
    #[error("volume {volume:?}: unsupported volume type {kind}")]
    Unsupported {
        /// The volume.
        volume: String,
        /// Its type (`persistentVolumeClaim`, `nfs`, ...).
        kind: &'static str,
    },
    /// A volume with no source at all.
    #[error("volume {volume:?}: no volume source set")]
    NoSource {
        /// The volume.
        volume: String,
    },
    /// A non-optional ConfigMap or Secret is missing.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {kind} {name:?} not found")]
    SourceMissing {
        /// The volume.
        volume: String,
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Object name.
        name: String,
    },
    /// An item names a key the object does not have.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {kind} {name:?} references non-existent key {key:?}")]
    KeyMissing {
        /// The volume.
        volume: String,
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Object name.
        name: String,
        /// The key.
        key: String,
    },
    /// A file path inside a volume is absolute, has `..`, or collides.
    #[error("volume {volume:?}: invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The volume.
        volume: String,
        /// The path.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// A file mode outside 0..=0777.
    #[error("volume {volume:?}: invalid file mode {mode}")]
    InvalidMode {
        /// The volume.
        volume: String,
        /// The mode as given.
        mode: i32,
    },
    /// A downward API field or resource this agent does not know.
    #[error("volume {volume:?}: unsupported downward API field {field:?}")]
    UnsupportedField {
        /// The volume.
        volume: String,
        /// `fieldPath` or `resource`.
        field: String,
    },
    /// A quantity (sizeLimit, divisor, limit) that does not parse.
    #[error("volume {volume:?}: {source}")]
    Quantity {
        /// The volume.
        volume: String,
        /// The parse error.
        source: bosun_resources::QuantityError,
    },
    /// An unknown hostPath type.
    #[error("volume {volume:?}: unknown hostPath type {kind:?}")]
    HostPathTypeUnknown {
        /// The volume.
        volume: String,
        /// The type as given.
        kind: String,
    },
    /// The host path is not what the hostPath type demands.
    #[error("MountVolume.SetUp failed for volume {volume:?} : hostPath type check failed: {path} is not a {expected}")]
    HostPathType {
        /// The volume.
        volume: String,
        /// The host path.
        path: String,
        /// What it should be (`directory`, `file`, `socket`, ...).
        expected: &'static str,
    },
    /// A volumeMount names a volume the pod does not have.
    #[error("container {container:?}: volumeMount {volume:?} not found in pod volumes")]
    NoSuchVolume {
        /// The container.
        container: String,
        /// The volume name.
        volume: String,
    },
    /// A subPath that is absolute, climbs out, or resolves outside its volume.
    #[error("container {container:?}: invalid subPath {path:?}: {reason}")]
    SubPath {
        /// The container.
        container: String,
        /// The subPath.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// An unknown mountPropagation.
    #[error("container {container:?}: unknown mountPropagation {mode:?}")]
    Propagation {
        /// The container.
        container: String,
        /// The mode as given.
        mode: String,
    },
    /// A filesystem or mount call failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The path.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.display().to_string();
        move |source| Error::Io { action, path, source }
    }
}

#[cfg(test)]
mod tests;
