//! `pods/log`: finds the pod's node and streams the kubelet's
//! `/containerLogs/<ns>/<pod>/<container>` response through.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;

use super::crud;
use super::options::LogOptions;
use super::pod_kubelet::{bad_gateway, connect, pick_container, pod_kubelet_address};
use super::registry::{by_kind, Kind};
use super::status::{ApiError, Result};
use super::ApiState;

/// GET `pods/<name>/log`.
pub async fn proxy(state: &ApiState, ns: &str, name: &str, opts: &LogOptions) -> Result<Response> {
    let (pod, _) = crud::get(state, by_kind(Kind::Pod), Some(ns), name).await?;
    let container = pick_container(&pod, opts.container.as_deref())?;
    let addr = pod_kubelet_address(state, &pod).await?;
    let query: Vec<String> = opts.passthrough.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
    let uri = format!("/containerLogs/{ns}/{name}/{container}?{}", query.join("&"));
    let mut sender = connect(&state.kubelet, &addr, state.token.clone()).await?;
    let req =
        Request::get(&uri).header("host", &addr).body(Body::empty()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let resp = sender.send_request(req).await.map_err(|e| bad_gateway(e, &addr))?;
    let status = resp.status();
    let content_type = resp.headers().get("content-type").cloned();
    let mut out = Response::new(Body::new(resp.into_body()));
    *out.status_mut() = if status.is_success() { StatusCode::OK } else { status };
    if let Some(ct) = content_type {
        out.headers_mut().insert("content-type", ct);
    }
    Ok(out)
}

fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(urlencode("2024-01-01T00:00:00Z"), "2024-01-01T00%3A00%3A00Z");
    }
}
