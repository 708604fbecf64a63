//! Dialling the runtime's unix socket.
//!
//! Owns: [`ClientOptions`] and building the one tonic `Channel` a `CriClient`
//! shares. The channel is built with a connector that dials the socket path
//! again whenever the previous connection died, so a restarted runtime is
//! picked up by the next call without rebuilding the client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Deadlines for talking to the runtime.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Deadline for dialling the socket (each (re)connection).
    pub connect_timeout: Duration,
    /// Deadline for every call except image pulls.
    pub call_timeout: Duration,
    /// Deadline for `PullImage`.
    pub pull_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(120),
            pull_timeout: Duration::from_secs(600),
        }
    }
}

/// Largest message accepted from the runtime. `ExecSync` may return up to
/// 16 MiB each of stdout and stderr; list calls on a busy node are large too.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Connects to `socket` now (so a dead runtime is reported at once) and
/// returns a channel that reconnects on its own later.
pub(crate) async fn open_channel(socket: &Path, opts: &ClientOptions) -> Result<Channel, tonic::transport::Error> {
    // The authority is never used: every connection goes to the socket.
    let endpoint = Endpoint::from_static("http://cri.local").connect_timeout(opts.connect_timeout);
    let path: Arc<PathBuf> = Arc::new(socket.to_path_buf());
    let connector = tower::service_fn(move |_: Uri| {
        let path = Arc::clone(&path);
        async move {
            let stream = UnixStream::connect(path.as_path()).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    endpoint.connect_with_connector(connector).await
}
