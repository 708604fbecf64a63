//! Connections to the runtime's streaming server (containerd's CRI plugin
//! serves one on loopback): the one-time URL from `Exec`/`Attach` opened as a
//! v4 channel WebSocket, the URL from `PortForward` upgraded to SPDY/3.1 with
//! the `portforward.k8s.io` protocol (its frames are then relayed as bytes).

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::options::{PORTFORWARD_PROTOCOL, V4_CHANNEL};

/// The runtime's channel WebSocket.
pub type ChannelSocket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Reaching the runtime's streaming server failed.
#[derive(Debug, thiserror::Error)]
#[error("connecting to the runtime's streaming server at {url}: {message}")]
pub struct ConnectError {
    /// The URL the runtime handed out.
    pub url: String,
    /// What went wrong.
    pub message: String,
}

fn fail(url: &str, message: impl std::fmt::Display) -> ConnectError {
    ConnectError { url: url.to_string(), message: message.to_string() }
}

/// `http://host/exec/token` as the WebSocket URL `ws://host/exec/token`.
pub fn websocket_url(url: &str) -> Option<String> {
    if let Some(rest) = url.strip_prefix("http://") {
        Some(format!("ws://{rest}"))
    } else {
        url.strip_prefix("https://").map(|rest| format!("wss://{rest}"))
    }
}

/// Opens the exec/attach URL as a `v4.channel.k8s.io` WebSocket.
pub async fn channel_socket(url: &str) -> Result<ChannelSocket, ConnectError> {
    let ws_url = websocket_url(url).ok_or_else(|| fail(url, "not an http(s) URL"))?;
    let mut request = ws_url.into_client_request().map_err(|e| fail(url, e))?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(V4_CHANNEL));
    let (socket, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| fail(url, e))?;
    Ok(socket)
}

/// Upgrades the port-forward URL to a SPDY/3.1 connection and returns its byte stream.
pub async fn spdy_portforward(url: &str) -> Result<TokioIo<hyper::upgrade::Upgraded>, ConnectError> {
    let uri: http::Uri = url.parse().map_err(|e| fail(url, e))?;
    if uri.scheme_str() != Some("http") {
        return Err(fail(url, "only plain-HTTP streaming servers are supported"));
    }
    let authority = uri.authority().ok_or_else(|| fail(url, "no host"))?.clone();
    let stream = tokio::net::TcpStream::connect(authority.as_str()).await.map_err(|e| fail(url, e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| fail(url, e))?;
    tokio::spawn(async move {
        if let Err(error) = conn.with_upgrades().await {
            tracing::debug!(%error, "stream: runtime port-forward connection ended");
        }
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = http::Request::post(path)
        .header(http::header::HOST, authority.as_str())
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", PORTFORWARD_PROTOCOL)
        .body(axum::body::Body::empty())
        .map_err(|e| fail(url, e))?;
    let response: http::Response<Incoming> = sender.send_request(request).await.map_err(|e| fail(url, e))?;
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(fail(url, format!("answered {} instead of switching protocols", response.status())));
    }
    let upgraded = hyper::upgrade::on(response).await.map_err(|e| fail(url, e))?;
    Ok(TokioIo::new(upgraded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_urls_become_websocket_urls() {
        assert_eq!(websocket_url("http://127.0.0.1:3456/exec/Ab_c").as_deref(), Some("ws://127.0.0.1:3456/exec/Ab_c"));
        assert_eq!(websocket_url("https://[::1]:1/attach/x").as_deref(), Some("wss://[::1]:1/attach/x"));
        assert_eq!(websocket_url("unix:///run/x"), None);
    }
}
