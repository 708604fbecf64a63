//! A container's `volumeMounts` as mount requests: which volume path goes
//! where, read-only or not, with which propagation, and the subPath to
//! resolve (subPathExpr expanded against the container's env). Pure.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bosun_proto::cri::MountPropagation;
use k8s_openapi::api::core::v1::Container;

use super::plan::VolumePlan;
use super::{Error, Result};

/// One mount of a container, before its subPath is resolved on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    /// The volume's path on the node.
    pub volume_path: PathBuf,
    /// A checked relative subPath inside the volume.
    pub sub_path: Option<String>,
    /// Where the container sees it.
    pub container_path: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// CRI propagation.
    pub propagation: MountPropagation,
}

/// Parses `mountPropagation` (unset: `None`, i.e. private).
pub fn propagation(container: &str, mode: Option<&str>) -> Result<MountPropagation> {
    Ok(match mode.unwrap_or("None") {
        "None" => MountPropagation::PropagationPrivate,
        "HostToContainer" => MountPropagation::PropagationHostToContainer,
        "Bidirectional" => MountPropagation::PropagationBidirectional,
        other => return Err(Error::Propagation { container: container.into(), mode: other.into() }),
    })
}

/// Checks a subPath: relative, no `..` element.
pub fn check_sub_path(container: &str, path: &str) -> Result<()> {
    let bad = |reason| Err(Error::SubPath { container: container.into(), path: path.into(), reason });
    if path.starts_with('/') {
        return bad("must be a relative path");
    }
    if path.split('/').any(|p| p == "..") {
        return bad("must not contain '..'");
    }
    Ok(())
}

/// The mounts of `container` over the pod's planned volumes; `env` is the
/// container's resolved environment (for subPathExpr).
pub fn mount_requests(
    container: &Container,
    volumes: &[VolumePlan],
    env: &BTreeMap<&str, &str>,
) -> Result<Vec<MountRequest>> {
    let name = container.name.as_str();
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let volume = volumes
            .iter()
            .find(|v| v.name == m.name)
            .ok_or_else(|| Error::NoSuchVolume { container: name.into(), volume: m.name.clone() })?;
        let sub_path = match (m.sub_path.as_deref(), m.sub_path_expr.as_deref()) {
            (Some(p), Some(e)) if !p.is_empty() && !e.is_empty() => {
                return Err(Error::SubPath {
                    container: name.into(),
                    path: p.into(),
                    reason: "subPath and subPathExpr are mutually exclusive",
                })
            }
            (Some(p), _) if !p.is_empty() => Some(p.to_string()),
            (_, Some(e)) if !e.is_empty() => Some(crate::runtime_spec::expand(e, env)),
            _ => None,
        };
        if let Some(p) = &sub_path {
            check_sub_path(name, p)?;
        }
        let sub_path = sub_path.map(|p| p.trim_end_matches('/').to_string()).filter(|p| !p.is_empty() && p != ".");
        out.push(MountRequest {
            volume_path: volume.path.clone(),
            sub_path,
            container_path: m.mount_path.clone(),
            read_only: m.read_only == Some(true) || volume.read_only,
            propagation: propagation(name, m.mount_propagation.as_deref())?,
        });
    }
    Ok(out)
}
