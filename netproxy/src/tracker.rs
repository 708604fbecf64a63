//! The change tracker: folds Service and EndpointSlice watch events into
//! slim per-service copies and remembers which Services changed since the
//! last sync. It is the only writer of that cache and does no I/O; the sync
//! loop drains [`ChangeTracker::take_dirty`] and asks for the new
//! per-port state of each dirty Service.
//!
//! Relists (`Init` .. `InitDone`) are buffered and swapped in at once, so a
//! half-finished relist never looks like mass deletion.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;

use crate::model::{self, ServiceInfo, ServiceKey, ServiceName, ServicePortState, SliceInfo};

/// Namespace and name of an EndpointSlice.
type SliceName = (String, String);

/// A slice's owning Service and content.
type OwnedSlice = (ServiceName, SliceInfo);

/// Cache of proxied Services and their slices, plus the dirty set.
#[derive(Debug, Default)]
pub struct ChangeTracker {
    node_name: String,
    services: HashMap<ServiceName, ServiceInfo>,
    slices: HashMap<SliceName, OwnedSlice>,
    by_service: HashMap<ServiceName, BTreeSet<SliceName>>,
    dirty: BTreeSet<ServiceName>,
    service_relist: Option<HashMap<ServiceName, ServiceInfo>>,
    slice_relist: Option<HashMap<SliceName, OwnedSlice>>,
    services_listed: bool,
    slices_listed: bool,
}

fn service_name(service: &Service) -> ServiceName {
    ServiceName::new(
        service.metadata.namespace.clone().unwrap_or_default(),
        service.metadata.name.clone().unwrap_or_default(),
    )
}

fn slice_name(slice: &EndpointSlice) -> SliceName {
    (slice.metadata.namespace.clone().unwrap_or_default(), slice.metadata.name.clone().unwrap_or_default())
}

impl ChangeTracker {
    /// An empty tracker for node `node_name` (empty: unknown) that has not
    /// seen either initial list.
    pub fn new(node_name: &str) -> Self {
        Self { node_name: node_name.into(), ..Self::default() }
    }

    /// Whether both initial lists completed, i.e. a sync would not
    /// publish a partial view.
    pub fn is_synced(&self) -> bool {
        self.services_listed && self.slices_listed
    }

    /// Whether any Service changed since the last [`Self::take_dirty`].
    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Marks every known Service dirty (periodic full recompute).
    pub fn mark_all_dirty(&mut self) {
        self.dirty.extend(self.services.keys().cloned());
        self.dirty.extend(self.by_service.keys().cloned());
    }

    /// Takes the set of Services changed since the last call.
    pub fn take_dirty(&mut self) -> BTreeSet<ServiceName> {
        std::mem::take(&mut self.dirty)
    }

    /// The slim copy of one proxied Service.
    pub fn service_info(&self, name: &ServiceName) -> Option<&ServiceInfo> {
        self.services.get(name)
    }

    /// Current per-port state of one Service (empty if it is not proxied).
    pub fn service_ports(&self, name: &ServiceName) -> Vec<(ServiceKey, ServicePortState)> {
        let Some(info) = self.services.get(name) else {
            return Vec::new();
        };
        let slices: Vec<&SliceInfo> = self
            .by_service
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|slice| self.slices.get(slice).map(|(_, info)| info))
            .collect();
        model::service_ports(name, info, slices.iter().copied(), &self.node_name)
    }

    /// Folds one Service watch event in.
    pub fn service_event(&mut self, event: Event<Service>) {
        match event {
            Event::Apply(service) => {
                let name = service_name(&service);
                match model::service_info(&service) {
                    Some(info) => self.set_service(name, info),
                    None => self.remove_service(&name),
                }
            }
            Event::Delete(service) => self.remove_service(&service_name(&service)),
            Event::Init => self.service_relist = Some(HashMap::new()),
            Event::InitApply(service) => {
                let info = model::service_info(&service);
                if let (Some(buffer), Some(info)) = (self.service_relist.as_mut(), info) {
                    buffer.insert(service_name(&service), info);
                }
            }
            Event::InitDone => {
                let listed = self.service_relist.take().unwrap_or_default();
                self.dirty.extend(self.services.keys().cloned());
                self.dirty.extend(listed.keys().cloned());
                self.services = listed;
                self.services_listed = true;
            }
        }
    }

    /// Folds one EndpointSlice watch event in.
    pub fn slice_event(&mut self, event: Event<EndpointSlice>) {
        match event {
            Event::Apply(slice) => {
                let name = slice_name(&slice);
                match model::slice_info(&slice) {
                    Some(owned) => self.set_slice(name, owned),
                    None => self.remove_slice(&name),
                }
            }
            Event::Delete(slice) => self.remove_slice(&slice_name(&slice)),
            Event::Init => self.slice_relist = Some(HashMap::new()),
            Event::InitApply(slice) => {
                let owned = model::slice_info(&slice);
                if let (Some(buffer), Some(owned)) = (self.slice_relist.as_mut(), owned) {
                    buffer.insert(slice_name(&slice), owned);
                }
            }
            Event::InitDone => {
                let listed = self.slice_relist.take().unwrap_or_default();
                self.dirty.extend(self.by_service.keys().cloned());
                self.by_service.clear();
                for (name, (service, _)) in &listed {
                    self.dirty.insert(service.clone());
                    self.by_service.entry(service.clone()).or_default().insert(name.clone());
                }
                self.slices = listed;
                self.slices_listed = true;
            }
        }
    }

    fn set_service(&mut self, name: ServiceName, info: ServiceInfo) {
        if self.services.get(&name) != Some(&info) {
            self.dirty.insert(name.clone());
            self.services.insert(name, info);
        }
    }

    fn remove_service(&mut self, name: &ServiceName) {
        if self.services.remove(name).is_some() {
            self.dirty.insert(name.clone());
        }
    }

    fn set_slice(&mut self, name: SliceName, owned: OwnedSlice) {
        if self.slices.get(&name) == Some(&owned) {
            return;
        }
        self.remove_slice(&name);
        self.dirty.insert(owned.0.clone());
        self.by_service.entry(owned.0.clone()).or_default().insert(name.clone());
        self.slices.insert(name, owned);
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
        self.dirty.insert(service);
    }

    /// Number of slices currently attributed to `service`.
    pub fn slice_count(&self, service: &ServiceName) -> usize {
        self.by_service.get(service).map_or(0, BTreeSet::len)
    }
}

#[cfg(test)]
mod tests;
