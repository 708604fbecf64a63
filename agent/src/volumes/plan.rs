//! What each of a pod's volumes needs on this node, computed from the pod
//! and the ConfigMaps/Secrets it names. Pure and table-tested.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Volume};

use super::payload::{self, FileEntry, KeyedSource, NodeAllocatable, DEFAULT_MODE};
use super::{volume_dir, Error, Result};

/// Where a volume's bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// A directory on the node's disk.
    Disk,
    /// A tmpfs mounted on the volume directory, `size=` when given.
    Memory {
        /// The tmpfs size in bytes.
        size_bytes: Option<u64>,
    },
}

/// The `type` of a hostPath volume and the check it implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathType {
    /// `""`: no check.
    Unchecked,
    /// A directory, created (0755) when missing.
    DirectoryOrCreate,
    /// An existing directory.
    Directory,
    /// A file, created empty (0644) when missing; its parent must exist.
    FileOrCreate,
    /// An existing file.
    File,
    /// An existing UNIX socket.
    Socket,
    /// An existing character device.
    CharDevice,
    /// An existing block device.
    BlockDevice,
}

impl HostPathType {
    /// Parses the API value.
    pub fn parse(volume: &str, text: Option<&str>) -> Result<Self> {
        Ok(match text.unwrap_or_default() {
            "" => Self::Unchecked,
            "DirectoryOrCreate" => Self::DirectoryOrCreate,
            "Directory" => Self::Directory,
            "FileOrCreate" => Self::FileOrCreate,
            "File" => Self::File,
            "Socket" => Self::Socket,
            "CharDevice" => Self::CharDevice,
            "BlockDevice" => Self::BlockDevice,
            other => return Err(Error::HostPathTypeUnknown { volume: volume.into(), kind: other.into() }),
        })
    }
}

/// What must exist at a volume's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setup {
    /// An empty directory (world-writable, as upstream), or a tmpfs.
    EmptyDir {
        /// Disk or memory.
        medium: Medium,
    },
    /// A path of the host, checked per its type.
    HostPath {
        /// The type check.
        check: HostPathType,
    },
    /// A set of files written atomically (configMap, secret, downwardAPI, projected).
    Files {
        /// Disk (configMap) or memory (secret, downwardAPI, projected).
        medium: Medium,
        /// The files.
        files: Vec<FileEntry>,
    },
}

/// One volume of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePlan {
    /// The volume name.
    pub name: String,
    /// Its path on the node (mount source).
    pub path: PathBuf,
    /// API data volumes are always mounted read-only (upstream does too).
    pub read_only: bool,
    /// What must be there.
    pub setup: Setup,
}

/// What volumes depend on beyond the pod.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// ConfigMaps of the pod's namespace that exist, by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets of the pod's namespace that exist, by name.
    pub secrets: BTreeMap<String, Secret>,
    /// For `resourceFieldRef` limits the container does not set.
    pub node: NodeAllocatable,
    /// ServiceAccount tokens issued for the pod's projected
    /// `serviceAccountToken` sources.
    pub tokens: BTreeMap<TokenKey, String>,
}

/// What a projected `serviceAccountToken` source asks for: one token per
/// distinct audience and lifetime.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenKey {
    /// The audience (empty: the apiserver's).
    pub audience: String,
    /// The lifetime asked for (upstream's default: 1 h).
    pub expiration_seconds: i64,
}

/// Lifetime of a token source that does not say (upstream's default).
pub const DEFAULT_TOKEN_SECONDS: i64 = 3600;

/// The tokens the pod's projected volumes need.
pub fn token_keys(pod: &Pod) -> BTreeSet<TokenKey> {
    volumes_of(pod)
        .iter()
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()))
        .filter_map(|s| s.service_account_token.as_ref())
        .map(|t| TokenKey {
            audience: t.audience.clone().unwrap_or_default(),
            expiration_seconds: t.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS),
        })
        .collect()
}

/// ConfigMaps and Secrets named by the pod's volumes (to fetch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// ConfigMap names.
    pub config_maps: BTreeSet<String>,
    /// Secret names.
    pub secrets: BTreeSet<String>,
}

fn volumes_of(pod: &Pod) -> &[Volume] {
    pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default()
}

/// The ConfigMaps and Secrets the pod's volumes name.
pub fn references(pod: &Pod) -> References {
    let mut refs = References::default();
    for v in volumes_of(pod) {
        if let Some(cm) = &v.config_map {
            refs.config_maps.insert(cm.name.clone());
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            refs.secrets.insert(s);
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &source.config_map {
                refs.config_maps.insert(cm.name.clone());
            }
            if let Some(s) = &source.secret {
                refs.secrets.insert(s.name.clone());
            }
        }
    }
    refs
}

/// True when some volume's content comes from the API or the pod's
/// metadata, so it must be refreshed on resync.
pub fn has_api_data(pod: &Pod) -> bool {
    volumes_of(pod)
        .iter()
        .any(|v| v.config_map.is_some() || v.secret.is_some() || v.downward_api.is_some() || v.projected.is_some())
}

/// The plans of every volume of `pod`, or the first volume that cannot be
/// set up (unsupported type, missing source, bad path or mode).
pub fn plan_volumes(pod: &Pod, sources: &Sources, root_dir: &Path) -> Result<Vec<VolumePlan>> {
    volumes_of(pod).iter().map(|v| plan_volume(pod, v, sources, root_dir)).collect()
}

fn size_limit(volume: &str, quantity: Option<&str>) -> Result<Option<u64>> {
    let Some(q) = quantity else { return Ok(None) };
    let bytes = bosun_resources::plain_value(q).map_err(|source| Error::Quantity { volume: volume.into(), source })?;
    Ok(u64::try_from(bytes).ok().filter(|b| *b > 0))
}

fn plan_volume(pod: &Pod, v: &Volume, sources: &Sources, root_dir: &Path) -> Result<VolumePlan> {
    let name = v.name.as_str();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let dir = |plugin| volume_dir(root_dir, uid, plugin, name);
    let plan = |path, read_only, setup| Ok(VolumePlan { name: name.to_string(), path, read_only, setup });
    let memory = Medium::Memory { size_bytes: None };
    if let Some(empty) = &v.empty_dir {
        let medium = match empty.medium.as_deref().unwrap_or_default() {
            "Memory" => {
                Medium::Memory { size_bytes: size_limit(name, empty.size_limit.as_ref().map(|q| q.0.as_str()))? }
            }
            "" => Medium::Disk,
            _ => {
                return Err(Error::Unsupported {
                    volume: name.into(),
                    kind: "emptyDir medium other than \"\" or Memory",
                })
            }
        };
        return plan(dir(super::PLUGIN_EMPTY_DIR), false, Setup::EmptyDir { medium });
    }
    if let Some(host) = &v.host_path {
        let check = HostPathType::parse(name, host.type_.as_deref())?;
        return plan(PathBuf::from(&host.path), false, Setup::HostPath { check });
    }
    if let Some(cm) = &v.config_map {
        let files = payload::keyed_files(KeyedSource {
            volume: name,
            kind: "configmap",
            name: &cm.name,
            data: sources.config_maps.get(&cm.name).map(payload::config_map_data),
            items: cm.items.as_deref().unwrap_or_default(),
            optional: cm.optional == Some(true),
            default_mode: payload::mode(name, cm.default_mode, DEFAULT_MODE)?,
        })?;
        return plan(dir(super::PLUGIN_CONFIG_MAP), true, Setup::Files { medium: Medium::Disk, files });
    }
    if let Some(secret) = &v.secret {
        let secret_name = secret.secret_name.clone().unwrap_or_default();
        let files = payload::keyed_files(KeyedSource {
            volume: name,
            kind: "secret",
            name: &secret_name,
            data: sources.secrets.get(&secret_name).map(payload::secret_data),
            items: secret.items.as_deref().unwrap_or_default(),
            optional: secret.optional == Some(true),
            default_mode: payload::mode(name, secret.default_mode, DEFAULT_MODE)?,
        })?;
        return plan(dir(super::PLUGIN_SECRET), true, Setup::Files { medium: memory, files });
    }
    if let Some(downward) = &v.downward_api {
        let default_mode = payload::mode(name, downward.default_mode, DEFAULT_MODE)?;
        let items = downward.items.as_deref().unwrap_or_default();
        let files = payload::downward_files(name, pod, items, default_mode, sources.node)?;
        return plan(dir(super::PLUGIN_DOWNWARD_API), true, Setup::Files { medium: memory, files });
    }
    if let Some(projected) = &v.projected {
        let files = projected_files(pod, name, projected, sources)?;
        return plan(dir(super::PLUGIN_PROJECTED), true, Setup::Files { medium: memory, files });
    }
    Err(unsupported(v))
}

fn projected_files(
    pod: &Pod,
    volume: &str,
    projected: &k8s_openapi::api::core::v1::ProjectedVolumeSource,
    sources: &Sources,
) -> Result<Vec<FileEntry>> {
    let default_mode = payload::mode(volume, projected.default_mode, DEFAULT_MODE)?;
    let mut files = Vec::new();
    for source in projected.sources.iter().flatten() {
        if let Some(cm) = &source.config_map {
            files.extend(payload::keyed_files(KeyedSource {
                volume,
                kind: "configmap",
                name: &cm.name,
                data: sources.config_maps.get(&cm.name).map(payload::config_map_data),
                items: cm.items.as_deref().unwrap_or_default(),
                optional: cm.optional == Some(true),
                default_mode,
            })?);
        }
        if let Some(secret) = &source.secret {
            files.extend(payload::keyed_files(KeyedSource {
                volume,
                kind: "secret",
                name: &secret.name,
                data: sources.secrets.get(&secret.name).map(payload::secret_data),
                items: secret.items.as_deref().unwrap_or_default(),
                optional: secret.optional == Some(true),
                default_mode,
            })?);
        }
        if let Some(downward) = &source.downward_api {
            let items = downward.items.as_deref().unwrap_or_default();
            files.extend(payload::downward_files(volume, pod, items, default_mode, sources.node)?);
        }
        if let Some(token) = &source.service_account_token {
            payload::check_path(volume, &token.path)?;
            let key = TokenKey {
                audience: token.audience.clone().unwrap_or_default(),
                expiration_seconds: token.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS),
            };
            let issued = sources
                .tokens
                .get(&key)
                .ok_or_else(|| Error::TokenMissing { volume: volume.into(), audience: key.audience.clone() })?;
            files.push(FileEntry { path: token.path.clone(), data: issued.as_bytes().to_vec(), mode: default_mode });
        }
        if source.cluster_trust_bundle.is_some() {
            return Err(Error::Unsupported { volume: volume.into(), kind: "projected clusterTrustBundle" });
        }
    }
    let mut seen = BTreeSet::new();
    for f in &files {
        if !seen.insert(f.path.as_str()) {
            return Err(Error::InvalidPath { volume: volume.into(), path: f.path.clone(), reason: "projected twice" });
        }
    }
    Ok(files)
}

/// The error for a volume whose type this node cannot mount.
fn unsupported(v: &Volume) -> Error {
    let kinds: &[(&'static str, bool)] = &[
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("nfs", v.nfs.is_some()),
        ("csi", v.csi.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("image", v.image.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("cinder", v.cinder.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("flocker", v.flocker.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("rbd", v.rbd.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageos", v.storageos.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
    ];
    match kinds.iter().find(|(_, set)| *set) {
        Some((kind, _)) => Error::Unsupported { volume: v.name.clone(), kind },
        None => Error::NoSource { volume: v.name.clone() },
    }
}
