//! The relays between kubectl's upgraded connection and the runtime's
//! streaming server: one pump per direction, run concurrently so neither
//! side's backpressure can stall the other. A relay ends when either side
//! closes, when nothing moved for the idle timeout, or at agent shutdown.
//!
//! Buffers are bounded: a pump holds one message (or one read of
//! [`READ_CHUNK`] bytes) at a time and awaits the write before reading more.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message as ClientMessage, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::spdy::frame::{self, Frame};
use super::spdy::session::ExecSession;
use super::spdy::streams::{client_to_runtime, runtime_to_client, FromRuntime};

/// Bytes read from the runtime's byte stream per WebSocket message.
pub const READ_CHUNK: usize = 32 * 1024;

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// kubectl closed its side.
    Client,
    /// The runtime closed its side (for exec: the command exited).
    Runtime,
    /// Nothing moved for the idle timeout.
    Idle,
    /// The agent is shutting down.
    Shutdown,
}

/// Time of the last traffic in either direction, shared by the pumps.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity { start: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once `limit` has passed since the last traffic.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = self.start + last.saturating_add(limit);
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A close frame with status 1000: kubectl reports a close without a status
/// (1005) as an error even after the exit status arrived.
fn normal_close() -> ClientMessage {
    ClientMessage::Close(Some(CloseFrame { code: close_code::NORMAL, reason: "".into() }))
}

/// Relays kubectl's channel-protocol WebSocket (v5 or v4) and the
/// runtime's SPDY exec/attach session: kubectl's stdin, stdin close and
/// resize messages become frames on the planned streams, the runtime's
/// stdout, stderr and error streams become channel messages (see
/// [`streams`](super::spdy::streams) for the mapping). Frames to the runtime go
/// through one writer, so PING answers and stdin never interleave mid-frame.
pub async fn channels<S>(client: WebSocket, runtime: ExecSession<S>, idle: Duration, token: CancellationToken) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let (mut client_tx, mut client_rx) = client.split();
    let ExecSession { mut reader, writer: mut runtime_tx, ids, early } = runtime;
    let (frames_tx, mut frames_rx) = tokio::sync::mpsc::channel::<Frame>(16);
    let writer = async {
        while let Some(frame) = frames_rx.recv().await {
            let Ok(bytes) = frame::encode(&frame) else { continue };
            if runtime_tx.write_all(&bytes).await.is_err() || runtime_tx.flush().await.is_err() {
                return;
            }
        }
    };
    let to_runtime = frames_tx.clone();
    let upstream = async {
        while let Some(Ok(msg)) = client_rx.next().await {
            activity.touch();
            match msg {
                ClientMessage::Binary(message) => {
                    if let Some(frame) = client_to_runtime(&message, &ids) {
                        if to_runtime.send(frame).await.is_err() {
                            break;
                        }
                    }
                }
                ClientMessage::Close(_) => break,
                _ => {}
            }
        }
    };
    let downstream = async {
        let mut early = early.into_iter();
        loop {
            let frame = match early.next() {
                Some(frame) => frame,
                None => match reader.next().await {
                    Ok(Some(frame)) => frame,
                    Ok(None) | Err(_) => break,
                },
            };
            activity.touch();
            match runtime_to_client(frame, &ids) {
                FromRuntime::Output(message) => {
                    if client_tx.send(ClientMessage::Binary(message.into())).await.is_err() {
                        return;
                    }
                }
                FromRuntime::Reply(frame) => {
                    if frames_tx.send(frame).await.is_err() {
                        break;
                    }
                }
                FromRuntime::End => break,
                FromRuntime::Ignore => {}
            }
        }
        let _ = client_tx.send(normal_close()).await;
    };
    tokio::select! {
        () = upstream => Ended::Client,
        () = downstream => Ended::Runtime,
        () = writer => Ended::Runtime,
        () = activity.idle_for(idle) => Ended::Idle,
        () = token.cancelled() => Ended::Shutdown,
    }
}

/// Relays kubectl's tunnelling WebSocket (binary messages carrying a byte
/// stream) and a byte stream to the runtime (an upgraded SPDY connection):
/// the SPDY session passes through untouched.
pub async fn tunnel<S>(client: WebSocket, runtime: S, idle: Duration, token: CancellationToken) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let (mut client_tx, mut client_rx) = client.split();
    let (mut runtime_rx, mut runtime_tx) = tokio::io::split(runtime);
    let upstream = async {
        while let Some(Ok(msg)) = client_rx.next().await {
            activity.touch();
            match msg {
                ClientMessage::Binary(bytes) => match runtime_tx.write_all(&bytes).await {
                    Ok(()) => {}
                    Err(_) => break,
                },
                ClientMessage::Close(_) => break,
                _ => {}
            }
        }
        let _ = runtime_tx.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match runtime_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    activity.touch();
                    let chunk = bytes::Bytes::copy_from_slice(&buf[..n]);
                    if client_tx.send(ClientMessage::Binary(chunk)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = client_tx.send(normal_close()).await;
    };
    tokio::select! {
        () = upstream => Ended::Client,
        () = downstream => Ended::Runtime,
        () = activity.idle_for(idle) => Ended::Idle,
        () = token.cancelled() => Ended::Shutdown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_deadline_moves_with_traffic() {
        let activity = Activity::new();
        let limit = Duration::from_secs(10);
        tokio::time::advance(Duration::from_secs(6)).await;
        activity.touch();
        let started = Instant::now();
        activity.idle_for(limit).await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }
}
