//! One GET of a node's `/stats/summary` through the kubelet API (the node
//! address as `pod_kubelet::kubelet_address` finds it), bounded in time and size.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::apiserver::kubelet_client::KubeletClient;

/// How long one node may take to answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest Summary read (about 2 KiB per pod: 110 pods fit many times).
const MAX_BYTES: usize = 8 << 20;

/// The Summary of the kubelet at `addr` (`host:port`); the error says why not.
pub async fn summary(kubelet: &KubeletClient, addr: &str) -> Result<Value, String> {
    tokio::time::timeout(TIMEOUT, get(kubelet, addr)).await.map_err(|_| format!("kubelet at {addr}: timed out"))?
}

async fn get(kubelet: &KubeletClient, addr: &str) -> Result<Value, String> {
    let fail = |e: &dyn std::fmt::Display| format!("kubelet at {addr}: {e}");
    let stream = kubelet.connect(addr).await.map_err(|e| fail(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| fail(&e))?;
    let driver = tokio::spawn(conn);
    let request = Request::get("/stats/summary").header("host", addr).body(Body::empty()).map_err(|e| fail(&e))?;
    let result = async {
        let response = sender.send_request(request).await.map_err(|e| fail(&e))?;
        if !response.status().is_success() {
            return Err(fail(&format!("answered {}", response.status())));
        }
        let bytes = axum::body::to_bytes(Body::new(response.into_body()), MAX_BYTES).await.map_err(|e| fail(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| fail(&e))
    }
    .await;
    driver.abort();
    result
}
