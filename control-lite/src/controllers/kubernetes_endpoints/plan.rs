//! The pure half of the `kubernetes` endpoints reconciler: what the
//! `default/kubernetes` EndpointSlice and Endpoints must say for a set of
//! apiserver addresses, and what to do about what is stored.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Namespace and name of the Service, its EndpointSlice and its Endpoints.
pub const NAMESPACE: &str = "default";
/// See [`NAMESPACE`].
pub const NAME: &str = "kubernetes";
/// The port's name (the Service's port is named the same).
pub const PORT_NAME: &str = "https";
/// Label naming the Service of a slice (what the proxy and DNS join on).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming a slice's writer (the endpointslice controller skips others).
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This reconciler's value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "bosun-apiserver";
/// On the Endpoints: the endpointslice mirroring must not copy it (the
/// slice is written here).
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";

/// What the `kubernetes` Service's endpoints must list: every live
/// apiserver's advertise address (one family, the slice's address type)
/// and the port they serve on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    addresses: BTreeSet<IpAddr>,
    port: u16,
}

impl Desired {
    /// The addresses of the family of the lowest one (IPv4 sorts first), so
    /// one slice holds them all; `None` without addresses or port.
    pub fn new(addresses: impl IntoIterator<Item = IpAddr>, port: u16) -> Option<Desired> {
        let all: BTreeSet<IpAddr> = addresses.into_iter().filter(|ip| !ip.is_unspecified()).collect();
        let v4 = all.first()?.is_ipv4();
        let addresses = all.into_iter().filter(|ip| ip.is_ipv4() == v4).collect();
        (port != 0).then_some(Desired { addresses, port })
    }

    fn address_type(&self) -> &'static str {
        match self.addresses.first() {
            Some(IpAddr::V6(_)) => "IPv6",
            _ => "IPv4",
        }
    }

    fn ips(&self) -> Vec<String> {
        self.addresses.iter().map(IpAddr::to_string).collect()
    }

    /// The EndpointSlice this apiserver set should have.
    pub fn slice(&self) -> EndpointSlice {
        EndpointSlice {
            metadata: meta(BTreeMap::from([
                (SERVICE_NAME_LABEL.to_string(), NAME.to_string()),
                (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
            ])),
            address_type: self.address_type().to_string(),
            endpoints: self
                .ips()
                .into_iter()
                .map(|ip| Endpoint {
                    addresses: vec![ip],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        serving: Some(true),
                        terminating: Some(false),
                    }),
                    ..Endpoint::default()
                })
                .collect(),
            ports: Some(vec![SlicePort {
                name: Some(PORT_NAME.to_string()),
                port: Some(i32::from(self.port)),
                protocol: Some("TCP".to_string()),
                app_protocol: None,
            }]),
        }
    }

    /// The Endpoints this apiserver set should have.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            metadata: meta(BTreeMap::from([(SKIP_MIRROR_LABEL.to_string(), "true".to_string())])),
            subsets: Some(vec![EndpointSubset {
                addresses: Some(
                    self.ips().into_iter().map(|ip| EndpointAddress { ip, ..EndpointAddress::default() }).collect(),
                ),
                not_ready_addresses: None,
                ports: Some(vec![EndpointPort {
                    name: Some(PORT_NAME.to_string()),
                    port: i32::from(self.port),
                    protocol: Some("TCP".to_string()),
                    app_protocol: None,
                }]),
            }]),
        }
    }
}

fn meta(labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(NAME.to_string()),
        namespace: Some(NAMESPACE.to_string()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// What to do about one stored object.
#[derive(Debug, Clone, PartialEq)]
pub enum Action<T> {
    /// It says what it should.
    Keep,
    /// It is missing: create this.
    Create(T),
    /// It says something else: replace it with this (the stored
    /// metadata, resourceVersion included, with the labels added).
    Update(T),
    /// Its immutable address type is wrong: delete it, then create this.
    Recreate(T),
}

/// The labels of `stored` with `wanted`'s added (an administrator's own
/// labels stay); `None` if nothing is missing.
fn merged_labels(stored: &ObjectMeta, wanted: &ObjectMeta) -> Option<BTreeMap<String, String>> {
    let mut labels = stored.labels.clone().unwrap_or_default();
    let mut changed = false;
    for (key, value) in wanted.labels.iter().flatten() {
        if labels.get(key) != Some(value) {
            labels.insert(key.clone(), value.clone());
            changed = true;
        }
    }
    changed.then_some(labels)
}

/// One published port: name, number, protocol (absent reads as TCP).
#[derive(Debug, PartialEq, Eq)]
struct Port {
    name: Option<String>,
    port: Option<i32>,
    protocol: String,
}

impl Port {
    fn new(name: &Option<String>, port: Option<i32>, protocol: &Option<String>) -> Port {
        Port { name: name.clone(), port, protocol: protocol.clone().unwrap_or_else(|| "TCP".into()) }
    }
}

/// A slice reduced to what matters: per endpoint its addresses and whether
/// it is ready (absent counts as ready, as for consumers), and the ports.
#[derive(Debug, PartialEq, Eq)]
struct SliceContent {
    endpoints: Vec<(Vec<String>, bool)>,
    ports: Vec<Port>,
}

fn slice_content(slice: &EndpointSlice) -> SliceContent {
    let mut endpoints: Vec<_> = slice
        .endpoints
        .iter()
        .map(|e| (e.addresses.clone(), e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)))
        .collect();
    endpoints.sort();
    let ports = slice.ports.iter().flatten().map(|p| Port::new(&p.name, p.port, &p.protocol)).collect();
    SliceContent { endpoints, ports }
}

/// What to do so the stored slice (`None`: none) says `desired`.
pub fn plan_slice(desired: &Desired, stored: Option<&EndpointSlice>) -> Action<EndpointSlice> {
    let want = desired.slice();
    let Some(stored) = stored else {
        return Action::Create(want);
    };
    if stored.address_type != want.address_type {
        return Action::Recreate(want);
    }
    let labels = merged_labels(&stored.metadata, &want.metadata);
    if labels.is_none() && slice_content(stored) == slice_content(&want) {
        return Action::Keep;
    }
    let mut fixed = stored.clone();
    fixed.metadata.labels = labels.or(fixed.metadata.labels);
    fixed.endpoints = want.endpoints;
    fixed.ports = want.ports;
    Action::Update(fixed)
}

/// One Endpoints subset reduced to sorted ready and not-ready addresses and its ports.
#[derive(Debug, PartialEq, Eq)]
struct SubsetContent {
    ready: Vec<String>,
    not_ready: Vec<String>,
    ports: Vec<Port>,
}

fn endpoints_content(endpoints: &Endpoints) -> Vec<SubsetContent> {
    let ips = |addresses: &Option<Vec<EndpointAddress>>| {
        let mut ips: Vec<String> = addresses.iter().flatten().map(|a| a.ip.clone()).collect();
        ips.sort();
        ips
    };
    endpoints
        .subsets
        .iter()
        .flatten()
        .map(|s| SubsetContent {
            ready: ips(&s.addresses),
            not_ready: ips(&s.not_ready_addresses),
            ports: s.ports.iter().flatten().map(|p| Port::new(&p.name, Some(p.port), &p.protocol)).collect(),
        })
        .collect()
}

/// What to do so the stored Endpoints (`None`: none) say `desired`.
pub fn plan_endpoints(desired: &Desired, stored: Option<&Endpoints>) -> Action<Endpoints> {
    let want = desired.endpoints();
    let Some(stored) = stored else {
        return Action::Create(want);
    };
    let labels = merged_labels(&stored.metadata, &want.metadata);
    if labels.is_none() && endpoints_content(stored) == endpoints_content(&want) {
        return Action::Keep;
    }
    let mut fixed = stored.clone();
    fixed.metadata.labels = labels.or(fixed.metadata.labels);
    fixed.subsets = want.subsets;
    Action::Update(fixed)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
