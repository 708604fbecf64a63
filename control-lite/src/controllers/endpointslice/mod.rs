//! EndpointSlice controller: keeps one `discovery.k8s.io/v1` EndpointSlice
//! per selector Service listing the IPs of its pods.
//!
//! Owns: the informers (Services, Pods, EndpointSlices) and writing what
//! `render::render` computes: create via `generateName`, replace in place
//! only when content changed, delete duplicates and slices of deleted
//! Services. Must not: touch slices other controllers manage.

pub mod render;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::informer;
use super::queue::{self, ObjectKey, Retry, WorkQueue};
use super::{is_conflict, is_not_found};

const RESYNC: Duration = Duration::from_secs(30);
/// How long a slice we created is looked up by name while the watch lags.
const CREATED_TTL: Duration = Duration::from_secs(30);

/// A failed EndpointSlice write.
#[derive(Debug, thiserror::Error)]
#[error("{action} endpointslice {slice} of service {service}")]
pub struct Error {
    action: &'static str,
    slice: String,
    service: ObjectKey,
    #[source]
    source: kube::Error,
}

struct Ctx {
    client: Client,
    services: Store<Service>,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
    /// Slices created by us, by Service, until the watch shows them.
    created: HashMap<ObjectKey, (String, Instant)>,
}

fn managed_service(slice: &EndpointSlice) -> Option<ObjectKey> {
    let labels = slice.metadata.labels.as_ref()?;
    if labels.get(render::MANAGED_BY_LABEL).map(String::as_str) != Some(render::MANAGED_BY) {
        return None;
    }
    Some(ObjectKey {
        namespace: slice.namespace().unwrap_or_default(),
        name: labels.get(render::SERVICE_NAME_LABEL)?.clone(),
    })
}

/// Runs the EndpointSlice controller until `token` is cancelled.
pub async fn run(client: Client, token: CancellationToken) {
    let queue: WorkQueue<ObjectKey> = WorkQueue::new(token.clone());
    let services: Store<Service> = {
        let queue = queue.clone();
        informer::spawn(Api::all(client.clone()), token.clone(), move |change| {
            if let Some((svc, _)) = change {
                queue.add(ObjectKey::of(&svc.metadata));
            }
        })
    };
    let pods: Store<Pod> = {
        let (queue, services) = (queue.clone(), services.clone());
        informer::spawn(Api::all(client.clone()), token.clone(), move |change| {
            let Some((pod, _)) = change else { return };
            let namespace = pod.namespace();
            for svc in services.state() {
                if svc.namespace() == namespace && render::service_selector(&svc).is_some() {
                    queue.add(ObjectKey::of(&svc.metadata));
                }
            }
        })
    };
    let slices: Store<EndpointSlice> = {
        let queue = queue.clone();
        informer::spawn(Api::all(client.clone()), token.clone(), move |change| {
            if let Some(key) = change.and_then(|(slice, _)| managed_service(slice)) {
                queue.add(key);
            }
        })
    };
    for ready in [
        informer::wait_ready(&services, &token).await,
        informer::wait_ready(&pods, &token).await,
        informer::wait_ready(&slices, &token).await,
    ] {
        if !ready {
            return;
        }
    }
    queue::spawn_resync(queue.clone(), services.clone(), RESYNC, token.clone());
    let mut ctx = Ctx { client, services, pods, slices, created: HashMap::new() };
    let mut retry = Retry::new("endpointslice");
    while let Some(key) = queue.next().await {
        let result = ctx.reconcile(&key).await;
        retry.finish(&queue, key, result);
    }
}

impl Ctx {
    async fn reconcile(&mut self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &key.namespace);
        let err = |action: &'static str, slice: &str| {
            let (slice, service) = (slice.to_string(), key.clone());
            move |source| Error { action, slice, service, source }
        };
        let mut existing: Vec<Arc<EndpointSlice>> =
            self.slices.state().into_iter().filter(|s| managed_service(s).as_ref() == Some(key)).collect();
        existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        if existing.is_empty() {
            if let Some((name, at)) = self.created.get(key) {
                if at.elapsed() < CREATED_TTL {
                    match api.get(name).await {
                        Ok(slice) => existing.push(Arc::new(slice)),
                        Err(e) if is_not_found(&e) => {}
                        Err(source) => return Err(err("reading", name)(source)),
                    }
                }
            }
        } else {
            self.created.remove(key);
        }
        let svc = self.services.get(&ObjectRef::new(&key.name).within(&key.namespace));
        let pods: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(key.namespace.as_str()))
            .collect();
        let desired = svc.as_deref().and_then(|svc| render::render(svc, &pods));
        let (keep, extra) = match &desired {
            // The slice must belong to this incarnation of the Service.
            Some(_) => {
                let uid = svc.as_ref().and_then(|s| s.uid());
                let (mine, stale): (Vec<_>, Vec<_>) = existing.into_iter().partition(|s| {
                    super::selector::controller_of(&s.metadata).is_some_and(|o| Some(&o.uid) == uid.as_ref())
                });
                let mut mine = mine.into_iter();
                (mine.next(), mine.chain(stale).collect::<Vec<_>>())
            }
            None => (None, existing),
        };
        for slice in extra {
            let name = slice.name_any();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(source) => return Err(err("deleting", &name)(source)),
            }
        }
        let Some(desired) = desired else {
            self.created.remove(key);
            return Ok(None);
        };
        match keep {
            Some(current) if render::same_content(&current, &desired) => {}
            Some(current) => {
                let name = current.name_any();
                let mut updated = (*current).clone();
                updated.metadata.labels = desired.metadata.labels;
                updated.address_type = desired.address_type;
                updated.endpoints = desired.endpoints;
                updated.ports = desired.ports;
                match api.replace(&name, &PostParams::default(), &updated).await {
                    Ok(_) => {}
                    // Stale copy: the watch will bring the new version and requeue.
                    Err(e) if is_conflict(&e) => return Ok(Some(Duration::from_millis(200))),
                    Err(source) => return Err(err("updating", &name)(source)),
                }
            }
            None => {
                let created = api
                    .create(&PostParams::default(), &desired)
                    .await
                    .map_err(err("creating", &format!("{}-*", key.name)))?;
                self.created.insert(key.clone(), (created.name_any(), Instant::now()));
            }
        }
        Ok(None)
    }
}
