//! Splicing two upgraded connections (the client's and the kubelet's) byte
//! for byte until both sides are done, nothing moved for an idle timeout,
//! or the server shuts down. An end of input on one side is passed on as a
//! half-close of the other, as `copy_bidirectional` does; the idle timeout
//! is what `copy_bidirectional` lacks (a silent peer would hold the
//! session, its task and two sockets forever).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Bytes moved per read.
const CHUNK: usize = 16 * 1024;

/// How a splice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spliced {
    /// Both directions reached their end (or failed).
    Done,
    /// Nothing moved in either direction for the idle timeout.
    Idle,
    /// The server is shutting down.
    Shutdown,
}

/// Milliseconds since `start` of the last traffic.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    async fn idle_for(&self, limit: Duration) {
        loop {
            let deadline =
                self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)).saturating_add(limit);
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

async fn pump<R, W>(mut from: R, mut to: W, activity: &Activity)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                activity.touch();
                if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Splices `a` and `b` (see the module docs).
pub async fn splice<A, B>(a: A, b: B, idle: Duration, token: CancellationToken) -> Spliced
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity { start: Instant::now(), last_ms: AtomicU64::new(0) };
    let (a_read, a_write) = tokio::io::split(a);
    let (b_read, b_write) = tokio::io::split(b);
    let both = async {
        tokio::join!(pump(a_read, b_write, &activity), pump(b_read, a_write, &activity));
    };
    tokio::select! {
        () = both => Spliced::Done,
        () = activity.idle_for(idle) => Spliced::Idle,
        () = token.cancelled() => Spliced::Shutdown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn bytes_pass_both_ways_and_a_half_close_is_passed_on() {
        let (client, a) = duplex(1024);
        let (b, kubelet) = duplex(1024);
        let token = CancellationToken::new();
        let session = tokio::spawn(splice(a, b, Duration::from_secs(60), token));
        let (mut client_r, mut client_w) = tokio::io::split(client);
        let (mut kubelet_r, mut kubelet_w) = tokio::io::split(kubelet);
        client_w.write_all(b"ping").await.expect("write");
        client_w.shutdown().await.expect("half-close");
        let mut got = Vec::new();
        kubelet_r.read_to_end(&mut got).await.expect("read to the client's end");
        assert_eq!(got, b"ping");
        kubelet_w.write_all(b"pong").await.expect("write back after the half-close");
        kubelet_w.shutdown().await.expect("kubelet half-closes too");
        let mut back = Vec::new();
        client_r.read_to_end(&mut back).await.expect("read");
        assert_eq!(back, b"pong");
        assert_eq!(session.await.expect("joins"), Spliced::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_session_ends_after_the_idle_timeout_and_traffic_moves_it() {
        let (mut client, a) = duplex(1024);
        let (b, _kubelet) = duplex(1024);
        let idle = Duration::from_secs(30);
        let started = Instant::now();
        let session = tokio::spawn(splice(a, b, idle, CancellationToken::new()));
        tokio::time::sleep(Duration::from_secs(20)).await;
        client.write_all(b"x").await.expect("write");
        assert_eq!(session.await.expect("joins"), Spliced::Idle);
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(50) && took < Duration::from_secs(51), "ended after {took:?}");
    }

    #[tokio::test]
    async fn shutdown_ends_the_session() {
        let (_client, a) = duplex(1024);
        let (b, _kubelet) = duplex(1024);
        let token = CancellationToken::new();
        token.cancel();
        assert_eq!(splice(a, b, Duration::from_secs(60), token).await, Spliced::Shutdown);
    }
}
