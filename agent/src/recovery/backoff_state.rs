//! The saved backoffs of one pod: `<root>/pods/<uid>/backoff.json`.
//!
//! Written whole on every change (temp file, fsync, rename: a crash leaves
//! the old or the new file, never a torn one); a missing or unreadable file
//! means no backoff (the pod starts over, as before this file existed).
//! Blocking filesystem calls: run them on a blocking thread.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::backoff::{Backoff, SavedEntry};

/// File name under the pod directory.
pub const FILE: &str = "backoff.json";

/// A file larger than this is not ours (a pod has a few keys).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// A failed read or write of the state file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, writing or renaming failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was done.
        action: &'static str,
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The file is not a saved state.
    #[error("{path} is not a backoff state: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { action, path: path.display().to_string(), source }
}

/// The backoffs of one pod worker.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackoffState {
    /// Crash-loop backoff by `actions::crash_key`.
    #[serde(default)]
    pub crash: BTreeMap<String, SavedEntry>,
    /// Image pull backoff by image.
    #[serde(default)]
    pub pull: BTreeMap<String, SavedEntry>,
}

impl BackoffState {
    /// The state of a worker's two backoffs.
    pub fn of(crash: &Backoff, pull: &Backoff) -> Self {
        Self { crash: crash.snapshot(), pull: pull.snapshot() }
    }

    /// Puts the saved state back into a worker's backoffs.
    pub fn restore_into(&self, crash: &mut Backoff, pull: &mut Backoff) {
        crash.restore(&self.crash);
        pull.restore(&self.pull);
    }

    /// Whether there is nothing to save.
    pub fn is_empty(&self) -> bool {
        self.crash.is_empty() && self.pull.is_empty()
    }
}

/// `<root>/pods/<uid>/backoff.json`.
pub fn path(root_dir: &Path, uid: &str) -> PathBuf {
    crate::volumes::pod_dir(root_dir, uid).join(FILE)
}

/// The saved state at `path`; `None` when there is none.
pub fn load(path: &Path) -> Result<Option<BackoffState>, Error> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("open", path)(e)),
    };
    let size = file.metadata().map_err(io("stat", path))?.len();
    if size > MAX_FILE_BYTES {
        return Err(Error::Malformed { path: path.display().to_string(), reason: format!("{size} bytes") });
    }
    serde_json::from_reader(std::io::BufReader::new(file))
        .map(Some)
        .map_err(|e| Error::Malformed { path: path.display().to_string(), reason: e.to_string() })
}

/// Saves `state` at `path` atomically (an empty state removes the file).
/// The directory is created when missing.
pub fn save(path: &Path, state: &BackoffState) -> Result<(), Error> {
    if state.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", path)(e)),
            _ => Ok(()),
        };
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    let bytes = serde_json::to_vec(state)
        .map_err(|e| Error::Malformed { path: path.display().to_string(), reason: e.to_string() })?;
    let temp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temp).map_err(io("create", &temp))?;
    file.write_all(&bytes).map_err(io("write", &temp))?;
    file.sync_all().map_err(io("sync", &temp))?;
    std::fs::rename(&temp, path).map_err(io("rename", &temp))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::Timestamp;

    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("valid")
    }

    #[test]
    fn saved_backoffs_come_back_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path(), "uid-1");
        let (mut crash, mut pull) = (Backoff::crash_loop(), Backoff::image_pull());
        crash.record("uid-1/app", t(0));
        crash.record("uid-1/app", t(15));
        pull.record("registry/img:1", t(3));
        save(&file, &BackoffState::of(&crash, &pull)).expect("save");
        assert!(!file.with_extension("json.tmp").exists(), "temp file renamed away");

        let (mut crash2, mut pull2) = (Backoff::crash_loop(), Backoff::image_pull());
        load(&file).expect("load").expect("saved").restore_into(&mut crash2, &mut pull2);
        assert_eq!(crash2.delay("uid-1/app"), Some(Duration::from_secs(20)));
        assert_eq!(crash2.remaining_since("uid-1/app", t(16), t(26)), Some(Duration::from_secs(10)));
        assert_eq!(pull2.remaining("registry/img:1", t(8)), Some(Duration::from_secs(5)));
    }

    #[test]
    fn missing_empty_and_malformed_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path(), "uid-2");
        assert_eq!(load(&file).expect("missing is fine"), None);
        let mut crash = Backoff::crash_loop();
        crash.record("k", t(0));
        save(&file, &BackoffState::of(&crash, &Backoff::image_pull())).expect("save");
        assert!(file.exists());
        save(&file, &BackoffState::default()).expect("empty state");
        assert!(!file.exists(), "an empty state removes the file");
        std::fs::write(&file, b"{not json").expect("write");
        assert!(matches!(load(&file), Err(Error::Malformed { .. })));
        std::fs::write(&file, br#"{"crash":{"k":{"delayMs":20000,"lastUpdateMs":1700000000000}}}"#).expect("write");
        let state = load(&file).expect("load").expect("state");
        assert_eq!(state.crash.len(), 1);
        assert!(state.pull.is_empty(), "a missing section is empty");
    }
}
