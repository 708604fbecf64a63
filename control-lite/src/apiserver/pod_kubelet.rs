//! Reaching the kubelet that runs a pod, for the subresources the apiserver
//! proxies to it (`pods/log`, `pods/exec`, `pods/attach`,
//! `pods/portforward`): the container a request names, the pod's node's
//! kubelet endpoint (InternalIP and `daemonEndpoints.kubeletEndpoint`), and
//! an HTTP/1 connection to it over TLS. One place, so every proxy finds nodes alike.

use axum::body::Body;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::crud;
use super::kubelet_client::KubeletClient;
use super::registry::{by_kind, Kind};
use super::status::{ApiError, Result};
use super::ApiState;

/// The container to use: the requested one, or the only one.
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

/// `host:port` of a node's kubelet endpoint (pure).
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

/// The kubelet address of the node `pod` is bound to.
pub async fn pod_kubelet_address(state: &ApiState, pod: &Value) -> Result<String> {
    let node_name = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default();
    if node_name.is_empty() {
        let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        return Err(ApiError::BadRequest(format!("pod {name} does not have a host assigned")));
    }
    let (node, _) = crud::get(state, by_kind(Kind::Node), None, node_name).await?;
    kubelet_address(&node)
        .ok_or_else(|| ApiError::BadGateway(format!("node {node_name} reports no InternalIP and kubelet port")))
}

/// The kubelet at `addr` cannot be reached.
pub fn bad_gateway(e: impl std::fmt::Display, addr: &str) -> ApiError {
    ApiError::BadGateway(format!("failed to reach kubelet at {addr}: {e}"))
}

/// An HTTP/1 connection over TLS to the kubelet at `addr` (upgrades
/// allowed; see `kubelet_client`); the connection task ends with the
/// request or at shutdown.
pub async fn connect(kubelet: &KubeletClient, addr: &str, token: CancellationToken) -> Result<SendRequest<Body>> {
    let stream = kubelet.connect(addr).await.map_err(|e| bad_gateway(e, addr))?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| bad_gateway(e, addr))?;
    tokio::spawn(async move {
        tokio::select! {
            () = token.cancelled() => {}
            res = conn.with_upgrades() => {
                if let Err(error) = res {
                    tracing::debug!(%error, "kubelet connection ended");
                }
            }
        }
    });
    Ok(sender)
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
        let v6 = json!({"status": {"addresses": [{"type": "InternalIP", "address": "fd00::1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 1}}}});
        assert_eq!(kubelet_address(&v6).as_deref(), Some("[fd00::1]:1"));
        assert_eq!(kubelet_address(&json!({})), None);
    }
}
