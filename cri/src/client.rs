//! The typed CRI client: connection, deadlines and error context.
//!
//! Owns: [`CriClient`] (one shared channel, cheap to clone), the runtime-level
//! calls (`Version`, `Status`, `UpdateRuntimeConfig`) and the helper every
//! call goes through to apply its deadline and attach the call name and target
//! to failures. Sandbox and container calls live in `runtime.rs`, image calls
//! in `image.rs`.
//!
//! Must not: retry or interpret runtime answers beyond treating "already gone"
//! as success for stop/remove calls; deciding what to do is the agent's job.

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

/// Target string for calls about the runtime itself.
pub(crate) const RUNTIME_TARGET: &str = "runtime";

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
    /// Connects to the runtime at `socket` and checks that it answers `Version`.
    ///
    /// Fails with [`Error::SocketMissing`] when the path does not exist and
    /// [`Error::Connect`] when nothing accepts connections on it.
    pub async fn connect(socket: impl AsRef<Path>, opts: ClientOptions) -> Result<CriClient> {
        let socket = socket.as_ref().to_path_buf();
        if !tokio::fs::try_exists(&socket).await.unwrap_or(false) {
            return Err(Error::SocketMissing { socket });
        }
        let channel = open_channel(&socket, &opts)
            .await
            .map_err(|source| Error::Connect {
                socket: socket.clone(),
                source,
            })?;
        let client = CriClient {
            socket: Arc::new(socket),
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            images: ImageServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES),
            opts,
        };
        client.version().await?;
        Ok(client)
    }

    /// The socket this client dials.
    pub fn socket(&self) -> &Path {
        self.socket.as_path()
    }

    /// The deadlines this client applies.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// Runtime name and versions.
    pub async fn version(&self) -> Result<api::VersionResponse> {
        let mut rt = self.runtime.clone();
        let req = api::VersionRequest {
            version: CRI_API_VERSION.to_string(),
        };
        self.unary("Version", || RUNTIME_TARGET.into(), rt.version(req))
            .await
    }

    /// Runtime conditions (`RuntimeReady`, `NetworkReady`).
    pub async fn status(&self) -> Result<api::RuntimeStatus> {
        let mut rt = self.runtime.clone();
        let req = api::StatusRequest { verbose: false };
        let resp = self
            .unary("Status", || RUNTIME_TARGET.into(), rt.status(req))
            .await?;
        Ok(resp.status.unwrap_or_default())
    }

    /// Tells the runtime which CIDR pod IPs come from.
    pub async fn update_runtime_config(&self, pod_cidr: &str) -> Result<()> {
        let mut rt = self.runtime.clone();
        let req = api::UpdateRuntimeConfigRequest {
            runtime_config: Some(api::RuntimeConfig {
                network_config: Some(api::NetworkConfig {
                    pod_cidr: pod_cidr.to_string(),
                }),
            }),
        };
        self.unary(
            "UpdateRuntimeConfig",
            || format!("pod CIDR {pod_cidr:?}"),
            rt.update_runtime_config(req),
        )
        .await?;
        Ok(())
    }

    /// Runs one call with the default call deadline.
    pub(crate) async fn unary<T>(
        &self,
        call: &'static str,
        target: impl FnOnce() -> String,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T> {
        self.unary_within(self.opts.call_timeout, call, target, fut)
            .await
    }

    /// Runs one call with an explicit deadline, naming call and target on failure.
    pub(crate) async fn unary_within<T>(
        &self,
        after: Duration,
        call: &'static str,
        target: impl FnOnce() -> String,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T> {
        match tokio::time::timeout(after, fut).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => Err(Error::Rpc {
                call,
                target: target(),
                status,
            }),
            Err(_) => Err(Error::Timeout {
                call,
                target: target(),
                after,
            }),
        }
    }
}

/// Turns "not found" into success: the object is already in the wanted state.
pub(crate) fn gone_is_ok(result: Result<()>) -> Result<()> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}
