//! Rendering the EndpointSlice content of a Service from its pods. Pure.
//!
//! One slice per Service. Named target ports are resolved per pod; the
//! slice carries the number found on the first pod (by name) that declares
//! the port, and pods that do not declare it still appear (upstream would
//! split such pods into another slice; not needed for our workloads).

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::controllers::selector;

/// Label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller managing a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Our value of `MANAGED_BY_LABEL`.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// The selector of a Service that gets managed endpoints, if any.
pub fn service_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// The slice `svc` should have given the pods of its namespace: labels,
/// owner, address type, ports and endpoints (no name; callers keep the
/// existing one or use `generateName`). `None` for Services without a
/// selector.
pub fn render(svc: &Service, pods: &[Arc<Pod>]) -> Option<EndpointSlice> {
    let wanted = service_selector(svc)?;
    let spec = svc.spec.as_ref()?;
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut members: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            wanted.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .filter(|p| !matches!(selector::phase(p), "Succeeded" | "Failed"))
        .filter(|p| pod_ip(p).is_some())
        .collect();
    members.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|port| {
            let number = resolve_port(port, &members)?;
            Some(EndpointPort {
                name: Some(port.name.clone().unwrap_or_default()),
                port: Some(number),
                protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".to_string())),
                app_protocol: port.app_protocol.clone(),
            })
        })
        .collect();
    let endpoints = members
        .iter()
        .filter_map(|p| {
            let terminating = p.metadata.deletion_timestamp.is_some();
            let serving = selector::is_ready(p) || publish_not_ready;
            Some(Endpoint {
                addresses: vec![pod_ip(p)?.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(serving && !terminating),
                    serving: Some(serving),
                    terminating: Some(terminating),
                }),
                node_name: p.spec.as_ref().and_then(|s| s.node_name.clone()),
                target_ref: Some(ObjectReference {
                    kind: Some("Pod".to_string()),
                    name: p.metadata.name.clone(),
                    namespace: p.metadata.namespace.clone(),
                    uid: p.metadata.uid.clone(),
                    ..ObjectReference::default()
                }),
                ..Endpoint::default()
            })
        })
        .collect();
    let svc_name = svc.metadata.name.clone().unwrap_or_default();
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.to_string(), svc_name.clone());
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
    Some(EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{svc_name}-")),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![selector::controller_ref(
                "v1",
                "Service",
                &svc_name,
                svc.metadata.uid.as_deref().unwrap_or_default(),
            )]),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".to_string(),
        endpoints,
        ports: Some(ports),
    })
}

fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).filter(|ip| !ip.is_empty() && !ip.contains(':'))
}

/// Target port number of `port`: a number, the port itself if unset, or a
/// named container port looked up on the pods (first pod declaring it).
/// Numbers outside 1..=65535 resolve to nothing (the port is left out).
fn resolve_port(port: &ServicePort, pods: &[&Arc<Pod>]) -> Option<i32> {
    let number = match &port.target_port {
        None => port.port,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(name)) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => pods.iter().find_map(|p| named_port(p, name))?,
        },
    };
    VALID_PORTS.contains(&number).then_some(number)
}

/// TCP/UDP port numbers.
const VALID_PORTS: std::ops::RangeInclusive<i32> = 1..=65535;

fn named_port(pod: &Pod, name: &str) -> Option<i32> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| p.container_port)
}

/// True if `existing` already carries `desired`'s content (labels,
/// address type, ports, endpoints), so no write is needed.
pub fn same_content(existing: &EndpointSlice, desired: &EndpointSlice) -> bool {
    existing.address_type == desired.address_type
        && existing.endpoints == desired.endpoints
        && existing.ports.as_deref().unwrap_or_default() == desired.ports.as_deref().unwrap_or_default()
        && existing.metadata.labels == desired.metadata.labels
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
