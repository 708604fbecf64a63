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
