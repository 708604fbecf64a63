//! The authorizers' view of the store: an [`RbacSnapshot`] and a
//! [`NodeGraph`], each kept current by one watch of its store prefix (list,
//! then watch from the list's revision; relist when the watch ends), so a
//! decision never reads the store.
//!
//! Like upstream's informer-fed authorizers, the view trails a write by the
//! time the watch takes to deliver it (milliseconds): a request right after
//! a RoleBinding is created may still be decided without it.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::attributes::Request;
use super::authorize::{authorize, masters, Decision};
use super::node_graph::{NodeGraph, PODS_PREFIX};
use super::rbac::{PolicyRule, RbacSnapshot, STORE_PREFIX};
use super::user::UserInfo;
use crate::store::{EventKind, KeyValue, Store};

/// Pause before relisting after a store error.
const RETRY: Duration = Duration::from_secs(1);

/// The shared authorization view.
#[derive(Debug, Default)]
pub struct AuthzCache {
    rbac: RwLock<Arc<RbacSnapshot>>,
    graph: RwLock<NodeGraph>,
}

fn parse(kv: &KeyValue) -> Option<Value> {
    serde_json::from_slice(&kv.value).ok()
}

impl AuthzCache {
    /// Decides `request` by `user` on the current view.
    pub fn authorize(&self, user: &UserInfo, request: &Request) -> Decision {
        // `system:masters` (admins, control's own clients) takes no lock.
        if let Some(decision) = masters(user) {
            return decision;
        }
        let rbac = self.rbac.read().unwrap_or_else(PoisonError::into_inner).clone();
        let graph = self.graph.read().unwrap_or_else(PoisonError::into_inner);
        authorize(user, request, &rbac, &graph)
    }

    /// NodeRestriction of `node`'s TokenRequest (see [`super::node::admit_token_request`]).
    pub fn admit_node_token(
        &self,
        node: &str,
        namespace: &str,
        service_account: &str,
        body: &Value,
    ) -> Result<(), String> {
        let graph = self.graph.read().unwrap_or_else(PoisonError::into_inner);
        super::node::admit_token_request(node, namespace, service_account, body, &graph)
    }

    /// The RBAC rules of `user` in `namespace` (for SelfSubjectRulesReview).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        self.rbac.read().unwrap_or_else(PoisonError::into_inner).rules_for(user, namespace)
    }

    /// The rules of a role (see [`RbacSnapshot::role_rules`]).
    pub fn role_rules(&self, cluster_role: bool, namespace: &str, name: &str) -> Option<Vec<PolicyRule>> {
        self.rbac.read().unwrap_or_else(PoisonError::into_inner).role_rules(cluster_role, namespace, name)
    }

    /// Loads the current objects, then follows both prefixes until `token`
    /// is cancelled. Returns once the first load is done.
    pub async fn start(self: &Arc<Self>, store: &Store, token: &CancellationToken) {
        let rbac_rev = self.load_rbac(store).await;
        let pods_rev = self.load_pods(store).await;
        let (me, s, t) = (self.clone(), store.clone(), token.clone());
        tokio::spawn(async move { me.follow_rbac(s, rbac_rev, t).await });
        let (me, s, t) = (self.clone(), store.clone(), token.clone());
        tokio::spawn(async move { me.follow_pods(s, pods_rev, t).await });
    }

    async fn load_rbac(&self, store: &Store) -> Option<(BTreeMap<String, Value>, i64)> {
        let (kvs, rev) = store.list(STORE_PREFIX).await.ok()?;
        let objects: BTreeMap<String, Value> = kvs.iter().filter_map(|kv| Some((kv.key.clone(), parse(kv)?))).collect();
        self.set_rbac(&objects);
        Some((objects, rev))
    }

    fn set_rbac(&self, objects: &BTreeMap<String, Value>) {
        let snap = Arc::new(RbacSnapshot::build(objects.iter().map(|(k, v)| (k.as_str(), v))));
        *self.rbac.write().unwrap_or_else(PoisonError::into_inner) = snap;
    }

    async fn load_pods(&self, store: &Store) -> Option<i64> {
        let (kvs, rev) = store.list(PODS_PREFIX).await.ok()?;
        let mut graph = self.graph.write().unwrap_or_else(PoisonError::into_inner);
        graph.clear();
        for kv in &kvs {
            graph.apply(&kv.key, parse(kv).as_ref());
        }
        Some(rev)
    }

    async fn follow_rbac(
        &self,
        store: Store,
        mut loaded: Option<(BTreeMap<String, Value>, i64)>,
        token: CancellationToken,
    ) {
        while !token.is_cancelled() {
            let Some((mut objects, rev)) = loaded.take() else {
                tokio::select! { () = token.cancelled() => return, () = tokio::time::sleep(RETRY) => {} }
                loaded = self.load_rbac(&store).await;
                continue;
            };
            if let Ok(mut watch) = store.watch(STORE_PREFIX, rev).await {
                loop {
                    let event = tokio::select! { () = token.cancelled() => return, e = watch.recv() => e };
                    let Some(mut event) = event else { break };
                    // Apply everything queued, then rebuild once.
                    loop {
                        match event.kind {
                            EventKind::Put => {
                                if let Some(v) = parse(&event.kv) {
                                    objects.insert(event.kv.key.clone(), v);
                                }
                            }
                            EventKind::Delete => {
                                objects.remove(&event.kv.key);
                            }
                        }
                        match watch.try_recv() {
                            Some(next) => event = next,
                            None => break,
                        }
                    }
                    self.set_rbac(&objects);
                }
            }
            loaded = self.load_rbac(&store).await;
        }
    }

    async fn follow_pods(&self, store: Store, mut rev: Option<i64>, token: CancellationToken) {
        while !token.is_cancelled() {
            let Some(from) = rev.take() else {
                tokio::select! { () = token.cancelled() => return, () = tokio::time::sleep(RETRY) => {} }
                rev = self.load_pods(&store).await;
                continue;
            };
            if let Ok(mut watch) = store.watch(PODS_PREFIX, from).await {
                loop {
                    let event = tokio::select! { () = token.cancelled() => return, e = watch.recv() => e };
                    let Some(event) = event else { break };
                    let pod = match event.kind {
                        EventKind::Put => parse(&event.kv),
                        EventKind::Delete => None,
                    };
                    self.graph.write().unwrap_or_else(PoisonError::into_inner).apply(&event.kv.key, pod.as_ref());
                }
            }
            rev = self.load_pods(&store).await;
        }
    }
}
