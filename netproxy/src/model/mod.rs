//! The proxy's pure model: what each Service port should balance to.
//!
//! API objects are first reduced to slim, comparable copies ([`ServiceInfo`],
//! [`SliceInfo`]) so the change tracker can tell real changes from noise
//! (status updates, managed-fields churn). [`service_ports`] then merges a
//! Service with all of its EndpointSlices into one [`ServicePortState`] per
//! service port. Nothing here does I/O.
//!
//! Rules (following kube-proxy):
//! - only IPv4; a Service port is reachable on its ClusterIP, on its
//!   `nodePort` (types NodePort and LoadBalancer), on the Service's
//!   `externalIPs` and on its `status.loadBalancer.ingress[].ip` (type
//!   LoadBalancer, not `ipMode: Proxy`), the last restricted to
//!   `loadBalancerSourceRanges` when set;
//! - headless (`None`) and `ExternalName` services are not proxied;
//! - services labelled `service.kubernetes.io/service-proxy-name` belong to
//!   another proxy and are skipped;
//! - a service port matches the slice port with the same name and protocol;
//! - ready endpoints are used; when none is ready, serving-and-terminating
//!   endpoints are used instead (graceful termination fallback);
//! - with `externalTrafficPolicy: Local` the node port, external and LB
//!   IPs, and with `internalTrafficPolicy: Local` the ClusterIP, use only
//!   the endpoints whose `nodeName` is this node (same fallback rule among
//!   them); with none, that traffic is dropped;
//! - `sessionAffinity: ClientIP` pins a client to an endpoint for the
//!   configured timeout (default 3 h, at most a day);
//! - an endpoint listed by several slices is used once (ready if any copy is);
//! - an endpoint may hairpin (reach itself through its service) only if it
//!   runs on this node: its `nodeName` is this node's, or unknown.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::table::Ipv4Cidr;

mod parse;
#[cfg(test)]
mod tests;

pub use parse::{
    disjoint, service_info, slice_info, ServiceInfo, ServicePortSpec, SliceEndpoint, SliceInfo, SlicePort, NO_SOURCE,
};

/// Label on an EndpointSlice naming the Service it belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label on a Service that hands it to a different proxy implementation.
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";

/// Transport protocol of a service port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (the Kubernetes default).
    #[default]
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

impl Default for ServicePort {
    fn default() -> Self {
        Self { cluster_ip: Ipv4Addr::UNSPECIFIED, port: 0, protocol: Protocol::Tcp }
    }
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicePortState {
    /// Where clients connect.
    pub port: ServicePort,
    /// Endpoints to balance to, sorted and unique; empty means "reject".
    pub endpoints: Vec<Endpoint>,
    /// IPs of those endpoints that may be on this node (hairpin candidates),
    /// sorted and unique.
    pub local_ips: Vec<Ipv4Addr>,
    /// Endpoints known to run on this node (EndpointSlice `nodeName`), by
    /// the same ready / terminating rule; what `Local` policies use.
    pub node_endpoints: Vec<Endpoint>,
    /// `internalTrafficPolicy: Local`: the ClusterIP balances over
    /// `node_endpoints` only.
    pub internal_local: bool,
    /// `sessionAffinity: ClientIP` timeout (seconds): a client keeps the
    /// endpoint it first got, per frontend.
    pub affinity_timeout: Option<u32>,
    /// Where else clients connect: node port, external and LB IPs.
    pub external: ExternalAccess,
}

/// The ways a service port is reachable from outside the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalAccess {
    /// `nodePort`, answered on the node's node-port addresses.
    pub node_port: Option<u16>,
    /// The Service's `externalIPs`, sorted and unique.
    pub external_ips: Vec<Ipv4Addr>,
    /// Load-balancer ingress IPs, sorted and unique.
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `loadBalancerSourceRanges`, disjoint and sorted; empty: open to all.
    pub source_ranges: Vec<Ipv4Cidr>,
    /// `externalTrafficPolicy: Local`: these frontends balance over
    /// `node_endpoints` only and keep the client's source address.
    pub local: bool,
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
            let state = ServicePortState {
                port: ServicePort { cluster_ip: service.cluster_ip, port: spec.port, protocol: spec.protocol },
                endpoints: selected.all,
                local_ips: selected.maybe_local_ips,
                node_endpoints: selected.on_node,
                internal_local: service.internal_local,
                affinity_timeout: service.affinity_timeout,
                external: ExternalAccess {
                    node_port: spec.node_port,
                    external_ips: service.external_ips.clone(),
                    load_balancer_ips: service.load_balancer_ips.clone(),
                    source_ranges: service.source_ranges.clone(),
                    local: service.external_local,
                },
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
    /// May be on this node (hairpin candidate): on it or of unknown node.
    maybe_local: bool,
    /// Known to be on this node (traffic policy `Local`).
    on_node: bool,
}

/// The usable endpoints of one service port, cluster-wide and on this node.
#[derive(Debug, Default)]
struct Selected {
    /// Ready endpoints, or serving-and-terminating ones if none is ready.
    all: Vec<Endpoint>,
    /// The same rule applied to the endpoints on this node only.
    on_node: Vec<Endpoint>,
    /// IPs of `all` that may be on this node.
    maybe_local_ips: Vec<Ipv4Addr>,
}

/// Ready endpoints of `candidates`, or serving-and-terminating ones if
/// none is ready (graceful termination fallback).
fn usable<'a>(candidates: impl Iterator<Item = (&'a Endpoint, &'a Candidate)> + Clone) -> Vec<&'a Endpoint> {
    let any_ready = candidates.clone().any(|(_, c)| c.ready);
    candidates.filter(|(_, c)| if any_ready { c.ready } else { c.serving_terminating }).map(|(e, _)| e).collect()
}

/// Usable endpoints of one service port across all slices.
fn select_endpoints<'a>(
    spec: &ServicePortSpec,
    slices: impl Iterator<Item = &'a SliceInfo>,
    node_name: &str,
) -> Selected {
    let mut candidates: BTreeMap<Endpoint, Candidate> = BTreeMap::new();
    for slice in slices {
        let matching = slice.ports.iter().find(|port| port.name == spec.name && port.protocol == spec.protocol);
        let Some(port) = matching else { continue };
        for endpoint in &slice.endpoints {
            let entry = candidates.entry(Endpoint { ip: endpoint.ip, port: port.port }).or_default();
            entry.ready |= endpoint.ready;
            entry.serving_terminating |= endpoint.serving && endpoint.terminating;
            let on_node = !node_name.is_empty() && endpoint.node_name.as_deref() == Some(node_name);
            entry.on_node |= on_node;
            entry.maybe_local |= on_node || node_name.is_empty() || endpoint.node_name.is_none();
        }
    }
    let all = usable(candidates.iter());
    let maybe_local: BTreeSet<Ipv4Addr> =
        all.iter().filter(|e| candidates.get(e).is_some_and(|c| c.maybe_local)).map(|e| e.ip).collect();
    Selected {
        on_node: usable(candidates.iter().filter(|(_, c)| c.on_node)).into_iter().copied().collect(),
        all: all.into_iter().copied().collect(),
        maybe_local_ips: maybe_local.into_iter().collect(),
    }
}
