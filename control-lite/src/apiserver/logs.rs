//! `pods/log`: finds the pod's node and streams the kubelet's
//! `/containerLogs/<ns>/<pod>/<container>` response through.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::crud;
use super::options::LogOptions;
use super::registry::{by_kind, Kind};
use super::status::{ApiError, Result};
use super::ApiState;

/// The container to read: the requested one, or the only one.
pub fn pick_container(pod: &Value, requested: Option<&str>) -> Result<String> {
    let names: Vec<&str> = ["/spec/initContainers", "/spec/containers"]
        .iter()
        .flat_map(|p| pod.pointer(p).and_then(Value::as_array).into_iter().flatten())
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let main: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    match requested {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::BadRequest(format!("container {c} is not valid for pod {pod_name}"))),
        None if main.len() == 1 => Ok(main[0].to_string()),
        None => Err(ApiError::BadRequest(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            main.join(" ")
        ))),
    }
}

/// `host:port` of a node's kubelet endpoint.
pub fn kubelet_address(node: &Value) -> Option<String> {
    let ip = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)?
        .iter()
        .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))?
        .get("address")
        .and_then(Value::as_str)?
        .to_string();
    let port = node.pointer("/status/daemonEndpoints/kubeletEndpoint/Port").and_then(Value::as_i64)?;
    Some(if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") })
}

fn bad_gateway(e: impl std::fmt::Display, addr: &str) -> ApiError {
    ApiError::BadGateway(format!("failed to reach kubelet at {addr}: {e}"))
}

/// GET `pods/<name>/log`.
pub async fn proxy(state: &ApiState, ns: &str, name: &str, opts: &LogOptions) -> Result<Response> {
    let (pod, _) = crud::get(state, by_kind(Kind::Pod), Some(ns), name).await?;
    let container = pick_container(&pod, opts.container.as_deref())?;
    let node_name = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default();
    if node_name.is_empty() {
        return Err(ApiError::BadRequest(format!("pod {name} does not have a host assigned")));
    }
    let (node, _) = crud::get(state, by_kind(Kind::Node), None, node_name).await?;
    let addr = kubelet_address(&node)
        .ok_or_else(|| ApiError::BadGateway(format!("node {node_name} reports no InternalIP and kubelet port")))?;
    let query: Vec<String> = opts.passthrough.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
    let uri = format!("/containerLogs/{ns}/{name}/{container}?{}", query.join("&"));
    let stream = tokio::net::TcpStream::connect(&addr).await.map_err(|e| bad_gateway(e, &addr))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| bad_gateway(e, &addr))?;
    let token = state.token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = token.cancelled() => {}
            res = conn => {
                if let Err(error) = res {
                    tracing::debug!(%error, "log proxy connection ended");
                }
            }
        }
    });
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
    use serde_json::json;

    #[test]
    fn container_defaults_to_the_only_one_and_lists_choices() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(pick_container(&one, None).ok(), Some("a".into()));
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let err = pick_container(&two, None).expect_err("ambiguous");
        assert!(err.to_string().contains("choose one of: [a b]"), "{err}");
        assert_eq!(pick_container(&two, Some("b")).ok(), Some("b".into()));
        assert!(pick_container(&two, Some("c")).is_err());
    }

    #[test]
    fn kubelet_address_from_node_status() {
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "n"}, {"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        assert_eq!(kubelet_address(&node).as_deref(), Some("127.0.0.1:10250"));
        assert_eq!(kubelet_address(&json!({})), None);
        assert_eq!(urlencode("2024-01-01T00:00:00Z"), "2024-01-01T00%3A00%3A00Z");
    }
}
