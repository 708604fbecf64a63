//! Streams one container attempt's CRI log file to a client: seeks to the
//! tail with [`crate::log_tail`] (reading backwards in bounded chunks),
//! reads forward in chunks applying `sinceTime`/`timestamps`/`limitBytes`,
//! and with `follow` keeps reading until the container exits or the client
//! goes away — across rotations: when the path names a new file (the agent
//! renamed the old one and the runtime reopened), the rest of the old file
//! is read and the new one followed from its start.
//!
//! Must not: write files or change containers.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, SeekFrom};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::labels;
use crate::log_tail::{complete_end, TailFinder};
use crate::logs::{self, Assembler, LineSplitter, LogOptions};
use crate::runtime::Runtime;

/// Bytes read per step, backwards and forwards.
const CHUNK: usize = 64 * 1024;

/// What a stream reads, and where to send it.
pub struct LogReader {
    /// The runtime, to see whether a followed container still runs.
    pub runtime: Arc<dyn Runtime>,
    /// Pod uid and container name of the attempt.
    pub uid: String,
    pub container: String,
    pub attempt: u32,
    /// The attempt's log path (`<dir>/<attempt>.log`).
    pub path: PathBuf,
    pub options: LogOptions,
    /// Keep reading after the end until the container exits.
    pub follow: bool,
    pub poll: Duration,
    pub token: CancellationToken,
}

type Sink = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// Offset where the last `wanted` entries of `file` (of `len` bytes) start.
pub async fn tail_offset(file: &mut File, len: u64, wanted: usize) -> std::io::Result<u64> {
    let mut finder = TailFinder::new(wanted);
    let mut pos = len;
    let mut first = true;
    loop {
        let start = pos.saturating_sub(CHUNK as u64);
        let mut chunk = vec![0; usize::try_from(pos - start).unwrap_or(CHUNK)];
        file.seek(SeekFrom::Start(start)).await?;
        file.read_exact(&mut chunk).await?;
        if first {
            // Scan only complete lines: cut an unfinished last line.
            first = false;
            let cut = complete_end(&chunk);
            if cut == 0 && start > 0 {
                pos = start;
                first = true;
                continue;
            }
            chunk.truncate(cut);
        }
        if let Some(found) = finder.feed(&chunk, start) {
            return Ok(found);
        }
        pos = start;
    }
}

/// Turns bytes into what the client sees, within the byte budget.
struct Renderer {
    splitter: LineSplitter,
    assembler: Assembler,
    options: LogOptions,
    budget: usize,
}

impl Renderer {
    fn render(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in self.splitter.push(bytes) {
            let Ok(Some(entry)) = self.assembler.push(&line) else { continue };
            if self.options.since.is_some_and(|since| entry.time < since) {
                continue;
            }
            out.extend_from_slice(logs::format_entry(&entry, self.options.timestamps).as_bytes());
            if out.len() >= self.budget {
                break;
            }
        }
        out.truncate(self.budget);
        self.budget -= out.len();
        out
    }
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.ino() == b.ino() && a.dev() == b.dev()
}

impl LogReader {
    /// True while the followed container attempt is running (or unknown).
    async fn running(&self) -> bool {
        let filter = bosun_proto::cri::ContainerFilter {
            label_selector: std::collections::HashMap::from([
                (labels::POD_UID.to_string(), self.uid.clone()),
                (labels::CONTAINER_NAME.to_string(), self.container.clone()),
            ]),
            ..Default::default()
        };
        match self.runtime.list_containers(Some(filter)).await {
            Ok(list) => list.iter().any(|c| {
                c.metadata.as_ref().map(|m| m.attempt) == Some(self.attempt)
                    && c.state != bosun_proto::cri::ContainerState::ContainerExited as i32
            }),
            Err(_) => true,
        }
    }

    /// Streams into `tx`; errors go to the client as a cut body.
    pub async fn run(self, tx: Sink) {
        if let Err(e) = self.stream(&tx).await {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn stream(&self, tx: &Sink) -> std::io::Result<()> {
        let mut file = File::open(&self.path).await?;
        let mut meta = file.metadata().await?;
        let start = match self.options.tail_lines {
            Some(n) => tail_offset(&mut file, meta.len(), n).await?,
            None => 0,
        };
        file.seek(SeekFrom::Start(start)).await?;
        let mut renderer = Renderer {
            splitter: LineSplitter::default(),
            assembler: Assembler::default(),
            options: self.options.clone(),
            budget: self.options.limit_bytes.unwrap_or(usize::MAX),
        };
        let mut chunk = vec![0; CHUNK];
        let mut exited_seen = false;
        let mut checks: u32 = 0;
        loop {
            let read = file.read(&mut chunk).await?;
            if read > 0 {
                let out = renderer.render(&chunk[..read]);
                if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                    return Ok(());
                }
                if renderer.budget == 0 {
                    return Ok(());
                }
                continue;
            }
            if !self.follow || exited_seen {
                return Ok(());
            }
            // At the end: a new file at the path means a rotation happened
            // (the old one was read to its end just now).
            if let Ok(current) = tokio::fs::metadata(&self.path).await {
                if !same_file(&current, &meta) {
                    // Bytes written just before the runtime switched files.
                    let mut rest = Vec::new();
                    file.read_to_end(&mut rest).await?;
                    let out = renderer.render(&rest);
                    if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                        return Ok(());
                    }
                    file = File::open(&self.path).await?;
                    meta = file.metadata().await?;
                    continue;
                }
            }
            checks = checks.wrapping_add(1);
            if checks.is_multiple_of(5) && !self.running().await {
                // One more read picks up what was written before the exit.
                exited_seen = true;
                continue;
            }
            tokio::select! {
                () = self.token.cancelled() => return Ok(()),
                () = tx.closed() => return Ok(()),
                () = tokio::time::sleep(self.poll) => {}
            }
        }
    }
}
