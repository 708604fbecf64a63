//! Serving a [`FakeCri`] on a unix socket, and stopping it gently or hard.
//!
//! Owns: binding the socket, the tonic server task, and [`FakeCriHandle`],
//! which stops the server either gracefully (`shutdown`: HTTP/2 GOAWAY, as a
//! runtime restarted by its service manager does) or abruptly (`crash`: every
//! connection is cut, as when the runtime is killed), and removes the socket
//! file it created.

use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bosun_proto::cri::image_service_server::ImageServiceServer;
use bosun_proto::cri::runtime_service_server::RuntimeServiceServer;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use super::service::FakeService;
use super::FakeCri;

/// Errors of serving the fake.
#[derive(thiserror::Error, Debug)]
pub enum FakeServeError {
    /// The socket could not be bound.
    #[error("binding fake CRI socket {}", socket.display())]
    Bind {
        /// The socket path.
        socket: PathBuf,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The gRPC server stopped with an error.
    #[error("serving fake CRI on {}", socket.display())]
    Serve {
        /// The socket path.
        socket: PathBuf,
        /// The server's error.
        source: tonic::transport::Error,
    },
    /// The server task panicked or was aborted.
    #[error("fake CRI server task on {} ended abnormally", socket.display())]
    Task {
        /// The socket path.
        socket: PathBuf,
        /// The join failure.
        source: tokio::task::JoinError,
    },
}

/// Second handles on accepted connections, kept so `crash` can cut them.
type Connections = Arc<Mutex<Vec<StdUnixStream>>>;

/// Registers an accepted connection and hands it on to the server.
fn track(conns: &Connections, stream: UnixStream) -> std::io::Result<UnixStream> {
    let std_stream = stream.into_std()?;
    let second = std_stream.try_clone()?;
    conns.lock().unwrap_or_else(PoisonError::into_inner).push(second);
    UnixStream::from_std(std_stream)
}

impl FakeCri {
    /// Serves this fake on `socket` (replacing a stale socket file) until
    /// `token` is cancelled or the handle is shut down, crashed or dropped.
    /// Must be called inside a tokio runtime.
    pub fn serve(&self, socket: impl AsRef<Path>, token: CancellationToken) -> Result<FakeCriHandle, FakeServeError> {
        let socket = socket.as_ref().to_path_buf();
        let bind_error = |source| FakeServeError::Bind { socket: socket.clone(), source };
        match std::fs::remove_file(&socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(bind_error(e)),
            _ => {}
        }
        let listener = UnixListener::bind(&socket).map_err(bind_error)?;
        let inode = socket_inode(&socket).map_err(bind_error)?;
        let token = token.child_token();
        let conns = Connections::default();
        let tracked = Arc::clone(&conns);
        let incoming =
            UnixListenerStream::new(listener).map(move |accepted| accepted.and_then(|stream| track(&tracked, stream)));
        let svc = FakeService::new(self.clone(), token.clone());
        let router = tonic::transport::Server::builder()
            .add_service(RuntimeServiceServer::new(svc.clone()))
            .add_service(ImageServiceServer::new(svc));
        let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, token.clone().cancelled_owned()));
        Ok(FakeCriHandle { socket, inode, token, conns, task: Some(task) })
    }
}

/// A running fake server. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeCriHandle {
    socket: PathBuf,
    /// (device, inode) of the socket file this server bound, so a later
    /// server on the same path keeps its file when this one stops.
    inode: (u64, u64),
    token: CancellationToken,
    conns: Connections,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl FakeCriHandle {
    /// The socket the fake listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stops the server gracefully: delayed calls answer `Unavailable`,
    /// clients get GOAWAY, and the socket file is removed.
    pub async fn shutdown(mut self) -> Result<(), FakeServeError> {
        self.stop().await
    }

    /// Stops the server as if the runtime were killed: every connection is
    /// cut without GOAWAY, then the socket file is removed.
    pub async fn crash(mut self) -> Result<(), FakeServeError> {
        for conn in self.take_connections() {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
        self.stop().await
    }

    async fn stop(&mut self) -> Result<(), FakeServeError> {
        self.token.cancel();
        let result = match self.task.take() {
            Some(task) => match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(source)) => Err(FakeServeError::Serve { socket: self.socket.clone(), source }),
                Err(source) => Err(FakeServeError::Task { socket: self.socket.clone(), source }),
            },
            None => Ok(()),
        };
        drop(self.take_connections());
        self.remove_socket_file();
        result
    }

    fn take_connections(&self) -> Vec<StdUnixStream> {
        std::mem::take(&mut *self.conns.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn remove_socket_file(&self) {
        if socket_inode(&self.socket).is_ok_and(|inode| inode == self.inode) {
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

impl Drop for FakeCriHandle {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.token.cancel();
            drop(self.take_connections());
            self.remove_socket_file();
        }
    }
}

fn socket_inode(socket: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(socket)?;
    Ok((meta.dev(), meta.ino()))
}
