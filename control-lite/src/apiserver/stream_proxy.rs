//! `pods/exec`, `pods/attach` and `pods/portforward`: finds the pod's node,
//! sends the client's upgrade request to the kubelet API
//! (`/exec/<ns>/<pod>/<container>`, `/attach/...`, `/portForward/<ns>/<pod>`)
//! and, once the kubelet switches protocols, splices the two upgraded
//! connections byte for byte (`splice`, which closes a session idle for
//! [`STREAM_IDLE_TIMEOUT`]). The apiserver never looks inside the stream,
//! so WebSocket (kubectl 1.30+) and SPDY (its fallback) pass alike.
//!
//! A kubelet answer other than 101 is returned to the client as is, so its
//! error message reaches kubectl.

use std::time::Duration;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::crud;
use super::pod_kubelet::{bad_gateway, connect, pick_container, pod_kubelet_address};
use super::registry::{by_kind, Kind, Subresource};
use super::splice::splice;
use super::status::{ApiError, Result};
use super::ApiState;

/// A spliced session with no traffic for this long is closed (the
/// kubelet's default `streamingConnectionIdleTimeout`).
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 60 * 60);

/// The kubelet path of a streaming subresource (pure).
pub fn kubelet_path(sub: Subresource, ns: &str, pod: &str, container: &str, query: Option<&str>) -> Option<String> {
    let base = match sub {
        Subresource::Exec => format!("/exec/{ns}/{pod}/{container}"),
        Subresource::Attach => format!("/attach/{ns}/{pod}/{container}"),
        Subresource::PortForward => format!("/portForward/{ns}/{pod}"),
        _ => return None,
    };
    Some(match query {
        Some(q) if !q.is_empty() => format!("{base}?{q}"),
        _ => base,
    })
}

/// The `container` query parameter, if given.
fn container_param(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.into_owned())
}

/// Proxies one streaming request; `parts` still holds the client's upgrade handle.
pub async fn proxy(state: &ApiState, ns: &str, name: &str, sub: Subresource, parts: &mut Parts) -> Result<Response> {
    let (pod, _) = crud::get(state, by_kind(Kind::Pod), Some(ns), name).await?;
    let query = parts.uri.query();
    let container = match sub {
        Subresource::PortForward => String::new(),
        _ => pick_container(&pod, container_param(query).as_deref())?,
    };
    let addr = pod_kubelet_address(state, &pod).await?;
    let path = kubelet_path(sub, ns, name, &container, query).ok_or(ApiError::NoResource)?;
    let client_upgrade = parts.extensions.remove::<OnUpgrade>();
    let mut sender = connect(&state.kubelet, &addr, state.token.clone()).await?;
    let mut request = Request::builder().method(parts.method.clone()).uri(&path);
    for (key, value) in &parts.headers {
        if key != header::HOST && key != header::CONTENT_LENGTH {
            request = request.header(key, value);
        }
    }
    let request = request
        .header(header::HOST, HeaderValue::from_str(&addr).map_err(|e| ApiError::Internal(e.to_string()))?)
        .body(Body::empty())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut answer = sender.send_request(request).await.map_err(|e| bad_gateway(e, &addr))?;

    let mut out = Response::builder().status(answer.status());
    for (key, value) in answer.headers() {
        out = out.header(key, value);
    }
    if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
        return out.body(Body::new(answer.into_body())).map_err(|e| ApiError::Internal(e.to_string()));
    }
    let client_upgrade = client_upgrade
        .ok_or_else(|| ApiError::BadRequest("the streaming subresources need an HTTP/1.1 upgrade".into()))?;
    let kubelet_upgrade = hyper::upgrade::on(&mut answer);
    let token = state.token.clone();
    tokio::spawn(async move {
        let (client, kubelet) = match tokio::try_join!(client_upgrade, kubelet_upgrade) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%error, "stream proxy: upgrade failed");
                return;
            }
        };
        let ended = splice(TokioIo::new(client), TokioIo::new(kubelet), STREAM_IDLE_TIMEOUT, token).await;
        tracing::debug!(?ended, "stream proxy: session ended");
    });
    out.body(Body::empty()).map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_paths_of_the_streaming_subresources() {
        let q = Some("command=sh&container=c&stdout=true");
        assert_eq!(
            kubelet_path(Subresource::Exec, "d", "p", "c", q).as_deref(),
            Some("/exec/d/p/c?command=sh&container=c&stdout=true")
        );
        assert_eq!(kubelet_path(Subresource::Attach, "d", "p", "c", None).as_deref(), Some("/attach/d/p/c"));
        assert_eq!(kubelet_path(Subresource::PortForward, "d", "p", "", Some("")).as_deref(), Some("/portForward/d/p"));
        assert_eq!(kubelet_path(Subresource::Log, "d", "p", "c", None), None);
        assert_eq!(container_param(q).as_deref(), Some("c"));
        assert_eq!(container_param(Some("container=a%2Db")).as_deref(), Some("a-b"));
        assert_eq!(container_param(None), None);
    }
}
