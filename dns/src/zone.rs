//! The cluster zone's data: slim copies of Services and EndpointSlices,
//! folded in from watch events, and the lookups the answerer needs.
//!
//! The zone is the only owner of this cache and does no I/O. Relists
//! (`Init` .. `InitDone`) are buffered and swapped in at once, so a
//! half-finished relist never answers NXDOMAIN for names that exist.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;

/// Label on an EndpointSlice naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Namespace and name of a Service.
pub type ServiceName = (String, String);
/// Namespace and name of an EndpointSlice.
type SliceName = (String, String);

/// A port of a Service or of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Port name (empty for a single unnamed port).
    pub name: String,
    /// `TCP`, `UDP` or `SCTP`, lowercased (`tcp`, ...).
    pub protocol: String,
    /// The port number.
    pub port: u16,
}

/// What DNS needs of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// A ClusterIP (also NodePort/LoadBalancer) Service: its cluster IPs.
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: names resolve to the ready endpoints.
    Headless,
    /// `type: ExternalName`: a CNAME to this name.
    ExternalName(String),
}

/// A Service as DNS sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// How its name resolves.
    pub kind: ServiceKind,
    /// Its ports (SRV records).
    pub ports: Vec<PortInfo>,
}

/// One endpoint of a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// `hostname` (lowercased), if the slice names one.
    pub hostname: Option<String>,
    /// `conditions.ready` (unset counts as ready, as the API says).
    pub ready: bool,
}

/// An EndpointSlice as DNS sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceInfo {
    /// Its ports.
    pub ports: Vec<PortInfo>,
    /// Its endpoints.
    pub endpoints: Vec<EndpointInfo>,
}

fn lower_protocol(protocol: Option<&str>) -> String {
    protocol.unwrap_or("TCP").to_ascii_lowercase()
}

/// The slim copy of a Service.
pub fn service_info(service: &Service) -> Option<ServiceInfo> {
    let spec = service.spec.as_ref()?;
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        ServiceKind::ExternalName(spec.external_name.clone()?.trim_end_matches('.').to_ascii_lowercase())
    } else if spec.cluster_ip.as_deref() == Some("None") {
        ServiceKind::Headless
    } else {
        let ips = match &spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips.clone(),
            _ => spec.cluster_ip.iter().cloned().collect(),
        };
        let ips: Vec<IpAddr> = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
        if ips.is_empty() {
            return None;
        }
        ServiceKind::ClusterIp(ips)
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(PortInfo {
                name: p.name.clone().unwrap_or_default().to_ascii_lowercase(),
                protocol: lower_protocol(p.protocol.as_deref()),
                port: u16::try_from(p.port).ok()?,
            })
        })
        .collect();
    Some(ServiceInfo { kind, ports })
}

/// The slim copy of an EndpointSlice and the Service it belongs to.
pub fn slice_info(slice: &EndpointSlice) -> Option<(ServiceName, SliceInfo)> {
    let namespace = slice.metadata.namespace.clone().unwrap_or_default();
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(PortInfo {
                name: p.name.clone().unwrap_or_default().to_ascii_lowercase(),
                protocol: lower_protocol(p.protocol.as_deref()),
                port: u16::try_from(p.port?).ok()?,
            })
        })
        .collect();
    let endpoints = slice
        .endpoints
        .iter()
        .map(|e| EndpointInfo {
            addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
            hostname: e.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
            ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
        })
        .collect();
    Some(((namespace, service), SliceInfo { ports, endpoints }))
}

fn object_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

/// The cache of Services and EndpointSlices the cluster zone answers from.
#[derive(Debug, Default)]
pub struct Zone {
    services: HashMap<ServiceName, ServiceInfo>,
    slices: HashMap<SliceName, (ServiceName, SliceInfo)>,
    by_service: HashMap<ServiceName, BTreeSet<SliceName>>,
    namespaces: HashMap<String, usize>,
    service_relist: Option<HashMap<ServiceName, ServiceInfo>>,
    slice_relist: Option<HashMap<SliceName, (ServiceName, SliceInfo)>>,
}

impl Zone {
    /// The Service `name` in `namespace` (both lowercase as in the API).
    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceInfo> {
        self.services.get(&(namespace.to_string(), name.to_string()))
    }

    /// Whether any Service lives in `namespace`.
    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.namespaces.contains_key(namespace)
    }

    /// Number of Services known.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// The slices of a Service, in name order.
    pub fn slices_of<'a>(&'a self, namespace: &str, name: &str) -> impl Iterator<Item = &'a SliceInfo> + 'a {
        self.by_service
            .get(&(namespace.to_string(), name.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|slice| self.slices.get(slice).map(|(_, info)| info))
    }

    /// Folds one Service watch event in.
    pub fn service_event(&mut self, event: Event<Service>) {
        match event {
            Event::Apply(service) => {
                let name = object_name(&service.metadata);
                match service_info(&service) {
                    Some(info) => self.set_service(name, info),
                    None => self.remove_service(&name),
                }
            }
            Event::Delete(service) => self.remove_service(&object_name(&service.metadata)),
            Event::Init => self.service_relist = Some(HashMap::new()),
            Event::InitApply(service) => {
                if let (Some(buffer), Some(info)) = (self.service_relist.as_mut(), service_info(&service)) {
                    buffer.insert(object_name(&service.metadata), info);
                }
            }
            Event::InitDone => {
                let listed = self.service_relist.take().unwrap_or_default();
                self.namespaces.clear();
                for (namespace, _) in listed.keys() {
                    *self.namespaces.entry(namespace.clone()).or_default() += 1;
                }
                self.services = listed;
            }
        }
    }

    /// Folds one EndpointSlice watch event in.
    pub fn slice_event(&mut self, event: Event<EndpointSlice>) {
        match event {
            Event::Apply(slice) => {
                let name = object_name(&slice.metadata);
                self.remove_slice(&name);
                if let Some(owned) = slice_info(&slice) {
                    self.by_service.entry(owned.0.clone()).or_default().insert(name.clone());
                    self.slices.insert(name, owned);
                }
            }
            Event::Delete(slice) => self.remove_slice(&object_name(&slice.metadata)),
            Event::Init => self.slice_relist = Some(HashMap::new()),
            Event::InitApply(slice) => {
                if let (Some(buffer), Some(owned)) = (self.slice_relist.as_mut(), slice_info(&slice)) {
                    buffer.insert(object_name(&slice.metadata), owned);
                }
            }
            Event::InitDone => {
                let listed = self.slice_relist.take().unwrap_or_default();
                self.by_service.clear();
                for (name, (service, _)) in &listed {
                    self.by_service.entry(service.clone()).or_default().insert(name.clone());
                }
                self.slices = listed;
            }
        }
    }

    fn set_service(&mut self, name: ServiceName, info: ServiceInfo) {
        let namespace = name.0.clone();
        if self.services.insert(name, info).is_none() {
            *self.namespaces.entry(namespace).or_default() += 1;
        }
    }

    fn remove_service(&mut self, name: &ServiceName) {
        if self.services.remove(name).is_some() {
            if let Some(count) = self.namespaces.get_mut(&name.0) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.namespaces.remove(&name.0);
                }
            }
        }
    }

    fn remove_slice(&mut self, name: &SliceName) {
        let Some((service, _)) = self.slices.remove(name) else {
            return;
        };
        if let Some(names) = self.by_service.get_mut(&service) {
            names.remove(name);
            if names.is_empty() {
                self.by_service.remove(&service);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
