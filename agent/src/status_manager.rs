//! The status manager: the single writer of pod status on this node.
//!
//! Pod workers hand over the status they computed ([`StatusHandle::set`])
//! and go on at once: the handle keeps one pending entry per pod (latest
//! wins), so memory stays bounded by the pods on the node and a worker never
//! waits for the API. One task ([`StatusManager::run`]) drains everything
//! pending, keeps only what [`decide::needs_write`] says differs from what
//! the API showed and from what it last wrote, and patches those with
//! bounded concurrency. A failed write is retried with backoff (a newer
//! status from the worker replaces the one being retried); a write refused
//! because the pod is gone or was re-created is dropped, and so is
//! everything of a pod the node forgets ([`StatusHandle::forget`]).
//!
//! The final status of a pod about to be deleted is the one write a worker
//! waits for ([`StatusHandle::write_final`]): it must reach the API before
//! the delete. It goes through the same queue (so it is ordered after the
//! pod's earlier writes and skipped when the API already shows it), is not
//! retried, and the manager forgets the pod once it is done.
//!
//! Must not: compute statuses (`status` does) or block its callers.

pub mod decide;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::pod_api::{ApiError, PodApi};
pub use decide::{needs_write, RetryPolicy, StatusUpdate, Written};

/// Patches in flight at once.
const MAX_IN_FLIGHT: usize = 8;

/// A final status could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused or failed the write.
    #[error("writing the final pod status: {0}")]
    Api(#[from] ApiError),
    /// The manager stopped (agent shutdown) before writing it.
    #[error("the status manager stopped before writing the final pod status")]
    Stopped,
}

type Done = oneshot::Sender<Result<(), ApiError>>;

#[derive(Debug, Default)]
struct Inbox {
    updates: HashMap<String, StatusUpdate>,
    finals: HashMap<String, (StatusUpdate, Done)>,
    forgotten: HashSet<String>,
    /// The manager is gone: nobody would answer a final write.
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    inbox: Mutex<Inbox>,
    wake: Notify,
}

/// The workers' side of the status manager. Cheap to clone; never blocks.
#[derive(Debug, Clone)]
pub struct StatusHandle {
    shared: Arc<Shared>,
}

impl StatusHandle {
    /// Hands over the status computed for `pod` (latest wins per pod UID).
    pub fn set(&self, pod: &Pod, status: PodStatus) {
        self.set_update(StatusUpdate::of(pod, status));
    }

    /// Writes the final status of `pod` (about to be deleted) and waits
    /// for the write; the manager forgets the pod afterwards. Ok at once
    /// when the API already shows this status.
    pub async fn write_final(&self, pod: &Pod, status: PodStatus) -> Result<(), Error> {
        let (done, written) = oneshot::channel();
        let update = StatusUpdate::of(pod, status);
        match self.shared.inbox.lock() {
            Ok(mut inbox) if !inbox.closed => {
                inbox.updates.remove(&update.uid);
                inbox.finals.insert(update.uid.clone(), (update, done));
            }
            _ => return Err(Error::Stopped),
        }
        self.shared.wake.notify_one();
        written.await.map_err(|_| Error::Stopped)?.map_err(Error::Api)
    }

    /// Hands over one update (latest wins per `update.uid`).
    pub fn set_update(&self, update: StatusUpdate) {
        if let Ok(mut inbox) = self.shared.inbox.lock() {
            inbox.forgotten.remove(&update.uid);
            inbox.updates.insert(update.uid.clone(), update);
        }
        self.shared.wake.notify_one();
    }

    /// Pod `uid` left the node: drop whatever is pending or remembered for it.
    pub fn forget(&self, uid: &str) {
        if let Ok(mut inbox) = self.shared.inbox.lock() {
            inbox.updates.remove(uid);
            inbox.forgotten.insert(uid.to_string());
        }
        self.shared.wake.notify_one();
    }
}

#[derive(Debug)]
struct Queued {
    update: StatusUpdate,
    failures: u32,
    not_before: Option<Instant>,
    /// Set for a final status: who waits for the write.
    done: Option<Done>,
}

/// The writing side; run it once per node with [`StatusManager::run`].
pub struct StatusManager {
    api: Arc<dyn PodApi>,
    shared: Arc<Shared>,
    retry: RetryPolicy,
    queue: HashMap<String, Queued>,
    written: HashMap<String, Written>,
}

impl StatusManager {
    /// A manager writing through `api`, and the handle workers use.
    pub fn new(api: Arc<dyn PodApi>, retry: RetryPolicy) -> (StatusManager, StatusHandle) {
        let shared = Arc::new(Shared::default());
        let handle = StatusHandle { shared: shared.clone() };
        let manager = StatusManager { api, shared, retry, queue: HashMap::new(), written: HashMap::new() };
        (manager, handle)
    }

    /// A manager running on its own task until `token` is cancelled.
    pub fn spawn(api: Arc<dyn PodApi>, token: CancellationToken) -> StatusHandle {
        let (manager, handle) = StatusManager::new(api, RetryPolicy::default());
        tokio::spawn(manager.run(token));
        handle
    }

    /// Writes statuses until `token` is cancelled (what is pending then is
    /// dropped: the next agent recomputes every status from the runtime).
    pub async fn run(mut self, token: CancellationToken) {
        loop {
            self.take_inbox();
            let due = self.take_due(Instant::now());
            if !due.is_empty() {
                let api = self.api.clone();
                tokio::select! {
                    () = token.cancelled() => return,
                    results = write_all(api, due) => self.settle(results, Instant::now()),
                }
                continue;
            }
            let next_retry = self.queue.values().filter_map(|q| q.not_before).min();
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                () = token.cancelled() => return,
                () = self.shared.wake.notified() => {}
                () = tokio::time::sleep_until(next_retry.unwrap_or(far)) => {}
            }
        }
    }

    /// Moves the workers' updates into the queue; a newer update replaces
    /// the queued one but keeps its retry delay.
    fn take_inbox(&mut self) {
        let inbox = match self.shared.inbox.lock() {
            Ok(mut inbox) => std::mem::take(&mut *inbox),
            Err(_) => return,
        };
        let Inbox { updates, finals, forgotten, closed: _ } = inbox;
        for (uid, update) in updates {
            match self.queue.get_mut(&uid) {
                Some(queued) => queued.update = update,
                None => {
                    self.queue.insert(uid, Queued { update, failures: 0, not_before: None, done: None });
                }
            }
        }
        for (uid, (update, done)) in finals {
            self.queue.insert(uid, Queued { update, failures: 0, not_before: None, done: Some(done) });
        }
        for uid in forgotten {
            self.queue.remove(&uid);
            self.written.remove(&uid);
        }
    }

    /// Takes the queued entries due at `now` that need a write; the others
    /// due now are dropped (nothing to write).
    fn take_due(&mut self, now: Instant) -> Vec<Queued> {
        let due: Vec<String> = self
            .queue
            .iter()
            .filter(|(_, q)| q.not_before.is_none_or(|t| t <= now))
            .map(|(uid, _)| uid.clone())
            .collect();
        let mut batch = Vec::new();
        for uid in due {
            let Some(mut queued) = self.queue.remove(&uid) else { continue };
            if needs_write(&queued.update, self.written.get(&uid)) {
                batch.push(queued);
            } else if let Some(done) = queued.done.take() {
                self.written.remove(&uid);
                let _ = done.send(Ok(()));
            }
        }
        batch
    }

    fn settle(&mut self, results: Vec<(Queued, Result<(), ApiError>)>, now: Instant) {
        for (mut queued, result) in results {
            let uid = queued.update.uid.clone();
            if let Some(done) = queued.done.take() {
                self.written.remove(&uid);
                let _ = done.send(result);
                continue;
            }
            match result {
                Ok(()) => {
                    let update = queued.update;
                    self.written.insert(uid, Written { seen_version: update.seen_version, status: update.status });
                }
                Err(error) if error.is_gone() => {
                    tracing::debug!(%error, "pod gone; status dropped");
                    self.written.remove(&uid);
                }
                Err(error) => {
                    queued.failures = queued.failures.saturating_add(1);
                    let delay = self.retry.delay(queued.failures);
                    tracing::warn!(%error, failures = queued.failures, ?delay, "status write failed; retrying");
                    queued.not_before = Some(now + delay);
                    self.queue.entry(uid).or_insert(queued);
                }
            }
        }
    }
}

impl Drop for StatusManager {
    /// Answers the final writes still waiting (`Error::Stopped`) and refuses
    /// later ones.
    fn drop(&mut self) {
        if let Ok(mut inbox) = self.shared.inbox.lock() {
            inbox.closed = true;
            inbox.finals.clear();
        }
    }
}

/// Patches every entry of `batch`, `MAX_IN_FLIGHT` at a time.
async fn write_all(api: Arc<dyn PodApi>, batch: Vec<Queued>) -> Vec<(Queued, Result<(), ApiError>)> {
    futures::stream::iter(batch)
        .map(|queued| {
            let api = api.clone();
            async move {
                let u = &queued.update;
                let result = api.patch_status(&u.namespace, &u.name, &u.uid, &u.status).await;
                (queued, result)
            }
        })
        .buffer_unordered(MAX_IN_FLIGHT)
        .collect()
        .await
}

#[cfg(test)]
#[path = "status_manager/tests.rs"]
mod tests;
