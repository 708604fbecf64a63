//! Keeps [`super::Served`] in step with the stored CRDs when other
//! apiservers share the store (HA: several `bosun control` on one etcd).
//!
//! A CRD write through this apiserver reloads at once (`crud.rs`); a write
//! through another one reaches this one only through the store. [`follow`]
//! watches the CRD prefix from the revision of the last reload and reloads
//! after every batch of events. When the watch cannot start (compacted,
//! store unavailable) or ends (a slow watcher is dropped, the store closes),
//! it reloads after a short pause and watches again from the reload's
//! revision, so no write is missed. It ends with the apiserver's token.
//! The served rows trail a write on another apiserver by the watch latency.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::super::ApiState;
use crate::store::Revision;

/// Pause before relisting after the watch failed or ended.
const RETRY: Duration = Duration::from_secs(1);

/// Follows the stored CRDs from `from` (the revision of a reload that is
/// already served) until `token` is cancelled.
pub async fn follow(state: &ApiState, mut from: Option<Revision>, token: CancellationToken) {
    let prefix = super::store_prefix();
    while !token.is_cancelled() {
        if let Some(rev) = from.take() {
            match state.store.watch(&prefix, rev).await {
                Ok(mut watch) => loop {
                    let event = tokio::select! { () = token.cancelled() => return, e = watch.recv() => e };
                    if event.is_none() {
                        break;
                    }
                    // One reload for everything queued: it reads the newest rows anyway.
                    while watch.try_recv().is_some() {}
                    if let Err(e) = super::load(state).await {
                        tracing::warn!(error = %e, "reloading custom resource definitions");
                        break;
                    }
                },
                Err(e) => tracing::debug!(error = %e, "watching custom resource definitions"),
            }
            tokio::select! { () = token.cancelled() => return, () = tokio::time::sleep(RETRY) => {} }
        }
        match super::load(state).await {
            Ok(rev) => from = Some(rev),
            Err(e) => {
                tracing::warn!(error = %e, "reloading custom resource definitions");
                tokio::select! { () = token.cancelled() => return, () = tokio::time::sleep(RETRY) => {} }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::apiserver::registry::{by_kind, Kind};
    use crate::store::Store;

    /// Polls `done` every 10 ms for up to 30 s.
    async fn wait(what: &str, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_compacted_watch_relists_then_follows_the_new_watch() {
        let store = Store::open_in_memory().expect("store");
        let token = CancellationToken::new();
        let state =
            Arc::new(ApiState::new(store.clone(), "10.96.0.0/16".parse().expect("cidr"), "x".into(), token.clone()));
        let crd = json!({"metadata": {"name": "things.sync.io"}, "spec": {"group": "sync.io", "scope": "Cluster",
            "names": {"plural": "things", "singular": "thing", "kind": "Thing", "listKind": "ThingList"},
            "versions": [{"name": "v1", "served": true, "storage": true}]},
            "status": {"conditions": [{"type": "Established", "status": "True"}]}});
        let key = by_kind(Kind::CustomResourceDefinition).key(None, "things.sync.io");
        store.create(&key, crd.to_string().into_bytes()).await.expect("create");
        store.create("/registry/other/x", b"{}".to_vec()).await.expect("create");
        store.compact(store.current_revision()).await.expect("compact");
        // From revision 0: the watch fails (compacted), so it relists.
        let task = tokio::spawn({
            let (state, token) = (state.clone(), token.clone());
            async move { follow(&state, Some(0), token).await }
        });
        wait("the relist to serve the CRD", || state.crds.rows().len() == 1).await;
        store.delete(&key, None).await.expect("delete");
        wait("the new watch to stop serving it", || state.crds.rows().is_empty()).await;
        token.cancel();
        tokio::time::timeout(Duration::from_secs(10), task).await.expect("ends on cancel").expect("join");
    }
}
