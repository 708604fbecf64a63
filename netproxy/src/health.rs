//! `healthCheckNodePort` servers: for each LoadBalancer Service with
//! `externalTrafficPolicy: Local`, an HTTP server on its health-check node
//! port answers how many of its endpoints run on this node, so that a load
//! balancer sends traffic only to nodes that have one (as upstream's
//! kube-proxy: `{"service": {"namespace", "name"}, "localEndpoints": N}`,
//! 200 when N > 0, else 503).
//!
//! [`health_check`] decides (pure); [`serve`] opens and closes one listener
//! per port as the published [`HealthChecks`] change, and reads the count
//! at request time, so an endpoint change needs no listener change.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::model::{ServiceInfo, ServiceKey, ServiceName, ServicePortState};

/// What one health-check port reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The Service it reports on.
    pub service: ServiceName,
    /// Its endpoints on this node.
    pub local_endpoints: usize,
}

/// Every health check this node serves, by port.
pub type HealthChecks = BTreeMap<u16, HealthCheck>;

/// The health-check port of a Service and its number of local endpoints
/// (distinct addresses over all its ports); `None` if it has no port
/// (not LoadBalancer, or not `externalTrafficPolicy: Local`).
pub fn health_check(info: &ServiceInfo, ports: &[(ServiceKey, ServicePortState)]) -> Option<(u16, usize)> {
    let port = info.health_check_node_port.filter(|_| info.external_local)?;
    let local: BTreeSet<Ipv4Addr> =
        ports.iter().flat_map(|(_, state)| state.node_endpoints.iter().map(|endpoint| endpoint.ip)).collect();
    Some((port, local.len()))
}

/// Status and JSON body for one health check.
pub fn response(check: &HealthCheck) -> (StatusCode, String) {
    let body = serde_json::json!({
        "service": {"namespace": check.service.namespace, "name": check.service.name},
        "localEndpoints": check.local_endpoints,
        "serviceProxyHealthy": true,
    });
    let status = if check.local_endpoints > 0 { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, body.to_string())
}

/// Serves every published health check on `bind`, one listener per port,
/// until `token` is cancelled. A port that cannot be bound is logged and
/// retried on the next change.
pub async fn serve(bind: IpAddr, mut checks: watch::Receiver<HealthChecks>, token: CancellationToken) {
    let mut listeners: BTreeMap<u16, CancellationToken> = BTreeMap::new();
    loop {
        let wanted: BTreeSet<u16> = checks.borrow_and_update().keys().copied().collect();
        listeners.retain(|port, listener| {
            let keep = wanted.contains(port);
            if !keep {
                listener.cancel();
            }
            keep
        });
        for port in wanted {
            if listeners.contains_key(&port) {
                continue;
            }
            match tokio::net::TcpListener::bind(SocketAddr::new(bind, port)).await {
                Ok(listener) => {
                    let stop = token.child_token();
                    listeners.insert(port, stop.clone());
                    tokio::spawn(serve_port(listener, port, checks.clone(), stop));
                }
                Err(error) => tracing::warn!(port, %error, "cannot listen on health-check node port"),
            }
        }
        tokio::select! {
            () = token.cancelled() => break,
            changed = checks.changed() => if changed.is_err() { break },
        }
    }
    for listener in listeners.values() {
        listener.cancel();
    }
}

async fn serve_port(
    listener: tokio::net::TcpListener,
    port: u16,
    checks: watch::Receiver<HealthChecks>,
    stop: CancellationToken,
) {
    let app = axum::Router::new().fallback(answer).with_state((port, checks));
    let served = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
    if let Err(error) = served {
        tracing::warn!(port, %error, "health-check server stopped");
    }
}

async fn answer(State((port, checks)): State<(u16, watch::Receiver<HealthChecks>)>) -> impl IntoResponse {
    let check = checks.borrow().get(&port).cloned();
    let (status, body) = match check {
        Some(check) => response(&check),
        None => (StatusCode::NOT_FOUND, String::new()),
    };
    (status, [(header::CONTENT_TYPE, "application/json"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")], body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, ServicePortSpec};

    fn info(external_local: bool, port: Option<u16>) -> ServiceInfo {
        ServiceInfo {
            cluster_ip: Ipv4Addr::new(10, 96, 0, 1),
            ports: vec![ServicePortSpec {
                name: String::new(),
                port: 80,
                protocol: Default::default(),
                node_port: None,
            }],
            external_ips: vec![],
            load_balancer_ips: vec![],
            source_ranges: vec![],
            external_local,
            internal_local: false,
            health_check_node_port: port,
            affinity_timeout: None,
        }
    }

    fn port_with(local: &[u8], port: u16) -> (ServiceKey, ServicePortState) {
        let key = ServiceKey { namespace: "ns".into(), name: "web".into(), port_name: port.to_string() };
        let node_endpoints = local.iter().map(|i| Endpoint { ip: Ipv4Addr::new(10, 244, 0, *i), port }).collect();
        (key, ServicePortState { node_endpoints, ..Default::default() })
    }

    #[test]
    fn health_check_counts_distinct_local_addresses_of_local_policy_services_only() {
        let ports = [port_with(&[1, 2], 80), port_with(&[2, 3], 443)];
        assert_eq!(health_check(&info(true, Some(32000)), &ports), Some((32000, 3)));
        assert_eq!(health_check(&info(false, Some(32000)), &ports), None, "policy Cluster: no health check");
        assert_eq!(health_check(&info(true, None), &ports), None);
    }

    #[test]
    fn response_is_upstreams_json_with_200_only_when_local_endpoints_exist() {
        let check = |n| HealthCheck { service: ServiceName::new("ns", "web"), local_endpoints: n };
        let (status, body) = response(&check(2));
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["service"], serde_json::json!({"namespace": "ns", "name": "web"}));
        assert_eq!(json["localEndpoints"], 2);
        assert_eq!(response(&check(0)).0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
