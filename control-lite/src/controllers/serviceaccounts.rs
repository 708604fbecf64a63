//! ServiceAccount and root-CA controllers (upstream's `serviceaccount` and
//! `root-ca-cert-publisher`, in one loop keyed by namespace): every active
//! namespace has a `default` ServiceAccount and a `kube-root-ca.crt`
//! ConfigMap whose `ca.crt` is the cluster CA; a deleted one is recreated,
//! an edited ConfigMap is put back. [`plan`] decides (pure); [`run`] feeds it
//! from the shared informers and applies it. Must not: touch other
//! ServiceAccounts or ConfigMaps, or namespaces being deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::informer::{self, Change};
use super::queue::{self, ObjectKey, Retry, WorkQueue};
use super::shared::Informers;
use crate::apiserver::service_accounts::{
    default_service_account, root_ca_configmap, DEFAULT_SERVICE_ACCOUNT, ROOT_CA_CONFIGMAP, ROOT_CA_KEY,
};

/// Periodic full resync (level-triggered safety net).
const RESYNC: Duration = Duration::from_secs(60);

/// What one namespace needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    CreateServiceAccount,
    CreateConfigMap,
    /// The ConfigMap exists with other content: write the CA back.
    UpdateConfigMap,
}

/// What the informers show for one namespace.
#[derive(Debug, Clone, Default)]
pub struct Observed<'a> {
    /// The namespace exists and is not being deleted.
    pub active: bool,
    pub has_default_service_account: bool,
    /// `kube-root-ca.crt`'s `data` (`None`: no such ConfigMap).
    pub root_ca_data: Option<&'a BTreeMap<String, String>>,
}

/// The actions that make namespace state `seen` right for CA `ca_pem`.
pub fn plan(seen: &Observed<'_>, ca_pem: &str) -> Vec<Action> {
    if !seen.active {
        return Vec::new();
    }
    let mut actions = Vec::new();
    if !seen.has_default_service_account {
        actions.push(Action::CreateServiceAccount);
    }
    match seen.root_ca_data {
        None => actions.push(Action::CreateConfigMap),
        Some(data) if data.len() != 1 || data.get(ROOT_CA_KEY).map(String::as_str) != Some(ca_pem) => {
            actions.push(Action::UpdateConfigMap);
        }
        Some(_) => {}
    }
    actions
}

/// Runs the controller until `token` is cancelled.
pub async fn run(client: Client, informers: Informers, ca_pem: Arc<str>, token: CancellationToken) {
    let queue: WorkQueue<ObjectKey> = WorkQueue::new(token.clone());
    informers.queue_metrics().track("serviceaccount", queue.stats_probe());
    let key = |ns: &str| ObjectKey { namespace: String::new(), name: ns.to_string() };
    let namespaces: Store<Namespace> = {
        let queue = queue.clone();
        informers.of::<Namespace>().on_change(&token, move |change| {
            if let Some((ns, Change::Applied)) = change {
                queue.add(key(ns.metadata.name.as_deref().unwrap_or_default()));
            }
        })
    };
    let accounts: Store<ServiceAccount> = {
        let queue = queue.clone();
        informers.of::<ServiceAccount>().on_change(&token, move |change| {
            if let Some((sa, Change::Deleted)) = change {
                if sa.metadata.name.as_deref() == Some(DEFAULT_SERVICE_ACCOUNT) {
                    queue.add(key(sa.metadata.namespace.as_deref().unwrap_or_default()));
                }
            }
        })
    };
    let configmaps: Store<ConfigMap> = {
        let queue = queue.clone();
        informers.of::<ConfigMap>().on_change(&token, move |change| {
            if let Some((cm, _)) = change {
                if cm.metadata.name.as_deref() == Some(ROOT_CA_CONFIGMAP) {
                    queue.add(key(cm.metadata.namespace.as_deref().unwrap_or_default()));
                }
            }
        })
    };
    for store in [informer::wait_ready(&namespaces, &token).await, informer::wait_ready(&accounts, &token).await] {
        if !store {
            return;
        }
    }
    if !informer::wait_ready(&configmaps, &token).await {
        return;
    }
    queue::spawn_resync(queue.clone(), namespaces.clone(), RESYNC, token.clone());
    let mut retry = Retry::new("serviceaccount");
    while let Some(ns_key) = queue.next().await {
        let ns = ns_key.name.as_str();
        let namespace = namespaces.get(&ObjectRef::new(ns));
        let sa = accounts.get(&ObjectRef::new(DEFAULT_SERVICE_ACCOUNT).within(ns));
        let cm = configmaps.get(&ObjectRef::new(ROOT_CA_CONFIGMAP).within(ns));
        let seen = Observed {
            active: namespace.is_some_and(|n| n.metadata.deletion_timestamp.is_none()),
            has_default_service_account: sa.is_some(),
            root_ca_data: cm.as_ref().map(|cm| cm.data.as_ref().unwrap_or(&EMPTY)),
        };
        let result = apply(&client, ns, &plan(&seen, &ca_pem), &ca_pem).await;
        retry.finish(&queue, ns_key, result);
    }
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

/// Applies `actions` in namespace `ns`; a write that finds the object
/// already there (or the namespace going away) is done.
async fn apply(client: &Client, ns: &str, actions: &[Action], ca_pem: &str) -> Result<Option<Duration>, kube::Error> {
    let ok = |r: Result<(), kube::Error>| match r {
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 || s.code == 404 => Ok(()),
        other => other,
    };
    for action in actions {
        match action {
            Action::CreateServiceAccount => {
                let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
                let sa = serde_json::from_value(default_service_account()).map_err(kube::Error::SerdeError)?;
                ok(api.create(&PostParams::default(), &sa).await.map(drop))?;
                tracing::info!(namespace = ns, "created ServiceAccount default");
            }
            Action::CreateConfigMap => {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
                let cm = serde_json::from_value(root_ca_configmap(ca_pem)).map_err(kube::Error::SerdeError)?;
                ok(api.create(&PostParams::default(), &cm).await.map(drop))?;
            }
            Action::UpdateConfigMap => {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
                let patch = json!({"data": {ROOT_CA_KEY: ca_pem}});
                ok(api.patch(ROOT_CA_CONFIGMAP, &PatchParams::default(), &Patch::Merge(&patch)).await.map(drop))?;
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_active_namespace_gets_what_it_lacks_and_others_nothing() {
        let right = BTreeMap::from([(ROOT_CA_KEY.to_string(), "CA".to_string())]);
        let stale = BTreeMap::from([(ROOT_CA_KEY.to_string(), "OLD".to_string())]);
        let seen = |active, sa, data| Observed { active, has_default_service_account: sa, root_ca_data: data };
        assert_eq!(plan(&seen(true, false, None), "CA"), [Action::CreateServiceAccount, Action::CreateConfigMap]);
        assert_eq!(plan(&seen(true, true, Some(&right)), "CA"), []);
        assert_eq!(plan(&seen(true, true, Some(&stale)), "CA"), [Action::UpdateConfigMap]);
        assert_eq!(plan(&seen(true, true, Some(&EMPTY)), "CA"), [Action::UpdateConfigMap]);
        assert_eq!(plan(&seen(false, false, None), "CA"), [], "terminating or gone");
    }
}
