//! The proxy's pure model: what each Service port should balance to.
//!
//! API objects are first reduced to slim, comparable copies ([`ServiceInfo`],
//! [`SliceInfo`]) so the change tracker can tell real changes from noise
//! (status updates, managed-fields churn). [`service_ports`] then merges a
//! Service with all of its EndpointSlices into one [`ServicePortState`] per
//! service port. Nothing here does I/O.
//!
//! Rules (following kube-proxy):
//! - only IPv4, only the ClusterIP (also of NodePort/LoadBalancer services);
//!   headless (`None`) and `ExternalName` services are not proxied;
//! - services labelled `service.kubernetes.io/service-proxy-name` belong to
//!   another proxy and are skipped;
//! - a service port matches the slice port with the same name and protocol;
//! - ready endpoints are used; when none is ready, serving-and-terminating
//!   endpoints are used instead (graceful termination fallback);
//! - an endpoint listed by several slices is used once (ready if any copy is);
//! - an endpoint may hairpin (reach itself through its service) only if it
//!   runs on this node: its `nodeName` is this node's, or unknown.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

#[cfg(test)]
mod tests;

/// Label on an EndpointSlice naming the Service it belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label on a Service that hands it to a different proxy implementation.
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";

/// Transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (the Kubernetes default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses the Kubernetes spelling; a missing protocol means TCP.
    pub fn from_k8s(value: Option<&str>) -> Option<Self> {
        match value {
            None | Some("TCP") => Some(Self::Tcp),
            Some("UDP") => Some(Self::Udp),
            Some("SCTP") => Some(Self::Sctp),
            Some(_) => None,
        }
    }

    /// The nft keyword for this protocol (an `inet_proto` value).
    pub fn nft_name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// Namespace and name of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
}

impl ServiceName {
    /// Builds a name from its parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }
}

/// One port of one Service: the unit the proxy balances.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// Name of the port (empty for a single unnamed port).
    pub port_name: String,
}

/// The address clients connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServicePort {
    /// The Service's IPv4 ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// The Service port.
    pub port: u16,
    /// Its protocol.
    pub protocol: Protocol,
}

/// A backend: an endpoint address and the target port on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Endpoint (pod) IPv4 address.
    pub ip: Ipv4Addr,
    /// Target port on the endpoint.
    pub port: u16,
}

/// Desired state of one service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortState {
    /// Where clients connect.
    pub port: ServicePort,
    /// Endpoints to balance to, sorted and unique; empty means "reject".
    pub endpoints: Vec<Endpoint>,
    /// IPs of those endpoints that may be on this node (hairpin candidates),
    /// sorted and unique.
    pub local_ips: Vec<Ipv4Addr>,
}

/// Desired state of every proxied service port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyState {
    /// All service ports, ordered by key.
    pub services: BTreeMap<ServiceKey, ServicePortState>,
}

impl ProxyState {
    /// Replaces every port of the Service `name` with `ports`.
    pub fn replace_service(&mut self, name: &ServiceName, ports: Vec<(ServiceKey, ServicePortState)>) {
        let start = ServiceKey { namespace: name.namespace.clone(), name: name.name.clone(), port_name: String::new() };
        let stale: Vec<ServiceKey> = self
            .services
            .range(start..)
            .take_while(|(key, _)| key.namespace == name.namespace && key.name == name.name)
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            self.services.remove(&key);
        }
        self.services.extend(ports);
    }
}

/// One port as declared by a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortSpec {
    /// Port name ("" when unnamed).
    pub name: String,
    /// Service port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// The parts of a Service the proxy uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// IPv4 ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// Declared ports with a usable protocol and number.
    pub ports: Vec<ServicePortSpec>,
}

/// Reduces a Service to what the proxy needs; `None` if it is not proxied
/// (headless, ExternalName, no IPv4 ClusterIP, owned by another proxy).
pub fn service_info(service: &Service) -> Option<ServiceInfo> {
    let labels = service.metadata.labels.as_ref();
    if labels.is_some_and(|labels| labels.contains_key(SERVICE_PROXY_NAME_LABEL)) {
        return None;
    }
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let cluster_ip = std::iter::once(spec.cluster_ip.as_deref())
        .flatten()
        .chain(spec.cluster_ips.iter().flatten().map(String::as_str))
        .find_map(|ip| ip.parse::<Ipv4Addr>().ok())?;
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|port| {
            Some(ServicePortSpec {
                name: port.name.clone().unwrap_or_default(),
                port: u16::try_from(port.port).ok().filter(|p| *p != 0)?,
                protocol: Protocol::from_k8s(port.protocol.as_deref())?,
            })
        })
        .collect();
    Some(ServiceInfo { cluster_ip, ports })
}

/// One port as published by an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePort {
    /// Port name ("" when unnamed); matches the service port name.
    pub name: String,
    /// Target port on the endpoints.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// One endpoint of an EndpointSlice with its conditions resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// First (and per the API, the only meaningful) address.
    pub ip: Ipv4Addr,
    /// `ready` (unset means ready).
    pub ready: bool,
    /// `serving` (unset means the same as ready).
    pub serving: bool,
    /// `terminating` (unset means not terminating).
    pub terminating: bool,
    /// Node the endpoint runs on, if published.
    pub node_name: Option<String>,
}

/// The parts of an EndpointSlice the proxy uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceInfo {
    /// Published ports.
    pub ports: Vec<SlicePort>,
    /// Endpoints with an IPv4 address.
    pub endpoints: Vec<SliceEndpoint>,
}

/// Reduces an EndpointSlice; `None` if it is not IPv4 or names no Service.
pub fn slice_info(slice: &EndpointSlice) -> Option<(ServiceName, SliceInfo)> {
    if slice.address_type != "IPv4" {
        return None;
    }
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    let namespace = slice.metadata.namespace.clone().unwrap_or_default();
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|port| {
            Some(SlicePort {
                name: port.name.clone().unwrap_or_default(),
                port: port.port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0)?,
                protocol: Protocol::from_k8s(port.protocol.as_deref())?,
            })
        })
        .collect();
    let endpoints = slice
        .endpoints
        .iter()
        .filter_map(|endpoint| {
            let ip = endpoint.addresses.first()?.parse::<Ipv4Addr>().ok()?;
            let conditions = endpoint.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            Some(SliceEndpoint {
                ip,
                ready,
                serving: conditions.and_then(|c| c.serving).unwrap_or(ready),
                terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
                node_name: endpoint.node_name.clone(),
            })
        })
        .collect();
    Some((ServiceName::new(namespace, service.clone()), SliceInfo { ports, endpoints }))
}

/// Merges a Service with its slices into one state per service port.
/// `node_name` is this node (empty: unknown, every endpoint may be local).
pub fn service_ports<'a>(
    name: &ServiceName,
    service: &ServiceInfo,
    slices: impl Iterator<Item = &'a SliceInfo> + Clone,
    node_name: &str,
) -> Vec<(ServiceKey, ServicePortState)> {
    service
        .ports
        .iter()
        .map(|spec| {
            let key =
                ServiceKey { namespace: name.namespace.clone(), name: name.name.clone(), port_name: spec.name.clone() };
            let selected = select_endpoints(spec, slices.clone(), node_name);
            let local: BTreeSet<Ipv4Addr> =
                selected.iter().filter(|(_, local)| *local).map(|(endpoint, _)| endpoint.ip).collect();
            let state = ServicePortState {
                port: ServicePort { cluster_ip: service.cluster_ip, port: spec.port, protocol: spec.protocol },
                endpoints: selected.into_iter().map(|(endpoint, _)| endpoint).collect(),
                local_ips: local.into_iter().collect(),
            };
            (key, state)
        })
        .collect()
}

/// What the slices say about one endpoint, OR-merged across slices.
#[derive(Debug, Default)]
struct Candidate {
    ready: bool,
    serving_terminating: bool,
    local: bool,
}

/// Usable endpoints of one service port across all slices, each with
/// whether it may be on this node.
fn select_endpoints<'a>(
    spec: &ServicePortSpec,
    slices: impl Iterator<Item = &'a SliceInfo>,
    node_name: &str,
) -> Vec<(Endpoint, bool)> {
    let mut candidates: BTreeMap<Endpoint, Candidate> = BTreeMap::new();
    for slice in slices {
        let matching = slice.ports.iter().find(|port| port.name == spec.name && port.protocol == spec.protocol);
        let Some(port) = matching else { continue };
        for endpoint in &slice.endpoints {
            let entry = candidates.entry(Endpoint { ip: endpoint.ip, port: port.port }).or_default();
            entry.ready |= endpoint.ready;
            entry.serving_terminating |= endpoint.serving && endpoint.terminating;
            entry.local |= node_name.is_empty() || endpoint.node_name.as_deref().is_none_or(|node| node == node_name);
        }
    }
    let any_ready = candidates.values().any(|c| c.ready);
    candidates
        .into_iter()
        .filter(|(_, c)| if any_ready { c.ready } else { c.serving_terminating })
        .map(|(endpoint, c)| (endpoint, c.local))
        .collect()
}
