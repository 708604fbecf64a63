//! Makes volume plans true on disk (idempotent: a resync repeats it and only
//! changed file sets are rewritten), resolves mount requests into CRI mounts,
//! and removes a pod's volumes. Blocking filesystem calls: run it on a
//! blocking thread.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use bosun_proto::cri;

use super::mounts::MountRequest;
use super::plan::{HostPathType, Medium, Setup, VolumePlan};
use super::{atomic_writer, ownership, pod_dir, Error, Mounter, Result};

/// Sets up one volume; returns whether a file set changed. `stamp` names a
/// new payload version (see [`atomic_writer::write`]). With `fs_group`
/// (the pod's `fsGroup`) emptyDir and file-set volumes get that group
/// ([`ownership`]) when fresh, changed, or no longer owned.
pub fn setup(plan: &VolumePlan, mounter: &dyn Mounter, stamp: &str, fs_group: Option<u32>) -> Result<bool> {
    let path = plan.path.as_path();
    let needs_owner = |read_only: bool| -> Result<Option<u32>> {
        match fs_group {
            Some(group) => {
                let needed = ownership::needs_change(path, group, read_only).map_err(Error::io("stat", path))?;
                Ok(needed.then_some(group))
            }
            None => Ok(None),
        }
    };
    let own = |group: u32, read_only: bool| {
        ownership::set_ownership(path, group, read_only).map_err(Error::io("set fsGroup ownership of", path))
    };
    match &plan.setup {
        Setup::EmptyDir { medium } => {
            prepare_dir(path, *medium, mounter)?;
            let owner = needs_owner(false)?;
            if fs_group.is_none() || owner.is_some() {
                fs::set_permissions(path, fs::Permissions::from_mode(0o777)).map_err(Error::io("chmod", path))?;
            }
            if let Some(group) = owner {
                own(group, false)?;
            }
            Ok(false)
        }
        Setup::HostPath { check } => check_host_path(&plan.name, path, *check).map(|()| false),
        Setup::Files { medium, files } => {
            prepare_dir(path, *medium, mounter)?;
            let changed = atomic_writer::write(path, files, stamp).map_err(Error::io("write volume files in", path))?;
            let owner = if changed { fs_group } else { needs_owner(plan.read_only)? };
            if let Some(group) = owner {
                own(group, plan.read_only)?;
            }
            Ok(changed)
        }
    }
}

fn prepare_dir(path: &Path, medium: Medium, mounter: &dyn Mounter) -> Result<()> {
    fs::create_dir_all(path).map_err(Error::io("mkdir", path))?;
    if let Medium::Memory { size_bytes } = medium {
        let mounted = mounter.mount_points_under(path).map_err(Error::io("list mounts under", path))?;
        if !mounted.iter().any(|m| m == path) {
            mounter.mount_tmpfs(path, size_bytes).map_err(Error::io("mount tmpfs on", path))?;
        }
    }
    Ok(())
}

/// Upstream's hostPath type checks (following symlinks); the `*OrCreate`
/// types create what is missing.
pub fn check_host_path(volume: &str, path: &Path, check: HostPathType) -> Result<()> {
    let meta = fs::metadata(path).ok();
    let kind_err = |expected| Error::HostPathType { volume: volume.into(), path: path.display().to_string(), expected };
    let is = |test: fn(&fs::Metadata) -> bool| meta.as_ref().is_some_and(test);
    match check {
        HostPathType::Unchecked => Ok(()),
        HostPathType::DirectoryOrCreate if meta.is_none() => {
            fs::create_dir_all(path).map_err(Error::io("mkdir", path))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(Error::io("chmod", path))
        }
        HostPathType::DirectoryOrCreate | HostPathType::Directory => {
            if is(|m| m.is_dir()) {
                Ok(())
            } else {
                Err(kind_err("directory"))
            }
        }
        HostPathType::FileOrCreate if meta.is_none() => {
            let file =
                fs::OpenOptions::new().create(true).append(true).open(path).map_err(Error::io("create", path))?;
            file.set_permissions(fs::Permissions::from_mode(0o644)).map_err(Error::io("chmod", path))
        }
        HostPathType::FileOrCreate | HostPathType::File => {
            if is(|m| m.is_file()) {
                Ok(())
            } else {
                Err(kind_err("file"))
            }
        }
        HostPathType::Socket => {
            if is(|m| m.file_type().is_socket()) {
                Ok(())
            } else {
                Err(kind_err("socket"))
            }
        }
        HostPathType::CharDevice => {
            if is(|m| m.file_type().is_char_device()) {
                Ok(())
            } else {
                Err(kind_err("character device"))
            }
        }
        HostPathType::BlockDevice => {
            if is(|m| m.file_type().is_block_device()) {
                Ok(())
            } else {
                Err(kind_err("block device"))
            }
        }
    }
}

/// The CRI mount of a request. A subPath is created as a directory when
/// missing (as upstream does) and must resolve, symlinks followed, inside
/// its volume; the resolved path is mounted.
pub fn resolve(container: &str, request: &MountRequest) -> Result<cri::Mount> {
    let host_path = match &request.sub_path {
        None => request.volume_path.clone(),
        Some(sub) => {
            let joined = request.volume_path.join(sub);
            if fs::symlink_metadata(&joined).is_err() {
                fs::create_dir_all(&joined).map_err(Error::io("create subPath", &joined))?;
            }
            let base = fs::canonicalize(&request.volume_path).map_err(Error::io("resolve", &request.volume_path))?;
            let real = fs::canonicalize(&joined).map_err(Error::io("resolve subPath", &joined))?;
            if !real.starts_with(&base) {
                return Err(Error::SubPath {
                    container: container.into(),
                    path: sub.clone(),
                    reason: "resolves outside the volume",
                });
            }
            real
        }
    };
    Ok(cri::Mount {
        container_path: request.container_path.clone(),
        host_path: host_path.display().to_string(),
        readonly: request.read_only,
        propagation: request.propagation as i32,
        ..Default::default()
    })
}

/// Unmounts everything below `<root>/pods/<uid>` (deepest first) and removes
/// it. Refuses to remove anything while a mount remains, so a failed
/// unmount never deletes a tmpfs' content through the mount.
pub fn teardown_pod(root_dir: &Path, uid: &str, mounter: &dyn Mounter) -> Result<()> {
    let dir = pod_dir(root_dir, uid);
    if uid.is_empty() || fs::symlink_metadata(&dir).is_err() {
        return Ok(());
    }
    let mut mounts = mounter.mount_points_under(&dir).map_err(Error::io("list mounts under", &dir))?;
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in &mounts {
        mounter.unmount(m).map_err(Error::io("unmount", m))?;
    }
    let left = mounter.mount_points_under(&dir).map_err(Error::io("list mounts under", &dir))?;
    if let Some(m) = left.first() {
        return Err(Error::Io {
            action: "unmount",
            path: m.display().to_string(),
            source: std::io::Error::other("still mounted"),
        });
    }
    fs::remove_dir_all(&dir).map_err(Error::io("remove", &dir))
}

/// UIDs with a `<root>/pods/<uid>` dir (log dirs `<ns>_<name>_<uid>` are
/// not these) that are not in `live`.
pub fn orphaned_pod_dirs(root_dir: &Path, live: &BTreeSet<String>) -> Vec<String> {
    let Ok(entries) = fs::read_dir(root_dir.join("pods")) else { return Vec::new() };
    let mut out: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.contains('_') && !name.starts_with('.') && !live.contains(name))
        .collect();
    out.sort();
    out
}

/// The payload stamp for `now` (upstream's format, UTC).
pub fn stamp(now: jiff::Timestamp) -> String {
    now.strftime("%Y_%m_%d_%H_%M_%S.%f").to_string()
}
