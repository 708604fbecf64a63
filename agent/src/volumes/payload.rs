//! The files of API-data volumes (configMap, secret, downwardAPI and the
//! sources of projected volumes), computed from the pod and the objects it
//! names. Pure; the [`super::atomic_writer`] puts them on disk.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, ResourceFieldSelector, Secret};

use super::{Error, Result};

/// The mode of files when neither `defaultMode` nor an item `mode` says.
pub const DEFAULT_MODE: u32 = 0o644;

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the volume (`a`, `dir/b`).
    pub path: String,
    /// Content.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// The node's allocatable resources: what `resourceFieldRef` reports for a
/// limit the container does not set.
pub use crate::node::NodeAllocatable;

/// Checks a user-given mode (0..=0777).
pub fn mode(volume: &str, given: Option<i32>, default: u32) -> Result<u32> {
    match given {
        None => Ok(default),
        Some(m) if (0..=0o777).contains(&m) => Ok(m as u32),
        Some(m) => Err(Error::InvalidMode { volume: volume.to_string(), mode: m }),
    }
}

/// Checks a file path inside a volume as upstream does: relative, no `..`
/// element, not starting with `..` (reserved for the writer's own names).
pub fn check_path(volume: &str, path: &str) -> Result<()> {
    let bad = |reason| Err(Error::InvalidPath { volume: volume.to_string(), path: path.to_string(), reason });
    if path.is_empty() {
        return bad("must not be empty");
    }
    if path.starts_with('/') {
        return bad("must be relative");
    }
    if path.starts_with("..") {
        return bad("must not start with '..'");
    }
    if path.split('/').any(|p| p == ".." || p.is_empty()) {
        return bad("must not contain '..' or empty elements");
    }
    Ok(())
}

/// The data of a ConfigMap (`data` and `binaryData`) as bytes by key.
pub fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> =
        cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
    out.extend(cm.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())));
    out
}

/// The data of a Secret (`data`, and `stringData` if a server left it) by key.
pub fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> =
        secret.string_data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
    out.extend(secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())));
    out
}

/// A keyed source (ConfigMap or Secret) as the volume sees it.
pub struct KeyedSource<'a> {
    /// The volume.
    pub volume: &'a str,
    /// `configmap` or `secret`.
    pub kind: &'static str,
    /// Object name.
    pub name: &'a str,
    /// The object's data, `None` if the object does not exist.
    pub data: Option<BTreeMap<String, Vec<u8>>>,
    /// `items` (empty: every key under its own name).
    pub items: &'a [KeyToPath],
    /// `optional`.
    pub optional: bool,
    /// The mode of files without their own.
    pub default_mode: u32,
}

/// The files of a ConfigMap/Secret source: every key, or just `items`.
/// A missing object is an error unless optional (then: no files); a missing
/// item key is an error unless optional.
pub fn keyed_files(source: KeyedSource<'_>) -> Result<Vec<FileEntry>> {
    let KeyedSource { volume, kind, name, data, items, optional, default_mode } = source;
    let Some(data) = data else {
        return if optional {
            Ok(Vec::new())
        } else {
            Err(Error::SourceMissing { volume: volume.into(), kind, name: name.into() })
        };
    };
    if items.is_empty() {
        return data
            .into_iter()
            .map(|(path, data)| {
                check_path(volume, &path)?;
                Ok(FileEntry { path, data, mode: default_mode })
            })
            .collect();
    }
    let mut files = Vec::with_capacity(items.len());
    for item in items {
        let Some(value) = data.get(&item.key) else {
            if optional {
                continue;
            }
            return Err(Error::KeyMissing { volume: volume.into(), kind, name: name.into(), key: item.key.clone() });
        };
        check_path(volume, &item.path)?;
        files.push(FileEntry {
            path: item.path.clone(),
            data: value.clone(),
            mode: mode(volume, item.mode, default_mode)?,
        });
    }
    Ok(files)
}

/// Upstream's map format: `key="value"` lines sorted by key, values quoted
/// with Go-style escapes, no trailing newline.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    let lines: Vec<String> = map.into_iter().flatten().map(|(k, v)| format!("{k}={}", quote(v))).collect();
    lines.join("\n")
}

fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The files of a downwardAPI source.
pub fn downward_files(
    volume: &str,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    node: NodeAllocatable,
) -> Result<Vec<FileEntry>> {
    let mut files = Vec::with_capacity(items.len());
    for item in items {
        check_path(volume, &item.path)?;
        let text = match (&item.field_ref, &item.resource_field_ref) {
            (Some(field), _) => field_text(volume, pod, &field.field_path)?,
            (None, Some(resource)) => resource_text(volume, pod, resource, node)?,
            (None, None) => String::new(),
        };
        files.push(FileEntry {
            path: item.path.clone(),
            data: text.into_bytes(),
            mode: mode(volume, item.mode, default_mode)?,
        });
    }
    Ok(files)
}

fn field_text(volume: &str, pod: &Pod, path: &str) -> Result<String> {
    let meta = &pod.metadata;
    let key_of = |prefix: &str| path.strip_prefix(prefix).and_then(|k| k.strip_suffix("']")).map(str::to_string);
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        _ => {
            if let Some(key) = key_of("metadata.labels['") {
                meta.labels.as_ref().and_then(|m| m.get(&key)).cloned().unwrap_or_default()
            } else if let Some(key) = key_of("metadata.annotations['") {
                meta.annotations.as_ref().and_then(|m| m.get(&key)).cloned().unwrap_or_default()
            } else {
                return Err(Error::UnsupportedField { volume: volume.into(), field: path.into() });
            }
        }
    })
}

/// `ceil(value / divisor)` of a container's request or limit; an unset limit
/// reads as the node's allocatable (upstream's rule), an unset request as 0
/// (cpu requests default to the limit, as the API server does).
fn resource_text(volume: &str, pod: &Pod, field: &ResourceFieldSelector, node: NodeAllocatable) -> Result<String> {
    let unsupported = || Error::UnsupportedField { volume: volume.into(), field: field.resource.clone() };
    let quantity_err = |source| Error::Quantity { volume: volume.into(), source };
    let container_name = field.container_name.as_deref().unwrap_or_default();
    let container = pod.spec.iter().flat_map(|s| s.containers.iter()).find(|c| c.name == container_name);
    let resources = container.and_then(|c| c.resources.as_ref());
    let (kind, resource) = field.resource.split_once('.').ok_or_else(unsupported)?;
    let get = |which: &str| {
        let map = match which {
            "limits" => resources.and_then(|r| r.limits.as_ref()),
            _ => resources.and_then(|r| r.requests.as_ref()),
        };
        map.and_then(|m| m.get(resource)).map(|q| q.0.clone())
    };
    let quantity = match kind {
        "limits" => get("limits"),
        "requests" => get("requests").or_else(|| if resource == "cpu" { get("limits") } else { None }),
        _ => return Err(unsupported()),
    };
    let divisor = field.divisor.as_ref().map(|q| q.0.clone()).unwrap_or_else(|| "1".to_string());
    let (value, divisor) = match resource {
        "cpu" => {
            let value = match quantity {
                Some(q) => bosun_resources::milli_value(&q).map_err(quantity_err)?,
                None if kind == "limits" => node.cpu_millis,
                None => 0,
            };
            (value, bosun_resources::milli_value(&divisor).map_err(quantity_err)?)
        }
        "memory" | "ephemeral-storage" => {
            let value = match quantity {
                Some(q) => bosun_resources::plain_value(&q).map_err(quantity_err)?,
                None if kind == "limits" && resource == "memory" => node.memory_bytes,
                None => 0,
            };
            (value, bosun_resources::plain_value(&divisor).map_err(quantity_err)?)
        }
        _ => return Err(unsupported()),
    };
    if divisor <= 0 {
        return Err(Error::UnsupportedField { volume: volume.into(), field: format!("divisor {divisor}") });
    }
    let value = value.max(0);
    let quotient = value / divisor + i64::from(value % divisor != 0);
    Ok(quotient.to_string())
}
