//! Informers: watcher -> reflector -> store, plus a callback per touched object.
//!
//! Owns: one background task per watched kind that keeps a `Store<K>` current
//! and tells its user which object changed (after the store saw the change,
//! so a reconcile triggered by the callback reads fresh data). Must not:
//! decide anything about the objects.

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use tokio_util::sync::CancellationToken;

/// What happened to a watched object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Created, updated, or (re)listed.
    Applied,
    /// Deleted.
    Deleted,
}

/// Starts watching `api` and returns the store it fills. `on_change` runs for
/// every touched object and once with `None` after each complete (re)list.
/// The task ends when `token` is cancelled.
pub fn spawn<K, F>(api: Api<K>, token: CancellationToken, on_change: F) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(Option<(&K, Change)>) + Send + 'static,
{
    spawn_with_store(api, token, move |_, change| on_change(change))
}

/// Like [`spawn`], but `on_change` also gets the store (already updated), so
/// an index kept beside it can drop objects a relist no longer shows (the
/// watcher sends no delete event for objects deleted while it was down).
pub fn spawn_with_store<K, F>(api: Api<K>, token: CancellationToken, on_change: F) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(&Store<K>, Option<(&K, Change)>) + Send + 'static,
{
    let (reader, writer) = reflector::store();
    let store = reader.clone();
    // Pruned before the store keeps it (see `prune`): the stores hold one
    // copy of every object of the kind, so each byte dropped counts per object.
    let stream = watcher(api, watcher::Config::default()).default_backoff().modify(super::prune::prune::<K>);
    let stream = reflector::reflector(writer, stream);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            let item = tokio::select! {
                () = token.cancelled() => break,
                item = stream.next() => item,
            };
            match item {
                None => break,
                Some(Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj))) => {
                    on_change(&store, Some((&obj, Change::Applied)));
                }
                Some(Ok(watcher::Event::Delete(obj))) => on_change(&store, Some((&obj, Change::Deleted))),
                Some(Ok(watcher::Event::InitDone)) => on_change(&store, None),
                Some(Ok(watcher::Event::Init)) => {}
                Some(Err(error)) => {
                    tracing::warn!(kind = K::kind(&()).as_ref(), %error, "watch failed; retrying");
                }
            }
        }
    });
    reader
}

/// How often `wait_ready` looks again (see there).
const READY_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Waits until `store` has seen its first complete list, or `token` fires.
/// Returns false if cancelled.
///
/// kube-runtime's `Store::wait_until_ready` keeps one waker for all clones
/// of a store, so with a shared informer only the last of several waiting
/// components would be woken; each wait is therefore bounded and retried
/// (a retry that finds the store ready returns at once).
pub async fn wait_ready<K>(store: &Store<K>, token: &CancellationToken) -> bool
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    loop {
        tokio::select! {
            () = token.cancelled() => return false,
            ready = tokio::time::timeout(READY_POLL, store.wait_until_ready()) => match ready {
                Ok(ready) => return ready.is_ok(),
                Err(_elapsed) => continue,
            },
        }
    }
}
