//! The `kubernetes` Service's endpoints reconciler (upstream's "master
//! endpoints reconciler"): keeps the EndpointSlice and the Endpoints
//! `default/kubernetes` pointing at this apiserver's advertise address and
//! port (port name `https`), so pods reach the apiserver through the
//! Service's ClusterIP. A deleted object is recreated, an edited one put
//! back, on every change the informers show and every [`RESYNC`].
//! [`plan`] decides (pure); [`run`] feeds it and writes.
//!
//! Owns: those two objects. Must not: touch the Service itself (bootstrap
//! creates it) or any other endpoints (the endpointslice controller skips
//! slices it does not manage, so the two never fight).
//!
//! Design note, several apiservers: the plan already takes the set of
//! addresses to list, so HA changes only where that set comes from. Each
//! apiserver would renew a Lease of its own in `kube-system` (holder = its
//! identity, its advertise address in an annotation, a short duration), and
//! every reconciler would list the addresses of unexpired Leases; they all
//! compute the same sorted set, conditional writes (resourceVersion) settle
//! races, and an apiserver that stops cleanly deletes its Lease first so its
//! address leaves the slice at once, a crashed one when its Lease expires
//! (upstream's lease reconciler). With one apiserver the set is just its own
//! address, which stays listed across restarts (clients retry meanwhile).

pub mod plan;

use std::time::Duration;

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::informer::{self, Change};
use super::queue::{ObjectKey, Retry, WorkQueue};
use super::shared::Informers;
use super::{is_conflict, is_not_found};
use plan::{plan_endpoints, plan_slice, Action, Desired, NAME, NAMESPACE};

/// Level-triggered safety net (upstream reconciles every 10 s).
pub const RESYNC: Duration = Duration::from_secs(10);

/// Runs the reconciler for `desired` until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, desired: Desired, token: CancellationToken) {
    let queue: WorkQueue<ObjectKey> = WorkQueue::new(token.clone());
    let key = ObjectKey { namespace: NAMESPACE.to_string(), name: NAME.to_string() };
    let slices: Store<EndpointSlice> = informers.of::<EndpointSlice>().on_change(&token, {
        let (queue, key) = (queue.clone(), key.clone());
        move |change: Option<(&EndpointSlice, Change)>| {
            if change.is_some_and(|(s, _)| ObjectKey::of(&s.metadata) == key) {
                queue.add(key.clone());
            }
        }
    });
    let endpoints: Store<Endpoints> = informers.of::<Endpoints>().on_change(&token, {
        let (queue, key) = (queue.clone(), key.clone());
        move |change: Option<(&Endpoints, Change)>| {
            if change.is_some_and(|(e, _)| ObjectKey::of(&e.metadata) == key) {
                queue.add(key.clone());
            }
        }
    });
    if !informer::wait_ready(&slices, &token).await || !informer::wait_ready(&endpoints, &token).await {
        return;
    }
    queue.add(key);
    let mut retry = Retry::new("kubernetes-endpoints");
    while let Some(key) = queue.next().await {
        let slice = plan_slice(&desired, slices.get(&ObjectRef::new(NAME).within(NAMESPACE)).as_deref());
        let subsets = plan_endpoints(&desired, endpoints.get(&ObjectRef::new(NAME).within(NAMESPACE)).as_deref());
        let result = async {
            apply(Api::namespaced(client.clone(), NAMESPACE), slice).await?;
            apply(Api::namespaced(client.clone(), NAMESPACE), subsets).await
        }
        .await;
        retry.finish(&queue, key, result.map(|()| Some(RESYNC)));
    }
}

/// Writes one decision. A create that finds the object, or an update that
/// finds it changed or gone, is left to the next reconcile (the informer
/// shows the change and queues it).
async fn apply<K>(api: Api<K>, action: Action<K>) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let post = PostParams { field_manager: Some(plan::MANAGED_BY.to_string()), ..PostParams::default() };
    let kind = K::kind(&()).to_string();
    let result = match action {
        Action::Keep => return Ok(()),
        Action::Create(object) => api.create(&post, &object).await.map(drop),
        Action::Update(object) => api.replace(NAME, &post, &object).await.map(drop),
        Action::Recreate(object) => match api.delete(NAME, &DeleteParams::default()).await {
            Ok(_) => api.create(&post, &object).await.map(drop),
            Err(error) if is_not_found(&error) => api.create(&post, &object).await.map(drop),
            Err(error) => Err(error),
        },
    };
    match result {
        Ok(()) => {
            tracing::info!(kind, namespace = NAMESPACE, name = NAME, "wrote the apiserver's endpoints");
            Ok(())
        }
        Err(error) if is_conflict(&error) || is_not_found(&error) => Ok(()),
        Err(error) => Err(error),
    }
}
