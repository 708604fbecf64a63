//! `terminationMessagePath` and `terminationMessagePolicy`, as the kubelet
//! does them: the agent creates one empty file per container attempt under
//! the pod's directory on the host, bind-mounts it at the path (default
//! `/dev/termination-log`), and records path and policy as CRI annotations.
//! After the container exits, the file's last [`MAX_FILE_BYTES`] become
//! `state.terminated.message`; with `FallbackToLogsOnError`, a failed
//! container with an empty file gets its last [`FALLBACK_LOG_LINES`] log
//! lines (at most the last [`FALLBACK_LOG_BYTES`]) instead.
//!
//! Everything needed to read the message comes from the CRI container (its
//! annotations and mounts), so it survives an agent restart. The shaping is
//! pure ([`shape`]); [`read`] does the bounded file I/O.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use bosun_proto::cri as api;
use k8s_openapi::api::core::v1::Container;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::observed::{ObservedContainer, RunState};

/// The default `terminationMessagePath`.
pub const DEFAULT_PATH: &str = "/dev/termination-log";
/// Annotation holding the container's termination message path.
pub const PATH_ANNOTATION: &str = "io.kubernetes.container.terminationMessagePath";
/// Annotation holding the container's termination message policy.
pub const POLICY_ANNOTATION: &str = "io.kubernetes.container.terminationMessagePolicy";
/// Most bytes taken from the file (upstream's `MaxContainerTerminationMessageLength`).
pub const MAX_FILE_BYTES: u64 = 4096;
/// Log lines taken on fallback (upstream's `MaxContainerTerminationMessageLogLines`).
pub const FALLBACK_LOG_LINES: usize = 80;
/// Most bytes taken from the log on fallback (upstream's `MaxContainerTerminationMessageLogLength`).
pub const FALLBACK_LOG_BYTES: usize = 2048;
/// How much of the log's end is read to find the fallback lines.
const LOG_TAIL_READ: u64 = 64 * 1024;

/// `terminationMessagePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Only the file.
    File,
    /// The log tail when the file is empty and the container failed.
    FallbackToLogsOnError,
}

impl Policy {
    /// The policy of `container` (default File).
    pub fn of(container: &Container) -> Self {
        Self::parse(container.termination_message_policy.as_deref().unwrap_or_default())
    }

    fn parse(text: &str) -> Self {
        match text {
            "FallbackToLogsOnError" => Self::FallbackToLogsOnError,
            _ => Self::File,
        }
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "File",
            Self::FallbackToLogsOnError => "FallbackToLogsOnError",
        }
    }
}

/// The path in the container (`None` when set to empty: no file).
pub fn container_path(container: &Container) -> Option<String> {
    match container.termination_message_path.as_deref() {
        None => Some(DEFAULT_PATH.to_string()),
        Some("") => None,
        Some(path) => Some(path.to_string()),
    }
}

/// The host file of one container attempt, below the pod's directory.
pub fn host_path(pod_dir: &Path, container: &str, attempt: u32) -> PathBuf {
    pod_dir.join(container).join(format!("{attempt}.termination-log"))
}

/// The bind mount and annotations that give `container` its file at `host`.
pub fn wiring(container: &Container, host: &Path) -> Option<(api::Mount, HashMap<String, String>)> {
    let path = container_path(container)?;
    let mount = api::Mount {
        container_path: path.clone(),
        host_path: host.display().to_string(),
        readonly: false,
        ..Default::default()
    };
    let annotations = HashMap::from([
        (PATH_ANNOTATION.to_string(), path),
        (POLICY_ANNOTATION.to_string(), Policy::of(container).as_str().to_string()),
    ]);
    Some((mount, annotations))
}

/// Creates the empty, world-writable file (any container user may write it).
pub async fn create(host: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = host.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    tokio::fs::write(host, b"").await?;
    tokio::fs::set_permissions(host, std::fs::Permissions::from_mode(0o666)).await
}

/// Where an observed container's message comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The host file mounted at the annotated path.
    pub file: String,
    /// The annotated policy.
    pub policy: Policy,
}

/// The message source of a CRI container, from its annotations and mounts.
pub fn source(annotations: &HashMap<String, String>, mounts: &[api::Mount]) -> Option<Source> {
    let path = annotations.get(PATH_ANNOTATION)?;
    let mount = mounts.iter().find(|m| &m.container_path == path)?;
    let policy = Policy::parse(annotations.get(POLICY_ANNOTATION).map(String::as_str).unwrap_or_default());
    Some(Source { file: mount.host_path.clone(), policy })
}

fn tail_str(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The message from the file's bytes and (on fallback) the log's tail
/// bytes (raw CRI log lines, possibly starting mid-line).
pub fn shape(policy: Policy, exit_code: i32, file: &[u8], log_tail: Option<&[u8]>) -> Option<String> {
    let from_file = String::from_utf8_lossy(file);
    if !from_file.is_empty() {
        return Some(tail_str(&from_file, MAX_FILE_BYTES as usize).to_string());
    }
    if policy != Policy::FallbackToLogsOnError || exit_code == 0 {
        return None;
    }
    let tail = log_tail?;
    // Skip a first line that the read may have cut.
    let start = tail.iter().position(|b| *b == b'\n').map_or(0, |p| p + 1);
    let entries = crate::logs::parse_entries(tail.get(start..).unwrap_or_default());
    let lines: Vec<&str> = entries.iter().map(|e| e.content.as_str()).collect();
    let lines = &lines[lines.len().saturating_sub(FALLBACK_LOG_LINES)..];
    let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    (!text.is_empty()).then(|| tail_str(&text, FALLBACK_LOG_BYTES).to_string())
}

/// The last `max` bytes of a file, and whether anything before was cut.
async fn read_tail(path: &str, max: u64) -> std::io::Result<(Vec<u8>, bool)> {
    let mut file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    let from = len.saturating_sub(max);
    file.seek(SeekFrom::Start(from)).await?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes).await?;
    Ok((bytes, from > 0))
}

/// Reads the message of exited container `c` (None when it has none).
pub async fn read(c: &ObservedContainer) -> Option<String> {
    let source = c.termination.as_ref().filter(|_| c.state == RunState::Exited)?;
    let file = read_tail(&source.file, MAX_FILE_BYTES).await.map(|(bytes, _)| bytes).unwrap_or_default();
    let wants_logs = file.is_empty() && source.policy == Policy::FallbackToLogsOnError && c.exit_code != 0;
    let log = match wants_logs {
        true => read_tail(&c.log_path, LOG_TAIL_READ).await.ok().map(|(mut bytes, cut)| {
            if !cut {
                // Nothing was cut: keep the first line (shape skips one).
                bytes.insert(0, b'\n');
            }
            bytes
        }),
        false => None,
    };
    shape(source.policy, c.exit_code, &file, log.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: std::ops::Range<usize>) -> Vec<u8> {
        let mut out = b"\n".to_vec();
        for i in lines {
            out.extend(format!("2026-01-01T00:00:00.000000000Z stdout F line {i}\n").bytes());
        }
        out
    }

    #[test]
    fn file_wins_and_is_bounded_to_its_last_bytes() {
        assert_eq!(shape(Policy::File, 1, b"bye", None).as_deref(), Some("bye"));
        let big = vec![b'x'; 5000];
        let got = shape(Policy::FallbackToLogsOnError, 1, &big, Some(&log(0..3))).expect("message");
        assert_eq!(got.len(), 4096);
    }

    #[test]
    fn fallback_takes_the_log_tail_only_for_failed_containers() {
        assert_eq!(shape(Policy::File, 1, b"", Some(&log(0..3))), None);
        assert_eq!(shape(Policy::FallbackToLogsOnError, 0, b"", Some(&log(0..3))), None);
        let got = shape(Policy::FallbackToLogsOnError, 2, b"", Some(&log(0..3)));
        assert_eq!(got.as_deref(), Some("line 0\nline 1\nline 2\n"));
        let got = shape(Policy::FallbackToLogsOnError, 2, b"", Some(&log(0..200))).expect("message");
        assert!(got.starts_with("line 120\n") && got.ends_with("line 199\n"), "{got}");
        assert!(got.len() <= FALLBACK_LOG_BYTES);
    }

    #[test]
    fn source_comes_from_annotations_and_mounts() {
        let c = Container { name: "app".into(), ..Default::default() };
        let (mount, annotations) = wiring(&c, Path::new("/pods/p/app/0.termination-log")).expect("wired");
        assert_eq!(mount.container_path, DEFAULT_PATH);
        let got = source(&annotations, &[mount]).expect("source");
        assert_eq!(got, Source { file: "/pods/p/app/0.termination-log".into(), policy: Policy::File });
        let none = Container { termination_message_path: Some(String::new()), ..c };
        assert!(wiring(&none, Path::new("/x")).is_none());
    }
}
