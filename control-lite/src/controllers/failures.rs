//! Per-object failure handling: one object a controller cannot process
//! must not stop the controller or the rest of the cluster.
//!
//! Owns: turning a panic inside one reconcile into an error for that key
//! (`guard`), and reporting a key's failure streak once — a log line and a
//! Warning Event on the object (`Reporter`) — while `queue::Retry` retries
//! it with per-key backoff. Must not: decide how to reconcile anything.

use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::reflector::Store;
use kube::Resource;

use super::events::{self, Recorder};
use super::queue::ObjectKey;
use crate::supervisor::panic_message;

/// Event reason of a failed reconcile.
pub const REASON: &str = "FailedSync";

/// Why one reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure<E> {
    /// The reconcile returned an error.
    #[error(transparent)]
    Error(E),
    /// The reconcile panicked (a bug; the object is retried with backoff).
    #[error("reconcile panicked: {0}")]
    Panic(String),
}

/// Runs one reconcile, turning a panic into `Failure::Panic`.
pub async fn guard<T, E, F>(reconcile: F) -> Result<T, Failure<E>>
where
    F: Future<Output = Result<T, E>>,
{
    match AssertUnwindSafe(reconcile).catch_unwind().await {
        Ok(result) => result.map_err(Failure::Error),
        Err(payload) => Err(Failure::Panic(panic_message(payload))),
    }
}

type Lookup<Key> = Box<dyn Fn(&Key) -> Option<ObjectReference> + Send + Sync>;

/// Posts a Warning Event on the object a key names.
pub struct Reporter<Key> {
    recorder: Recorder,
    lookup: Lookup<Key>,
}

impl Reporter<ObjectKey> {
    /// Reports on objects found in `store` by their key.
    pub fn for_store<K>(recorder: Recorder, store: Store<K>) -> Self
    where
        K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        let lookup =
            move |key: &ObjectKey| store.get(&super::index::object_ref(key)).map(|obj| events::reference(&*obj));
        Reporter { recorder, lookup: Box::new(lookup) }
    }
}

impl<Key> Reporter<Key> {
    /// Posts the Warning Event about `key`'s failure (if it still exists).
    pub fn report(&self, controller: &str, key: &Key, error: &dyn Display) {
        if let Some(involved) = (self.lookup)(key) {
            let message = format!("{controller} controller could not process this object: {error}");
            self.recorder.record(involved, events::WARNING, REASON, &message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn panics_and_errors_become_failures_and_values_pass_through() {
        let ok: Result<u32, Failure<&str>> = guard(async { Ok(7) }).await;
        assert_eq!(ok.ok(), Some(7));
        let failed: Result<u32, Failure<&str>> = guard(async { Err("api down") }).await;
        assert_eq!(failed.err().map(|f| f.to_string()).as_deref(), Some("api down"));
        let panicked: Result<u32, Failure<&str>> = guard(async {
            let huge = std::hint::black_box(i32::MAX);
            Ok(u32::try_from(huge.checked_add(1).expect("attempt to add with overflow")).unwrap_or(0))
        })
        .await;
        let message = panicked.err().map(|f| f.to_string()).unwrap_or_default();
        assert_eq!(message, "reconcile panicked: attempt to add with overflow");
    }
}
