//! inotify on the manifest directory, so a created, replaced or removed
//! manifest is noticed at once rather than at the next poll. The poll stays
//! as the safety net (a missing directory, a full inotify queue).
//!
//! Only events that mean a manifest is complete are used: a file closed
//! after writing, moved in or out, or deleted (a file being written is not
//! read half-way on IN_MODIFY).

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;

/// What one wait on the directory saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Manifests may have changed: re-read the directory.
    Manifests,
    /// The directory itself went away (the watch is gone; poll and re-watch).
    DirectoryGone,
}

struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// An inotify watch on one directory.
pub struct DirWatch {
    fd: AsyncFd<Fd>,
}

/// The events that mean "re-read the manifests".
fn manifest_events() -> AddWatchFlags {
    AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
}

/// Decides what a batch of event masks means (pure).
pub fn classify(masks: impl IntoIterator<Item = AddWatchFlags>) -> Option<Change> {
    let gone = AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_IGNORED;
    let mut seen = None;
    for mask in masks {
        if mask.intersects(gone) {
            return Some(Change::DirectoryGone);
        }
        if mask.intersects(manifest_events() | AddWatchFlags::IN_Q_OVERFLOW) {
            seen = Some(Change::Manifests);
        }
    }
    seen
}

impl DirWatch {
    /// Watches `dir` (fails when it does not exist).
    pub fn new(dir: &Path) -> std::io::Result<DirWatch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        inotify.add_watch(dir, manifest_events())?;
        // `AsyncFd::new` is deprecated for inner types that could close or
        // swap their fd while registered (tokio #8587); `Fd` owns the
        // inotify fd for the `AsyncFd`'s whole life and always returns it,
        // and the safe constructor keeps `unsafe` out of the workspace.
        #[allow(deprecated)]
        let fd = AsyncFd::new(Fd(inotify))?;
        Ok(DirWatch { fd })
    }

    /// Waits for the next change of the directory.
    pub async fn changed(&self) -> std::io::Result<Change> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.get_inner().0.read_events() {
                Ok(events) => {
                    if let Some(change) = classify(events.iter().map(|e| e.mask)) {
                        return Ok(change);
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_classified() {
        let cases = [
            (vec![AddWatchFlags::IN_CLOSE_WRITE], Some(Change::Manifests)),
            (vec![AddWatchFlags::IN_MOVED_TO, AddWatchFlags::IN_DELETE], Some(Change::Manifests)),
            (vec![AddWatchFlags::IN_Q_OVERFLOW], Some(Change::Manifests)),
            (vec![AddWatchFlags::IN_DELETE, AddWatchFlags::IN_DELETE_SELF], Some(Change::DirectoryGone)),
            (vec![AddWatchFlags::IN_IGNORED], Some(Change::DirectoryGone)),
            (vec![AddWatchFlags::IN_MODIFY], None),
            (vec![], None),
        ];
        for (masks, want) in cases {
            assert_eq!(classify(masks.clone()), want, "{masks:?}");
        }
    }
}
