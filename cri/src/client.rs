//! The typed CRI client: connection, deadlines and error context.
//!
//! Owns: [`CriClient`] (one shared channel, cheap to clone), the runtime-level
//! calls (`Version`, `Status`, `UpdateRuntimeConfig`) and the helper every
//! call goes through to apply its deadline and attach the call name and target
//! to failures. Sandbox and container calls live in `runtime.rs`, image calls
//! in `image.rs`.
//!
//! Must not: retry or interpret runtime answers. The only exceptions: a call
//! that failed in the client's own connection (the runtime had just
//! restarted) is sent once more when `resend.rs` says that is safe, and
//! "already gone" is success for stop/remove calls. Deciding what to do about
//! failures is the agent's job.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bosun_proto::cri as api;
use bosun_proto::cri::image_service_client::ImageServiceClient;
use bosun_proto::cri::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use crate::connect::{open_channel, ClientOptions, MAX_MESSAGE_BYTES};
use crate::error::{Error, Result};
use crate::resend::should_resend;

/// Sends of one call at most: a call cut off by a runtime restart may meet
/// the dying connection twice (once writing, once queued) before the channel
/// dials again.
const MAX_ATTEMPTS: u32 = 3;

/// The CRI API version this client speaks.
const CRI_API_VERSION: &str = "v1";

/// A client for a CRI runtime (containerd) over its unix socket.
///
/// Clones share one connection. If the runtime restarts, the next call dials
/// the socket again.
#[derive(Clone, Debug)]
pub struct CriClient {
    pub(crate) socket: Arc<PathBuf>,
    pub(crate) opts: ClientOptions,
    pub(crate) runtime: RuntimeServiceClient<Channel>,
    pub(crate) images: ImageServiceClient<Channel>,
}

impl CriClient {
    /// Connects to the runtime at `socket` and checks that it answers
    /// `Version`, both within `connect_timeout`.
    ///
    /// Fails with [`Error::SocketMissing`] when the path does not exist and
    /// [`Error::Connect`] when nothing accepts connections on it.
    pub async fn connect(socket: impl AsRef<Path>, opts: ClientOptions) -> Result<CriClient> {
        let socket = socket.as_ref().to_path_buf();
        // An unreadable directory is left to the connect error to explain.
        if let Ok(false) = tokio::fs::try_exists(&socket).await {
            return Err(Error::SocketMissing { socket });
        }
        let channel =
            open_channel(&socket, &opts).await.map_err(|source| Error::Connect { socket: socket.clone(), source })?;
        let client = CriClient {
            socket: Arc::new(socket),
            runtime: RuntimeServiceClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES),
            images: ImageServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES),
            opts,
        };
        // A runtime that accepts but does not answer is as bad as none at all.
        client.version_within(client.opts.connect_timeout).await?;
        Ok(client)
    }

    /// The socket this client dials.
    pub fn socket(&self) -> &Path {
        self.socket.as_path()
    }

    /// Target of calls about the runtime itself: `runtime at /run/x.sock`.
    fn runtime_target(&self) -> String {
        format!("runtime at {}", self.socket.display())
    }

    /// The deadlines this client applies.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// Runtime name and versions.
    pub async fn version(&self) -> Result<api::VersionResponse> {
        self.version_within(self.opts.call_timeout).await
    }

    async fn version_within(&self, after: Duration) -> Result<api::VersionResponse> {
        let req = api::VersionRequest { version: CRI_API_VERSION.to_string() };
        self.unary_within(after, "Version", || self.runtime_target(), rpc!(self.runtime, version, req)).await
    }

    /// Runtime conditions (`RuntimeReady`, `NetworkReady`).
    pub async fn status(&self) -> Result<api::RuntimeStatus> {
        let req = api::StatusRequest { verbose: false };
        let resp = self.unary("Status", || self.runtime_target(), rpc!(self.runtime, status, req)).await?;
        Ok(resp.status.unwrap_or_default())
    }

    /// The runtime's verbose status information (containerd: `config`, a
    /// JSON text of its CRI configuration, with `sandboxImage`).
    pub async fn status_info(&self) -> Result<std::collections::HashMap<String, String>> {
        let req = api::StatusRequest { verbose: true };
        let resp = self.unary("Status", || self.runtime_target(), rpc!(self.runtime, status, req)).await?;
        Ok(resp.info)
    }

    /// Tells the runtime which CIDR pod IPs come from.
    pub async fn update_runtime_config(&self, pod_cidr: &str) -> Result<()> {
        let req = api::UpdateRuntimeConfigRequest {
            runtime_config: Some(api::RuntimeConfig {
                network_config: Some(api::NetworkConfig { pod_cidr: pod_cidr.to_string() }),
            }),
        };
        self.unary(
            "UpdateRuntimeConfig",
            || format!("pod CIDR {pod_cidr:?}"),
            rpc!(self.runtime, update_runtime_config, req),
        )
        .await?;
        Ok(())
    }

    /// Runs one call with the default call deadline.
    pub(crate) async fn unary<T, Fut>(
        &self,
        call: &'static str,
        target: impl FnOnce() -> String,
        send: impl FnMut() -> Fut,
    ) -> Result<T>
    where
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.unary_within(self.opts.call_timeout, call, target, send).await
    }

    /// Runs one call with an explicit deadline, naming call and target on
    /// failure. `send` builds the request future; it is called a second time
    /// only when `resend.rs` says that is safe.
    pub(crate) async fn unary_within<T, Fut>(
        &self,
        after: Duration,
        call: &'static str,
        target: impl FnOnce() -> String,
        mut send: impl FnMut() -> Fut,
    ) -> Result<T>
    where
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let attempts = async {
            let mut attempt = 1;
            loop {
                match send().await {
                    Err(status) if attempt < MAX_ATTEMPTS && should_resend(call, &status) => {
                        tracing::debug!(call, attempt, %status, "CRI connection failed; sending the call again");
                        attempt += 1;
                    }
                    answer => return answer,
                }
            }
        };
        match tokio::time::timeout(after, attempts).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => Err(Error::Rpc { call, target: target(), status }),
            Err(_) => Err(Error::Timeout { call, target: target(), after }),
        }
    }
}

/// Builds the `send` closure for `unary`: clones the client and the request
/// so the call can be made again.
macro_rules! rpc {
    ($client:expr, $method:ident, $req:expr) => {
        || {
            let mut client = $client.clone();
            let req = $req.clone();
            async move { client.$method(req).await }
        }
    };
}
pub(crate) use rpc;

/// Turns "not found" into success: the object is already in the wanted state.
pub(crate) fn gone_is_ok(result: Result<()>) -> Result<()> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}
