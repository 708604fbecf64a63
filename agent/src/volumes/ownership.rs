//! Volume ownership for `securityContext.fsGroup`, as upstream's
//! `SetVolumeOwnership`: every file and directory of the volume gets group
//! `fsGroup` (symlinks too, not followed), files gain group read (and write
//! unless the volume is read-only: configMap, secret, downwardAPI,
//! projected), directories also group search and setgid, so what containers
//! create later inherits the group. Upstream's emptyDir and API-data volume
//! plugins change ownership on every set-up regardless of
//! `fsGroupChangePolicy` (the policy is for persistent volumes), and so does
//! this node; hostPath volumes are never changed.
//!
//! Must not: decide when to run (the caller does, on set-up and after a
//! file set changed).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Group read and write.
const RW_MASK: u32 = 0o660;
/// Group read only.
const RO_MASK: u32 = 0o440;
/// Search on directories.
const EXEC_MASK: u32 = 0o110;
/// setgid on directories.
const SETGID: u32 = 0o2000;

/// The mode an entry gets: `mode` plus the group bits upstream adds.
pub fn owned_mode(mode: u32, is_dir: bool, read_only: bool) -> u32 {
    let mut mask = if read_only { RO_MASK } else { RW_MASK };
    if is_dir {
        mask |= EXEC_MASK | SETGID;
    }
    (mode & 0o7777) | mask
}

/// Whether the volume root at `path` lacks group `fs_group` or the bits
/// [`owned_mode`] adds (a fresh volume, or one reset by its set-up).
pub fn needs_change(path: &Path, fs_group: u32, read_only: bool) -> io::Result<bool> {
    let meta = fs::metadata(path)?;
    Ok(meta.gid() != fs_group || owned_mode(meta.mode(), meta.is_dir(), read_only) != meta.mode() & 0o7777)
}

/// Gives everything under `path` (itself included) group `fs_group` and
/// the group bits of [`owned_mode`].
pub fn set_ownership(path: &Path, fs_group: u32, read_only: bool) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    std::os::unix::fs::lchown(path, None, Some(fs_group))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = owned_mode(meta.mode(), meta.is_dir(), read_only);
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            set_ownership(&entry?.path(), fs_group, read_only)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_gain_group_bits_and_setgid_on_directories() {
        // (mode, dir, read-only, want)
        let cases = [
            (0o644, false, true, 0o644),
            (0o400, false, true, 0o440),
            (0o600, false, false, 0o660),
            (0o777, true, false, 0o2777),
            (0o755, true, true, 0o2755),
            (0o700, true, false, 0o2770),
        ];
        for (mode, dir, ro, want) in cases {
            assert_eq!(owned_mode(mode, dir, ro), want, "{mode:o} dir={dir} ro={ro}");
        }
    }

    #[test]
    fn a_tree_gets_the_group_and_the_root_then_needs_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("vol");
        fs::create_dir_all(root.join("sub")).expect("mkdir");
        fs::write(root.join("sub/f"), "x").expect("write");
        fs::set_permissions(root.join("sub/f"), fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::symlink("sub/f", root.join("link")).expect("symlink");
        let group = 4321;
        assert!(needs_change(&root, group, false).expect("stat"));
        set_ownership(&root, group, false).expect("ownership");
        assert!(!needs_change(&root, group, false).expect("stat"));
        let file = fs::metadata(root.join("sub/f")).expect("stat");
        assert_eq!((file.gid(), file.mode() & 0o7777), (group, 0o660));
        let sub = fs::metadata(root.join("sub")).expect("stat");
        assert_eq!((sub.gid(), sub.mode() & 0o2000), (group, 0o2000));
        assert_eq!(fs::symlink_metadata(root.join("link")).expect("lstat").gid(), group);
    }
}
