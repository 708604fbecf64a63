//! Bare-metal load balancer (the cloud-controller-manager's Service role,
//! for clusters without a cloud): gives every `type: LoadBalancer` Service
//! without a `loadBalancerClass` an ingress IP from `--load-balancer-pool`
//! (one Service per address) or `--load-balancer-shared-pool` (Services
//! share an address on different ports), which netproxy then routes.
//!
//! Owns: the Service informer subscription (woken only by changes to
//! Services that are or were load balancers), one pass over the Services
//! per wake-up applying `plan::plan` (status patches, `IPAllocated` and
//! `AllocationFailed` Events). Must not: decide anything itself (that is
//! `plan`), or hold state between passes (the statuses are the state).

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::events::{Recorder, NORMAL, WARNING};
use super::informer;
use super::is_not_found;
use super::shared::Informers;
use plan::{Change, Pools, ServiceView};

/// A pass runs at least this often (a failed write is retried then).
const RESYNC: Duration = Duration::from_secs(30);

/// A failed status write.
#[derive(Debug, thiserror::Error)]
#[error("writing the load-balancer status of service {service}")]
pub struct Error {
    service: String,
    #[source]
    source: kube::Error,
}

/// Whether `service` concerns this controller: a load balancer, or a
/// Service whose status still shows ingress IPs.
fn concerns(service: &Service) -> bool {
    let lb = service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
    let ingress = service.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
    lb || ingress.is_some_and(|i| !i.is_empty())
}

/// The planner's view of a Service.
fn view(service: &Service) -> ServiceView {
    let spec = service.spec.as_ref();
    let ours = spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
        && spec.and_then(|s| s.load_balancer_class.as_deref()).is_none();
    let ingress = service.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
    let created = service.metadata.creation_timestamp.as_ref().map_or(0, |t| t.0.as_second());
    let key = format!("{}/{}", service.namespace().unwrap_or_default(), service.name_any());
    ServiceView {
        age_order: (created, key.clone()),
        key,
        ours,
        requested: spec.and_then(|s| s.load_balancer_ip.as_deref()).and_then(|ip| ip.parse().ok()),
        current: ingress.into_iter().flatten().filter_map(|i| i.ip.as_deref()?.parse().ok()).collect(),
        ports: spec
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .map(|p| (p.protocol.clone().unwrap_or_else(|| "TCP".to_string()), p.port))
            .collect(),
    }
}

/// Runs the controller for `pools` until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, pools: Arc<Pools>, token: CancellationToken) {
    let kick = Arc::new(Notify::new());
    let services: Store<Service> = {
        let kick = kick.clone();
        informers.of::<Service>().on_change(&token, move |change| match change {
            Some((service, _)) if !concerns(service) => {}
            _ => kick.notify_one(),
        })
    };
    if !informer::wait_ready(&services, &token).await {
        return;
    }
    let recorder = Recorder::new(client.clone(), "service-lb-controller");
    loop {
        let all: Vec<Arc<Service>> = services.state().into_iter().filter(|s| concerns(s)).collect();
        let views: Vec<ServiceView> = all.iter().map(|s| view(s)).collect();
        for (key, change) in plan::plan(&views, &pools) {
            let Some((namespace, name)) = key.split_once('/') else { continue };
            let Some(service) = services.get(&ObjectRef::new(name).within(namespace)) else { continue };
            if let Err(error) = apply(&client, &recorder, &service, &change).await {
                tracing::warn!(error = format!("{error:#}"), "load balancer");
            }
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = kick.notified() => {}
            () = tokio::time::sleep(RESYNC) => {}
        }
    }
}

async fn apply(client: &Client, recorder: &Recorder, service: &Service, change: &Change) -> Result<(), Error> {
    let (namespace, name) = (service.namespace().unwrap_or_default(), service.name_any());
    let api: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let patch = match change {
        Change::Assign(ip) => {
            json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}})
        }
        Change::Clear => json!({"status": {"loadBalancer": {"ingress": null}}}),
        Change::Unassignable(why) => {
            let message = format!("Failed to allocate IP for \"{namespace}/{name}\": {why}");
            recorder.publish(service, WARNING, "AllocationFailed", &message).await;
            return Ok(());
        }
    };
    match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(source) => return Err(Error { service: format!("{namespace}/{name}"), source }),
    }
    if let Change::Assign(ip) = change {
        recorder.publish(service, NORMAL, "IPAllocated", &format!("Assigned IP [\"{ip}\"]")).await;
    }
    Ok(())
}
