//! Object counts on etcd: the keys under `/registry/` are listed (keys
//! only) and followed with a watch, so the counts include every writer of
//! the cluster. When the watch ends (etcd unreachable, compaction), the
//! keys are listed again after a short retry delay.

use std::time::Duration;

use super::Etcd;
use crate::store::WatchReceiver;

/// The prefix the counts cover (see `store::counts::resource_of`).
const PREFIX: &str = "/registry/";
/// Wait before listing again after the watch ended or a list failed.
const RETRY: Duration = Duration::from_secs(1);
/// The counting watcher reads promptly; a long deadline never drops it.
const DEADLINE: Duration = Duration::from_secs(600);

/// Counts the keys now, then keeps the counts current in a task that ends
/// when the store closes.
pub(super) async fn spawn(etcd: Etcd) {
    let first = relist(&etcd).await;
    tokio::spawn(async move {
        let mut watch = first;
        loop {
            if let Some(rx) = &mut watch {
                while let Some(event) = rx.recv().await {
                    etcd.inner.counts.apply(std::slice::from_ref(&event));
                }
            }
            tokio::select! {
                _ = etcd.inner.closed.cancelled() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
            watch = relist(&etcd).await;
        }
    });
}

/// Lists the keys, resets the counts to them and watches from there.
async fn relist(etcd: &Etcd) -> Option<WatchReceiver> {
    let (keys, revision) = match etcd.list_with(PREFIX, true).await {
        Ok(listed) => listed,
        Err(error) => {
            tracing::warn!(%error, "store: counting objects in etcd failed; retrying");
            return None;
        }
    };
    etcd.inner.counts.reset(keys.iter().map(|kv| kv.key.as_str()));
    match etcd.watch_with_deadline(PREFIX, revision, DEADLINE).await {
        Ok(rx) => Some(rx),
        Err(error) => {
            tracing::warn!(%error, "store: following object counts in etcd failed; retrying");
            None
        }
    }
}
