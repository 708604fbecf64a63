//! Reduces API objects to the slim, comparable copies the proxy keeps
//! ([`ServiceInfo`], [`SliceInfo`]): what is not used is dropped, so that
//! status updates and managed-fields churn compare equal.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Service, ServiceSpec, ServiceStatus};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::{Protocol, ServiceName, SERVICE_NAME_LABEL, SERVICE_PROXY_NAME_LABEL};
use crate::table::Ipv4Cidr;

/// One port as declared by a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortSpec {
    /// Port name ("" when unnamed).
    pub name: String,
    /// Service port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
    /// Node port (types NodePort and LoadBalancer only).
    pub node_port: Option<u16>,
}

/// The parts of a Service the proxy uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// IPv4 ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// Declared ports with a usable protocol and number.
    pub ports: Vec<ServicePortSpec>,
    /// `externalIPs` (IPv4), sorted and unique.
    pub external_ips: Vec<Ipv4Addr>,
    /// Load-balancer ingress IPs (IPv4, type LoadBalancer), sorted and unique.
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `loadBalancerSourceRanges`, disjoint and sorted (see [`disjoint`]).
    pub source_ranges: Vec<Ipv4Cidr>,
    /// `externalTrafficPolicy: Local` (only with external frontends).
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `healthCheckNodePort` (type LoadBalancer with external policy Local).
    pub health_check_node_port: Option<u16>,
    /// `sessionAffinity: ClientIP`: its timeout in seconds.
    pub affinity_timeout: Option<u32>,
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
    let exposes_node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|port| {
            Some(ServicePortSpec {
                name: port.name.clone().unwrap_or_default(),
                port: u16::try_from(port.port).ok().filter(|p| *p != 0)?,
                protocol: Protocol::from_k8s(port.protocol.as_deref())?,
                node_port: port.node_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0 && exposes_node_ports),
            })
        })
        .collect();
    Some(ServiceInfo {
        cluster_ip,
        ports,
        external_ips: sorted_ipv4(spec.external_ips.iter().flatten().map(String::as_str)),
        load_balancer_ips: load_balancer_ips(spec, service.status.as_ref()),
        source_ranges: source_ranges(spec),
        external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
        internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
        health_check_node_port: spec
            .health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0 && exposes_node_ports),
        affinity_timeout: affinity_timeout(spec),
    })
}

/// Upstream's default `sessionAffinityConfig.clientIP.timeoutSeconds`.
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;
/// Upstream's largest allowed affinity timeout (one day).
pub const MAX_AFFINITY_TIMEOUT: u32 = 86_400;

/// The ClientIP affinity timeout, clamped to 1 s ..= one day.
fn affinity_timeout(spec: &ServiceSpec) -> Option<u32> {
    if spec.session_affinity.as_deref() != Some("ClientIP") {
        return None;
    }
    let config = spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref());
    let seconds = config
        .and_then(|c| c.timeout_seconds)
        .map_or(DEFAULT_AFFINITY_TIMEOUT, |t| u32::try_from(t).unwrap_or(1).clamp(1, MAX_AFFINITY_TIMEOUT));
    Some(seconds)
}

/// The IPv4 addresses among `values`, sorted and unique.
fn sorted_ipv4<'a>(values: impl Iterator<Item = &'a str>) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = values.filter_map(|value| value.parse().ok()).collect();
    ips.sort_unstable();
    ips.dedup();
    ips
}

/// Ingress IPs of a LoadBalancer Service; an ingress with `ipMode: Proxy`
/// must reach the load balancer itself (as upstream), so it is not routed.
fn load_balancer_ips(spec: &ServiceSpec, status: Option<&ServiceStatus>) -> Vec<Ipv4Addr> {
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return Vec::new();
    }
    let ingress = status.and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
    sorted_ipv4(
        ingress
            .into_iter()
            .flatten()
            .filter(|ingress| ingress.ip_mode.as_deref() != Some("Proxy"))
            .filter_map(|ingress| ingress.ip.as_deref()),
    )
}

/// A source range no packet comes from (the limited broadcast address).
pub const NO_SOURCE: Ipv4Cidr = Ipv4Cidr::host(Ipv4Addr::BROADCAST);

/// `loadBalancerSourceRanges` as disjoint CIDRs. Unparsable entries are
/// skipped (the apiserver validates them); if every entry is unparsable
/// firewall stays closed rather than open: the list is then only
/// [`NO_SOURCE`].
fn source_ranges(spec: &ServiceSpec) -> Vec<Ipv4Cidr> {
    let declared = spec.load_balancer_source_ranges.as_deref().unwrap_or_default();
    let parsed: Vec<Ipv4Cidr> = declared.iter().filter_map(|range| range.trim().parse().ok()).collect();
    if parsed.is_empty() && !declared.is_empty() {
        return vec![NO_SOURCE];
    }
    disjoint(parsed)
}

/// Drops every CIDR that another one covers (two CIDRs either nest or are
/// disjoint), so the result is sorted and pairwise disjoint: nft's interval
/// sets refuse overlapping elements.
pub fn disjoint(mut cidrs: Vec<Ipv4Cidr>) -> Vec<Ipv4Cidr> {
    cidrs.sort_unstable_by_key(|cidr| (cidr.network(), cidr.prefix()));
    let mut kept: Vec<Ipv4Cidr> = Vec::with_capacity(cidrs.len());
    for cidr in cidrs {
        if kept.last().is_none_or(|last| !last.contains(cidr.network())) {
            kept.push(cidr);
        }
    }
    kept
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
