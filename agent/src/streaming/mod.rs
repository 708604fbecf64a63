//! The kubelet API's streaming endpoints: `/exec/{ns}/{pod}/{container}`,
//! `/attach/{ns}/{pod}/{container}` and `/portForward/{ns}/{pod}`, served to
//! kubectl through the apiserver's upgrade proxy.
//!
//! Each request is decided first ([`options`]: streams, command,
//! subprotocol), then the runtime is asked for a one-time streaming URL
//! (CRI `Exec`/`Attach`/`PortForward`) and connected ([`runtime_conn`])
//! before kubectl's WebSocket is accepted, so failures are plain HTTP
//! errors. After that [`relay`] moves frames until either side ends.
//!
//! Protocols (kubectl 1.32 offers WebSocket first, SPDY only as a fallback):
//! - exec/attach: kubectl speaks `v5.channel.k8s.io` (a channel byte per
//!   message; the exit status is a `Status` on channel 3; v5 adds the stdin
//!   close signal). Toward the runtime the agent speaks the remotecommand
//!   protocol `v4.channel.k8s.io` over SPDY/3.1 ([`spdy`]), not containerd
//!   1.6's v4 WebSocket, because only SPDY can half-close stdin: the v5
//!   close becomes a FIN on the stdin stream.
//! - port-forward: kubectl tunnels a SPDY/3.1 session in binary WebSocket
//!   messages (`SPDY/3.1+portforward.k8s.io`); the agent upgrades the
//!   runtime's URL to SPDY/3.1 and passes the session through as bytes, so
//!   every connection kubectl multiplexes reaches the runtime unchanged.
//!
//! Must not: change pods or containers beyond what the command does.

pub mod options;
pub mod relay;
pub mod runtime_conn;
pub mod spdy;

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bosun_proto::cri as api;

use crate::labels;
use crate::runtime::{Runtime, RuntimeError};
use crate::server::ServerState;
use options::{
    pick_protocol, OptionsError, StreamOptions, PORTFORWARD_PROTOCOL, SPDY_TUNNEL_PORTFORWARD, V4_CHANNEL, V5_CHANNEL,
};
use spdy::session::ExecSession;
use spdy::streams::StreamIds;

/// Largest WebSocket message accepted from kubectl (stdin chunks and
/// tunnelled SPDY frames are far smaller).
const MAX_CLIENT_MESSAGE: usize = 1024 * 1024;

/// Why a streaming request was refused.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The pod does not run on this node.
    #[error("pod {0} not found on this node")]
    PodNotFound(String),
    /// No running container of that name.
    #[error("container {container:?} in pod {pod:?} is not running")]
    ContainerNotRunning {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
    },
    /// The pod has no ready sandbox to forward into.
    #[error("pod {0:?} has no running sandbox")]
    NoSandbox(String),
    /// The request's options are wrong.
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// kubectl offered no subprotocol the agent speaks.
    #[error("none of the offered WebSocket protocols is supported (want one of {0})")]
    Protocol(String),
    /// The runtime refused the streaming call.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The runtime's streaming server could not be reached.
    #[error(transparent)]
    Connect(#[from] runtime_conn::ConnectError),
    /// The runtime did not accept the exec/attach streams.
    #[error(transparent)]
    Spdy(#[from] spdy::SpdyError),
}

impl IntoResponse for StreamError {
    fn into_response(self) -> Response {
        let status = match &self {
            StreamError::PodNotFound(_) => StatusCode::NOT_FOUND,
            StreamError::ContainerNotRunning { .. } | StreamError::NoSandbox(_) => StatusCode::BAD_REQUEST,
            StreamError::Options(_) | StreamError::Protocol(_) => StatusCode::BAD_REQUEST,
            StreamError::Runtime(_) | StreamError::Connect(_) | StreamError::Spdy(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, self.to_string()).into_response()
    }
}

/// The streaming routes, merged into the kubelet API's router.
pub fn routes() -> Router<ServerState> {
    Router::new()
        .route("/exec/{namespace}/{pod}/{container}", get(exec))
        .route("/attach/{namespace}/{pod}/{container}", get(attach))
        .route("/portForward/{namespace}/{pod}", get(port_forward))
}

fn offered(ws: &WebSocketUpgrade) -> Vec<String> {
    ws.requested_protocols().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
}

fn choose(ws: &WebSocketUpgrade, supported: &[&'static str]) -> Result<&'static str, StreamError> {
    let offered = offered(ws);
    pick_protocol(offered.iter().map(String::as_str), supported)
        .ok_or_else(|| StreamError::Protocol(supported.join(", ")))
}

fn pod_uid(state: &ServerState, namespace: &str, pod: &str) -> Result<String, StreamError> {
    let found =
        state.registry.find(namespace, pod).ok_or_else(|| StreamError::PodNotFound(format!("{namespace}/{pod}")))?;
    Ok(found.metadata.uid.clone().unwrap_or_default())
}

/// The newest running attempt of `container` in the pod `uid`.
async fn running_container(
    runtime: &dyn Runtime,
    uid: &str,
    pod: &str,
    container: &str,
) -> Result<String, StreamError> {
    let filter = api::ContainerFilter {
        state: Some(api::ContainerStateValue { state: api::ContainerState::ContainerRunning as i32 }),
        label_selector: HashMap::from([
            (labels::POD_UID.to_string(), uid.to_string()),
            (labels::CONTAINER_NAME.to_string(), container.to_string()),
        ]),
        ..Default::default()
    };
    runtime
        .list_containers(Some(filter))
        .await?
        .into_iter()
        .max_by_key(|c| c.metadata.as_ref().map_or(0, |m| m.attempt))
        .map(|c| c.id)
        .ok_or_else(|| StreamError::ContainerNotRunning { pod: pod.to_string(), container: container.to_string() })
}

async fn ready_sandbox(runtime: &dyn Runtime, uid: &str, pod: &str) -> Result<String, StreamError> {
    let filter = api::PodSandboxFilter {
        state: Some(api::PodSandboxStateValue { state: api::PodSandboxState::SandboxReady as i32 }),
        label_selector: HashMap::from([(labels::POD_UID.to_string(), uid.to_string())]),
        ..Default::default()
    };
    runtime
        .list_pod_sandboxes(Some(filter))
        .await?
        .into_iter()
        .max_by_key(|s| s.created_at)
        .map(|s| s.id)
        .ok_or_else(|| StreamError::NoSandbox(pod.to_string()))
}

/// How long the runtime may take to accept the streams of an exec or attach.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens the runtime's SPDY session for the one-time `url` with the streams `opts` asks for.
async fn open_channels(url: &str, opts: &StreamOptions) -> Result<ExecSession<runtime_conn::Upgraded>, StreamError> {
    let io = runtime_conn::spdy_upgrade(url, V4_CHANNEL).await?;
    Ok(spdy::session::open(io, StreamIds::plan(opts), STREAM_CREATION_TIMEOUT).await?)
}

/// Accepts kubectl's channel WebSocket and relays it to the runtime's session.
fn serve_channels(
    state: ServerState,
    ws: WebSocketUpgrade,
    protocol: &'static str,
    runtime: ExecSession<runtime_conn::Upgraded>,
) -> Response {
    let (idle, token) = (state.stream_idle_timeout, state.token.clone());
    ws.protocols([protocol]).max_message_size(MAX_CLIENT_MESSAGE).on_upgrade(move |socket| async move {
        let ended = relay::channels(socket, runtime, idle, token).await;
        tracing::debug!(?ended, "stream: channel session ended");
    })
}

async fn exec(
    State(state): State<ServerState>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Result<Response, StreamError> {
    let opts = StreamOptions::parse(query.as_deref(), true)?;
    let protocol = choose(&ws, &[V5_CHANNEL, V4_CHANNEL])?;
    let uid = pod_uid(&state, &namespace, &pod)?;
    let id = running_container(state.runtime.as_ref(), &uid, &pod, &container).await?;
    let request = api::ExecRequest {
        container_id: id,
        cmd: opts.command.clone(),
        tty: opts.tty,
        stdin: opts.stdin,
        stdout: opts.stdout,
        stderr: opts.stderr,
    };
    let url = state.runtime.exec(request).await?;
    let runtime = open_channels(&url, &opts).await?;
    Ok(serve_channels(state, ws, protocol, runtime))
}

async fn attach(
    State(state): State<ServerState>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Result<Response, StreamError> {
    let opts = StreamOptions::parse(query.as_deref(), false)?;
    let protocol = choose(&ws, &[V5_CHANNEL, V4_CHANNEL])?;
    let uid = pod_uid(&state, &namespace, &pod)?;
    let id = running_container(state.runtime.as_ref(), &uid, &pod, &container).await?;
    let request = api::AttachRequest {
        container_id: id,
        stdin: opts.stdin,
        tty: opts.tty,
        stdout: opts.stdout,
        stderr: opts.stderr,
    };
    let url = state.runtime.attach(request).await?;
    let runtime = open_channels(&url, &opts).await?;
    Ok(serve_channels(state, ws, protocol, runtime))
}

async fn port_forward(
    State(state): State<ServerState>,
    Path((namespace, pod)): Path<(String, String)>,
    ws: WebSocketUpgrade,
) -> Result<Response, StreamError> {
    let protocol = choose(&ws, &[SPDY_TUNNEL_PORTFORWARD])?;
    let uid = pod_uid(&state, &namespace, &pod)?;
    let sandbox = ready_sandbox(state.runtime.as_ref(), &uid, &pod).await?;
    // Ports travel in each SPDY stream's headers; the URL needs none.
    let url = state.runtime.port_forward(&sandbox, Vec::new()).await?;
    let runtime = runtime_conn::spdy_upgrade(&url, PORTFORWARD_PROTOCOL).await?;
    let (idle, token) = (state.stream_idle_timeout, state.token.clone());
    Ok(ws.protocols([protocol]).max_message_size(MAX_CLIENT_MESSAGE).on_upgrade(move |socket| async move {
        let ended = relay::tunnel(socket, runtime, idle, token).await;
        tracing::debug!(?ended, "stream: port-forward session ended");
    }))
}
