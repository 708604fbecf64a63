//! Connections to the runtime's streaming server (containerd's CRI plugin
//! serves one on loopback): the one-time URL from `Exec`/`Attach`/
//! `PortForward` upgraded to SPDY/3.1 with the protocol of the call
//! (`v4.channel.k8s.io` or `portforward.k8s.io`).

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

/// The upgraded connection to the runtime.
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

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

/// Upgrades a streaming URL to a SPDY/3.1 connection speaking `protocol`
/// (sent as `X-Stream-Protocol-Version`) and returns its byte stream.
pub async fn spdy_upgrade(url: &str, protocol: &'static str) -> Result<Upgraded, ConnectError> {
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
            tracing::debug!(%error, "stream: runtime streaming connection ended");
        }
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = http::Request::post(path)
        .header(http::header::HOST, authority.as_str())
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", protocol)
        .body(axum::body::Body::empty())
        .map_err(|e| fail(url, e))?;
    let response: http::Response<Incoming> = sender.send_request(request).await.map_err(|e| fail(url, e))?;
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(fail(url, format!("answered {} instead of switching protocols", response.status())));
    }
    let upgraded = hyper::upgrade::on(response).await.map_err(|e| fail(url, e))?;
    Ok(TokioIo::new(upgraded))
}
