//! EndpointSlice controller: keeps one `discovery.k8s.io/v1` EndpointSlice
//! per selector Service listing the IPs of its pods.
//!
//! Owns: its subscriptions to the shared Service, Pod and EndpointSlice
//! informers, the indexes beside them, and writing what `render::render`
//! computes: create via `generateName`, replace in place only when content
//! changed, delete duplicates and slices of deleted Services. `WORKERS`
//! reconciles run at once (the queue hands each Service to one worker at a
//! time), so one pod turning Ready, which touches every Service selecting
//! it, costs wall time / `WORKERS` (and the store commits the concurrent
//! writes in shared transactions). Must not: touch slices other
//! controllers manage.

pub mod inputs;
pub mod render;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::events::Recorder;
use super::failures::{self, Reporter};
use super::index::{self, Index};
use super::informer::{self, Change};
use super::queue::{self, ObjectKey, Retry, WorkQueue};
use super::shared::Informers;
use super::{is_conflict, is_not_found, selector};
use inputs::{LabelKey, PodView};

/// Safety-net resync; a Service whose inputs did not change costs a
/// fingerprint, and the round is spread over the interval.
const RESYNC: Duration = Duration::from_secs(300);
/// How long a slice we created is looked up by name while the watch lags.
const CREATED_TTL: Duration = Duration::from_secs(30);
/// Reconciles in flight at once (upstream's `--concurrent-service-endpoint-syncs`
/// defaults to 5).
const WORKERS: usize = 8;

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

/// A Service's name-and-namespace, as the queue and the slice index use it.
type ServiceKey = ObjectKey;

struct Ctx {
    client: Client,
    services: Store<Service>,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
    pods_by_label: Index<Pod, LabelKey>,
    slices_by_service: Index<EndpointSlice, ServiceKey>,
    /// Slices created by us, by Service, until the watch shows them.
    created: Mutex<HashMap<ServiceKey, (String, Instant)>>,
    /// Input fingerprint of each Service's last reconcile that wrote
    /// nothing: seeing it again means there is nothing to do.
    settled: Mutex<HashMap<ServiceKey, u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn managed_service(slice: &EndpointSlice) -> Option<ServiceKey> {
    let labels = slice.metadata.labels.as_ref()?;
    if labels.get(render::MANAGED_BY_LABEL).map(String::as_str) != Some(render::MANAGED_BY) {
        return None;
    }
    Some(ObjectKey {
        namespace: slice.namespace().unwrap_or_default(),
        name: labels.get(render::SERVICE_NAME_LABEL)?.clone(),
    })
}

/// Queues the Services whose selector matches `labels` (pod labels of
/// `namespace`), found through the Service index.
fn queue_selecting(
    queue: &WorkQueue<ServiceKey>,
    services: &Store<Service>,
    by_label: &Index<Service, LabelKey>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) {
    for (key, value) in labels {
        let probe = LabelKey { namespace: namespace.to_string(), key: key.clone(), value: value.clone() };
        for svc in by_label.resolve(services, &probe) {
            if render::service_selector(&svc).is_some_and(|wanted| inputs::selects(wanted, labels)) {
                queue.add(ObjectKey::of(&svc.metadata));
            }
        }
    }
}

/// Runs the EndpointSlice controller until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, token: CancellationToken) {
    let queue: WorkQueue<ServiceKey> = WorkQueue::new(token.clone());
    informers.queue_metrics().track("endpoint_slice", queue.stats_probe());
    let services_by_label: Index<Service, LabelKey> = Index::new(inputs::service_keys);
    let services: Store<Service> = {
        let (queue, index) = (queue.clone(), services_by_label.clone());
        informers.of::<Service>().subscribe(&token, move |store, change| {
            for (key, _) in index.apply(store, change) {
                queue.add(key);
            }
        })
    };
    let pods_by_label: Index<Pod, LabelKey> = Index::new(inputs::pod_keys);
    let pods: Store<Pod> = {
        let (queue, services, by_label, index) =
            (queue.clone(), services.clone(), services_by_label.clone(), pods_by_label.clone());
        // The last view of each pod: updates that leave it unchanged queue nothing.
        let seen: Mutex<HashMap<ObjectKey, PodView>> = Mutex::new(HashMap::new());
        informers.of::<Pod>().subscribe(&token, move |store, change| {
            let view = change.and_then(|(pod, how)| (how == Change::Applied).then(|| PodView::of(pod)));
            if change.is_none() {
                let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
                seen.retain(|key, _| store.get(&index::object_ref(key)).is_some());
            }
            for (key, moved) in index.apply(store, change) {
                let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
                let before = match &view {
                    Some(view) => seen.insert(key.clone(), view.clone()),
                    None => seen.remove(&key),
                };
                drop(seen);
                if before.is_some() && before == view {
                    continue;
                }
                // Old and new labels; once when they are the same (the usual
                // readiness or IP change).
                let after = inputs::labels_of(&moved.after);
                if !moved.unchanged() {
                    queue_selecting(&queue, &services, &by_label, &key.namespace, &inputs::labels_of(&moved.before));
                }
                queue_selecting(&queue, &services, &by_label, &key.namespace, &after);
            }
        })
    };
    let slices_by_service: Index<EndpointSlice, ServiceKey> = Index::new(|s| managed_service(s).into_iter().collect());
    let slices: Store<EndpointSlice> = {
        let (queue, index) = (queue.clone(), slices_by_service.clone());
        informers.of::<EndpointSlice>().subscribe(&token, move |store, change| {
            for (_, moved) in index.apply(store, change) {
                for key in moved.before.into_iter().chain(moved.after) {
                    queue.add(key);
                }
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
    let reporter = Reporter::for_store(Recorder::new(client.clone(), "endpointslice-controller"), services.clone());
    let ctx = Ctx {
        client,
        services,
        pods,
        slices,
        pods_by_label,
        slices_by_service,
        created: Mutex::new(HashMap::new()),
        settled: Mutex::new(HashMap::new()),
    };
    let retry = Mutex::new(Retry::new("endpointslice").reporting(reporter));
    let worker = || async {
        while let Some(key) = queue.next().await {
            let result = failures::guard(ctx.reconcile(&key)).await;
            lock(&retry).finish(&queue, key, result);
        }
    };
    futures::future::join_all((0..WORKERS).map(|_| worker())).await;
}

impl Ctx {
    async fn reconcile(&self, key: &ObjectKey) -> Result<Option<Duration>, Error> {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &key.namespace);
        let err = |action: &'static str, slice: &str| {
            let (slice, service) = (slice.to_string(), key.clone());
            move |source| Error { action, slice, service, source }
        };
        let mut existing: Vec<Arc<EndpointSlice>> = self
            .slices_by_service
            .resolve(&self.slices, key)
            .into_iter()
            .filter(|s| managed_service(s).as_ref() == Some(key))
            .collect();
        let svc = self.services.get(&ObjectRef::new(&key.name).within(&key.namespace));
        let pods = self.selected_pods(key, svc.as_deref());
        let inputs = inputs::fingerprint(svc.as_deref(), &pods, &existing);
        let created = lock(&self.created).get(key).cloned();
        let lagging = existing.is_empty() && created.is_some();
        if !lagging && lock(&self.settled).get(key) == Some(&inputs) {
            return Ok(None);
        }
        lock(&self.settled).remove(key);
        if existing.is_empty() {
            if let Some((name, at)) = created {
                if at.elapsed() < CREATED_TTL {
                    match api.get(&name).await {
                        Ok(slice) => existing.push(Arc::new(slice)),
                        Err(e) if is_not_found(&e) => {}
                        Err(source) => return Err(err("reading", &name)(source)),
                    }
                }
            }
        } else {
            lock(&self.created).remove(key);
        }
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
        let wrote = !extra.is_empty();
        for slice in extra {
            let name = slice.name_any();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(source) => return Err(err("deleting", &name)(source)),
            }
        }
        let Some(desired) = desired else {
            lock(&self.created).remove(key);
            if !wrote && svc.is_none() {
                // Nothing left to remember for a Service that is gone.
                lock(&self.settled).remove(key);
            } else if !wrote {
                lock(&self.settled).insert(key.clone(), inputs);
            }
            return Ok(None);
        };
        match keep {
            Some(current) if render::same_content(&current, &desired) => {
                if !wrote && !lagging {
                    lock(&self.settled).insert(key.clone(), inputs);
                }
            }
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
                lock(&self.created).insert(key.clone(), (created.name_any(), Instant::now()));
            }
        }
        Ok(None)
    }

    /// The pods `svc`'s selector matches, through the label index.
    fn selected_pods(&self, key: &ServiceKey, svc: Option<&Service>) -> Vec<Arc<Pod>> {
        let Some(wanted) = svc.and_then(render::service_selector) else {
            return Vec::new();
        };
        let Some(probe) = inputs::selector_key(&key.namespace, wanted) else {
            return Vec::new();
        };
        self.pods_by_label
            .resolve(&self.pods, &probe)
            .into_iter()
            .filter(|p| inputs::selects(wanted, &selector::labels(&p.metadata)))
            .collect()
    }
}
