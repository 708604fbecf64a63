//! Container log rotation (`containerLogMaxSize`, `containerLogMaxFiles`),
//! as upstream: a running container's log file over the size limit is
//! renamed to `<file>.<UTC timestamp>`, the runtime is asked to reopen it
//! (CRI `ReopenContainerLog`, which creates a new file at the path), and
//! only the newest `max_files - 1` rotated files are kept beside it.
//!
//! [`plan`] decides (pure, tested as data); [`rotate`] applies one plan
//! with the file system and the runtime.

use std::path::Path;

use crate::runtime::Runtime;

/// Rotation limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rotate once the file is larger than this many bytes.
    pub max_size: u64,
    /// Files kept per container, the current one included (at least 2).
    pub max_files: usize,
}

/// Upstream's defaults: 10 MiB and 5 files.
pub const DEFAULT_LIMITS: Limits = Limits { max_size: 10 << 20, max_files: 5 };

/// A size as `containerLogMaxSize` gives it: `10Mi`, `500Ki`, `1G`, `2048`.
pub fn parse_size(text: &str) -> Option<u64> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let factor: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(factor).filter(|n| *n > 0)
}

/// What to do with one container's log files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// New name of the current file (it is over the limit).
    pub rotate_to: Option<String>,
    /// Rotated files to delete, oldest first.
    pub delete: Vec<String>,
}

/// Decides for the file `current` (of `size` bytes) with the other names in
/// its directory `siblings`; `stamp` names a rotation made now.
pub fn plan(current: &str, size: u64, siblings: &[String], limits: Limits, stamp: &str) -> Plan {
    let prefix = format!("{current}.");
    let mut rotated: Vec<&String> = siblings.iter().filter(|n| n.starts_with(&prefix)).collect();
    // Timestamps of one format sort by time.
    rotated.sort();
    let rotate_to = (size > limits.max_size).then(|| format!("{current}.{stamp}"));
    let keep = limits.max_files.max(2) - 1 - usize::from(rotate_to.is_some());
    let excess = rotated.len().saturating_sub(keep);
    Plan { rotate_to, delete: rotated[..excess].iter().map(|n| n.to_string()).collect() }
}

/// Failures of applying a plan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("log file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("reopening the log of container {id}: {message}")]
    Reopen { id: String, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// Timestamp suffix of a rotated file, sortable: `20261202-175512.123456`.
pub fn stamp(now: jiff::Timestamp) -> String {
    now.strftime("%Y%m%d-%H%M%S.%6f").to_string()
}

/// Rotates the log at `path` of running container `id` if over `limits`.
pub async fn rotate(runtime: &dyn Runtime, id: &str, path: &Path, limits: Limits) -> Result<(), Error> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Ok(());
    };
    let size = match tokio::fs::metadata(path).await {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut siblings = Vec::new();
    let mut entries = tokio::fs::read_dir(dir).await.map_err(io(dir))?;
    while let Some(entry) = entries.next_entry().await.map_err(io(dir))? {
        siblings.extend(entry.file_name().to_str().map(str::to_string));
    }
    let plan = plan(name, size, &siblings, limits, &stamp(jiff::Timestamp::now()));
    for old in &plan.delete {
        let old = dir.join(old);
        tokio::fs::remove_file(&old).await.map_err(io(&old))?;
    }
    let Some(rotated) = plan.rotate_to else { return Ok(()) };
    let rotated = dir.join(rotated);
    tokio::fs::rename(path, &rotated).await.map_err(io(path))?;
    if let Err(e) = runtime.reopen_container_log(id).await {
        // Keep logging to one file: undo the rename (as upstream).
        let _ = tokio::fs::rename(&rotated, path).await;
        return Err(Error::Reopen { id: id.to_string(), message: e.to_string() });
    }
    Ok(())
}

/// Checks every running container's log every `every` until `token` is
/// cancelled; failures are logged and retried next round.
pub async fn run(
    runtime: std::sync::Arc<dyn Runtime>,
    limits: Limits,
    every: std::time::Duration,
    token: tokio_util::sync::CancellationToken,
) {
    let running = bosun_proto::cri::ContainerFilter {
        state: Some(bosun_proto::cri::ContainerStateValue {
            state: bosun_proto::cri::ContainerState::ContainerRunning as i32,
        }),
        ..Default::default()
    };
    loop {
        for container in runtime.list_containers(Some(running.clone())).await.unwrap_or_default() {
            let Ok(status) = runtime.container_status(&container.id).await else { continue };
            if status.log_path.is_empty() {
                continue;
            }
            if let Err(error) = rotate(runtime.as_ref(), &container.id, Path::new(&status.log_path), limits).await {
                tracing::warn!(%error, "log rotation");
            }
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plans_rotation_and_retention() {
        let limits = Limits { max_size: 100, max_files: 3 };
        let dir = names(&["0.log", "1.log", "1.log.20261202-100000.000000", "1.log.20261202-090000.000000"]);
        let cases = [
            // (file, size, plan)
            ("1.log", 100, Plan { rotate_to: None, delete: vec![] }),
            (
                "1.log",
                101,
                Plan { rotate_to: Some("1.log.NOW".into()), delete: names(&["1.log.20261202-090000.000000"]) },
            ),
            ("0.log", 500, Plan { rotate_to: Some("0.log.NOW".into()), delete: vec![] }),
        ];
        for (file, size, want) in cases {
            assert_eq!(plan(file, size, &dir, limits, "NOW"), want, "{file} {size}");
        }
    }

    #[test]
    fn lowered_max_files_deletes_without_rotating() {
        let dir = names(&["0.log", "0.log.a", "0.log.b", "0.log.c"]);
        let got = plan("0.log", 1, &dir, Limits { max_size: 100, max_files: 2 }, "NOW");
        assert_eq!(got, Plan { rotate_to: None, delete: names(&["0.log.a", "0.log.b"]) });
        // max_files below 2 is treated as 2: the current file and one rotated.
        let got = plan("0.log", 101, &dir, Limits { max_size: 100, max_files: 0 }, "d");
        assert_eq!(got.delete, names(&["0.log.a", "0.log.b", "0.log.c"]));
    }

    #[test]
    fn parses_sizes() {
        let cases = [
            ("10Mi", Some(10 << 20)),
            ("500Ki", Some(500 << 10)),
            ("1G", Some(1_000_000_000)),
            ("2048", Some(2048)),
            ("0", None),
            ("", None),
            ("Mi", None),
            ("10MB", None),
            ("-1", None),
            ("99999999999999999999Gi", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), want, "{text}");
        }
    }

    #[test]
    fn stamps_sort_by_time() {
        let a = stamp("2026-12-02T09:59:59.9Z".parse().expect("ts"));
        let b = stamp("2026-12-02T10:00:00Z".parse().expect("ts"));
        assert!(a < b, "{a} {b}");
    }
}
