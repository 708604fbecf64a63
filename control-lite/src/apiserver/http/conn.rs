//! Connections: the accept loop with a connection limit, the TLS handshake
//! (bounded by the header timeout; the verified client certificate's user
//! goes into every request's extensions as a [`PeerCert`]), HTTP/1 and
//! HTTP/2 (header read timeout, streams per connection) and a guard that
//! closes a connection whose response writes stall (a client that stopped
//! reading).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::Server;
use crate::auth::authn::PeerCert;
use crate::auth::x509::user_of_cert;

/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves connections from `listener` until `token` is cancelled.
pub async fn serve(listener: TcpListener, server: Arc<Server>, token: CancellationToken) {
    let config = server.state.config.clone();
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(config.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.max_streams_per_connection)
        .keep_alive_interval(config.header_read_timeout);
    loop {
        let accepted = tokio::select! {
            _ = token.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(error) => {
                tracing::warn!(%error, "apiserver: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = config.max_connections, "apiserver: connection limit reached; closing");
            drop(stream);
            continue;
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "apiserver: set TCP_NODELAY");
        }
        let io = StallGuard::new(stream, config.write_stall_timeout);
        let (acceptor, builder, watcher) = (server.tls.clone(), builder.clone(), graceful.watcher());
        let server = server.clone();
        let first_request = config.header_read_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(first_request, acceptor.accept(io)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "apiserver: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "apiserver: no TLS handshake within the header timeout; closing");
                    return;
                }
            };
            let cert =
                tls.get_ref().1.peer_certificates().and_then(|chain| chain.first()).and_then(|c| user_of_cert(c));
            let peer_cert = PeerCert(cert);
            let started = Arc::new(AtomicBool::new(false));
            let service = {
                let started = started.clone();
                hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    started.store(true, Ordering::Relaxed);
                    let server = server.clone();
                    let mut req = req.map(Body::new);
                    req.extensions_mut().insert(peer_cert.clone());
                    async move { Ok::<_, Infallible>(super::handle(&server, req).await) }
                })
            };
            let conn = watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(tls), service).into_owned());
            tokio::pin!(conn);
            // hyper's header timeout starts once the protocol is known; a
            // client that sends nothing (or half an HTTP/2 preface) is closed here.
            let done = tokio::select! {
                done = &mut conn => Some(done),
                () = tokio::time::sleep(first_request) => None,
            };
            let done = match done {
                Some(done) => done,
                None if !started.load(Ordering::Relaxed) => {
                    tracing::debug!(%peer, "apiserver: no request within the header timeout; closing");
                    return;
                }
                None => conn.await,
            };
            if let Err(error) = done {
                tracing::debug!(%peer, %error, "apiserver: connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("apiserver: connections still open after the shutdown grace period");
    }
}

/// Fails writes (and flushes) that make no progress for `timeout`, so hyper
/// drops a connection whose peer stopped reading instead of holding it forever.
pub struct StallGuard<T> {
    inner: T,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> StallGuard<T> {
    /// Guards `inner`.
    pub fn new(inner: T, timeout: Duration) -> StallGuard<T> {
        StallGuard { inner, timeout, stalled: None }
    }

    /// After the inner write returned `Pending`: pending until the stall
    /// deadline (started now if not running), then an error.
    fn poll_stall<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let timeout = self.timeout;
        let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "response write stalled"))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<R>(&mut self, polled: Poll<io::Result<R>>, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_stall(cx),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(polled, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(polled, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progress(polled, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn stalled_writes_fail_after_the_timeout_and_progress_resets_it() {
        // A pipe whose reader never reads: writes fill it, then stall.
        let (client, _server) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(client, Duration::from_secs(5));
        guarded.write_all(&[0; 64]).await.expect("fits the pipe");
        let started = tokio::time::Instant::now();
        let err = guarded.write_all(&[0; 1]).await.expect_err("stalls");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
