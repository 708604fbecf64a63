//! The certificate controllers, as kube-controller-manager's `csrapproving`
//! and `csrsigning`: one loop over CertificateSigningRequests (watched,
//! and re-listed every [`RESYNC`] so a failed step is retried) that first
//! auto-approves node client requests whose requester holds the permission
//! ([`approve`], asked with a SubjectAccessReview through this apiserver's
//! authorizer) and then signs approved requests for the signers served
//! here with the cluster CA ([`sign`]). Both decisions are pure; this
//! module only asks and writes. A separate sweep ([`clean`], upstream's
//! `csrcleaner`) deletes requests once they are done with.
//!
//! With `approve_serving` (`--approve-kubelet-serving-certificates`) it
//! also approves a node's own kubelet serving requests whose names are the
//! Node's addresses ([`approve_serving`]).
//!
//! Must not: approve anything but node client requests (and, when asked,
//! node serving requests), or sign for other signers.

pub mod approve;
pub mod approve_serving;
pub mod clean;
pub mod sign;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt as _;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt as _;
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::apiserver::certificates::{APPROVED, FAILED};
use crate::auth::ca::Ca;
use approve::Permission;
use sign::Plan;

/// How often every request is looked at again.
pub const RESYNC: Duration = Duration::from_secs(30);

/// A step failed; the next event or resync retries it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("CertificateSigningRequest {name}: {source}")]
    Api { name: String, source: kube::Error },
    #[error("CertificateSigningRequest {name}: signing: {source}")]
    Sign { name: String, source: crate::auth::ca::Error },
    #[error("CertificateSigningRequest: {0}")]
    Json(#[from] serde_json::Error),
}

/// Runs both controllers until `token` is cancelled.
pub async fn run(client: Client, ca: Arc<Ca>, max_lifetime: Duration, approve_serving: bool, token: CancellationToken) {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let mut events = watcher(api.clone(), watcher::Config::default()).default_backoff().applied_objects().boxed();
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        let batch = tokio::select! {
            _ = token.cancelled() => return,
            event = events.next() => match event {
                Some(Ok(csr)) => vec![csr],
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "csr watch");
                    continue;
                }
                None => return,
            },
            _ = resync.tick() => match api.list(&ListParams::default()).await {
                Ok(list) => list.items,
                Err(e) => {
                    tracing::warn!(error = %e, "csr resync list");
                    continue;
                }
            },
        };
        for csr in batch {
            if approve_serving {
                if let Err(e) = approve_serving_request(&client, &api, &csr).await {
                    tracing::warn!(error = %e, "kubelet serving certificate approval");
                }
            }
            if let Err(e) = reconcile(&client, &api, &ca, max_lifetime, &csr).await {
                tracing::warn!(error = %e, "certificate controller");
            }
        }
    }
}

/// Approves (if it should) and signs (if it can) one request.
async fn reconcile(
    client: &Client,
    api: &Api<CertificateSigningRequest>,
    ca: &Ca,
    max_lifetime: Duration,
    csr: &CertificateSigningRequest,
) -> Result<(), Error> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    let api_err = |source| Error::Api { name: name.clone(), source };
    let obj = serde_json::to_value(csr)?;
    let candidates = approve::candidates(&obj);
    if !candidates.is_empty() {
        let mut held = Vec::new();
        for p in &candidates {
            if may_create(client, &csr.spec, *p).await.map_err(api_err)? {
                held.push(*p);
            }
        }
        if let Some(p) = approve::decide(&candidates, |p| held.contains(&p)) {
            let conditions = with_condition(&obj, APPROVED, "AutoApproved", p.message());
            api.patch_approval(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"conditions": conditions}})),
            )
            .await
            .map_err(api_err)?;
            tracing::info!(csr = name, permission = p.subresource(), "approved node client certificate request");
            // The approved object comes back through the watch and is signed then.
            return Ok(());
        }
    }
    let patch = match sign::plan(&obj, max_lifetime) {
        Plan::Skip => return Ok(()),
        Plan::Sign(req, terms) => {
            let pem = ca.sign_request(&req, &terms).map_err(|source| Error::Sign { name: name.clone(), source })?;
            tracing::info!(csr = name, subject = req.common_name, "signed certificate request");
            json!({"status": {"certificate": base64::engine::general_purpose::STANDARD.encode(pem)}})
        }
        Plan::Fail(message) => {
            tracing::info!(csr = name, message, "certificate request failed its signer's rules");
            json!({"status": {"conditions": with_condition(&obj, FAILED, "SignerValidationFailure", &message)}})
        }
    };
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch)).await.map_err(api_err)?;
    Ok(())
}

/// Approves `csr` if it is a node's own serving request for its own
/// addresses (read from its Node); leaves it pending otherwise.
async fn approve_serving_request(
    client: &Client,
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
) -> Result<(), Error> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    let api_err = |source| Error::Api { name: name.clone(), source };
    let obj = serde_json::to_value(csr)?;
    let Some((node, req)) = approve_serving::candidate(&obj) else { return Ok(()) };
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let Some(node_obj) = nodes.get_opt(&node).await.map_err(api_err)? else {
        tracing::info!(csr = name, node, "kubelet serving request of an unknown node left pending");
        return Ok(());
    };
    let (taken_ips, taken_names) = taken_addresses(client, &node).await.map_err(api_err)?;
    let checked = approve_serving::names_are_the_nodes(&req, &serde_json::to_value(&node_obj)?)
        .and_then(|()| approve_serving::names_are_safe(&req, &taken_ips, &taken_names));
    if let Err(why) = checked {
        tracing::info!(csr = name, node, why, "kubelet serving request left pending");
        return Ok(());
    }
    let conditions = with_condition(&obj, APPROVED, "AutoApproved", approve_serving::MESSAGE);
    api.patch_approval(&name, &PatchParams::default(), &Patch::Merge(json!({"status": {"conditions": conditions}})))
        .await
        .map_err(api_err)?;
    tracing::info!(csr = name, node, "approved kubelet serving certificate request");
    Ok(())
}

/// The IPs and names a serving certificate of `node` must not have: other
/// Nodes' names and addresses and Services' ClusterIPs. (The apiserver's
/// own address is not taken here: on a host running both, the node's IP is
/// the apiserver's; a node on another host claiming it claims the
/// control-plane node's address, which is another Node's.)
async fn taken_addresses(
    client: &Client,
    node: &str,
) -> Result<(std::collections::HashSet<std::net::IpAddr>, std::collections::HashSet<String>), kube::Error> {
    use k8s_openapi::api::core::v1::{Node, Service};
    let (mut ips, mut names) = (std::collections::HashSet::new(), std::collections::HashSet::new());
    let mut add = |address: &str| match address.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            ips.insert(ip);
        }
        Err(_) => {
            names.insert(address.to_ascii_lowercase());
        }
    };
    for other in Api::<Node>::all(client.clone()).list(&Default::default()).await? {
        if other.metadata.name.as_deref() == Some(node) {
            continue;
        }
        for a in other.status.and_then(|s| s.addresses).unwrap_or_default() {
            add(&a.address);
        }
        add(other.metadata.name.as_deref().unwrap_or_default());
    }
    for svc in Api::<Service>::all(client.clone()).list(&Default::default()).await? {
        for ip in svc.spec.and_then(|s| s.cluster_ips).unwrap_or_default() {
            add(&ip);
        }
    }
    Ok((ips, names))
}

/// Whether the request's requester may `create` the permission's
/// subresource (a SubjectAccessReview, as upstream's approver asks).
async fn may_create(
    client: &Client,
    spec: &k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec,
    p: Permission,
) -> Result<bool, kube::Error> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: spec.username.clone(),
            groups: spec.groups.clone(),
            uid: spec.uid.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                subresource: Some(p.subresource().into()),
                verb: Some("create".into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The request's conditions with one more (status True).
fn with_condition(obj: &Value, kind: &str, reason: &str, message: &str) -> Vec<Value> {
    let mut conditions: Vec<Value> =
        obj.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let now = crate::apiserver::objects::now_rfc3339();
    conditions.push(json!({"type": kind, "status": "True", "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": now}));
    conditions
}
