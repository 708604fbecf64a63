//! Removing every pod directory of the agent's root when the node's pods
//! are all gone (`bosun up`'s shutdown, after it removed the runtime's pods):
//! tmpfs mounts of secret, downward-API, projected and memory emptyDir
//! volumes first, then the directories. Log directories are kept.
//! Blocking filesystem calls: run it on a blocking thread.

use std::collections::BTreeSet;
use std::path::Path;

use crate::volumes::{self, apply, Mounter};

/// Tears down every `<root>/pods/<uid>`; returns how many went, and the
/// failures (the others are still torn down).
pub fn remove_all(root_dir: &Path, mounter: &dyn Mounter) -> (usize, Vec<volumes::Error>) {
    let mut removed = 0;
    let mut failures = Vec::new();
    for uid in apply::orphaned_pod_dirs(root_dir, &BTreeSet::new()) {
        match apply::teardown_pod(root_dir, &uid, mounter) {
            Ok(()) => removed += 1,
            Err(error) => failures.push(error),
        }
    }
    (removed, failures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::FakeMounter;

    #[test]
    fn unmounts_then_removes_every_pod_dir_and_keeps_logs() {
        let root = tempfile::tempdir().expect("tempdir");
        let secret = volumes::volume_dir(root.path(), "uid-a", "kubernetes.io~secret", "token");
        let plain = volumes::volume_dir(root.path(), "uid-b", "kubernetes.io~empty-dir", "data");
        let logs = root.path().join("pods/default_web_uid-a");
        for dir in [&secret, &plain, &logs] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        let mounter = FakeMounter::default();
        mounter.mount_tmpfs(&secret, None).expect("fake mount");
        let (removed, failures) = remove_all(root.path(), &mounter);
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(removed, 2);
        assert!(mounter.mount_points_under(root.path()).expect("list").is_empty());
        assert!(!volumes::pod_dir(root.path(), "uid-a").exists());
        assert!(!volumes::pod_dir(root.path(), "uid-b").exists());
        assert!(logs.exists(), "log dirs stay");
    }
}
