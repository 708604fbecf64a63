//! Handler actions shared by probes and lifecycle hooks: exec (CRI
//! ExecSync), httpGet, tcpSocket, grpc (health v1) and sleep.
//!
//! [`Action`] is the resolved form of a spec handler (named ports looked up
//! in the container's ports, host defaulted to the pod IP, every number
//! range-checked); resolution is pure. [`run`] performs one action within a
//! timeout and says whether it succeeded, with the output or error as text.
//!
//! Must not: decide what a result means (thresholds, kills): the prober and
//! the hook runner do.

mod exec;
mod grpc;
mod http;
mod resolve;
mod tcp;

use std::sync::Arc;
use std::time::Duration;

pub use resolve::{from_lifecycle, from_probe, resolve_port};

use crate::runtime::Runtime;

/// A handler that cannot be run as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The handler sets no action (or one this agent does not know).
    #[error("handler has no action (exec, httpGet, tcpSocket, grpc or sleep)")]
    NoAction,
    /// A named port the container does not declare.
    #[error("port {0:?} is not a named port of the container")]
    UnknownPort(String),
    /// A port number out of 1..=65535.
    #[error("port {0} is out of range 1-65535")]
    PortOutOfRange(i64),
    /// An exec action without a command.
    #[error("exec handler has an empty command")]
    EmptyCommand,
    /// A negative sleep.
    #[error("sleep seconds {0} must not be negative")]
    NegativeSleep(i64),
    /// An unknown httpGet scheme.
    #[error("unsupported scheme {0:?} (HTTP or HTTPS)")]
    Scheme(String),
    /// No host given and the pod has no IP yet.
    #[error("no host to connect to (the pod has no IP yet)")]
    NoHost,
}

/// URL scheme of an httpGet action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTPS; the certificate is not verified (as upstream).
    Https,
}

/// An httpGet action, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGet {
    /// HTTP or HTTPS.
    pub scheme: Scheme,
    /// Host (IP or name) to connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path (and query), starting with `/`.
    pub path: String,
    /// Extra request headers (`Host` among them overrides the host header).
    pub headers: Vec<(String, String)>,
}

/// One resolved handler action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run a command in the container.
    Exec(Vec<String>),
    /// GET a URL; 200..400 is success.
    HttpGet(HttpGet),
    /// Open a TCP connection.
    TcpSocket {
        /// Host to connect to.
        host: String,
        /// Port.
        port: u16,
    },
    /// gRPC `grpc.health.v1.Health/Check`; SERVING is success.
    Grpc {
        /// Host to connect to (the pod IP).
        host: String,
        /// Port.
        port: u16,
        /// Service name asked about (empty: the server as a whole).
        service: String,
    },
    /// Wait this long.
    Sleep(Duration),
}

/// How one run of an action ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It worked; the text is the output (may be empty).
    Success(String),
    /// It did not; the text says why (shown in Events).
    Failure(String),
}

impl Outcome {
    /// True for [`Outcome::Success`].
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success(_))
    }
}

/// Where an action runs: the runtime and the container (for exec).
#[derive(Clone)]
pub struct Target {
    /// The container runtime.
    pub runtime: Arc<dyn Runtime>,
    /// CRI id of the container.
    pub container_id: String,
}

/// Runs `action` against `target`, giving up after `timeout`.
pub async fn run(action: &Action, target: &Target, timeout: Duration) -> Outcome {
    match action {
        Action::Exec(command) => exec::run(target, command, timeout).await,
        Action::HttpGet(get) => http::run(get, timeout).await,
        Action::TcpSocket { host, port } => tcp::run(host, *port, timeout).await,
        Action::Grpc { host, port, service } => grpc::run(host, *port, service, timeout).await,
        Action::Sleep(duration) => {
            tokio::time::sleep((*duration).min(timeout)).await;
            Outcome::Success(String::new())
        }
    }
}

/// Formats `host:port`, bracketing IPv6 addresses.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
