//! A deduplicating work queue of object keys and the worker loop draining it.
//!
//! Owns: "this key needs a reconcile" bookkeeping (a key queued twice runs
//! once; a key being processed is not handed out again until its worker
//! calls `done`, so several workers may drain one queue, each key
//! reconciled by one worker at a time), delayed requeues, and per-key
//! exponential backoff after errors.
//! Must not: know what a key means (the controllers do).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Display;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::failures::Reporter;

/// Key of a namespaced object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// Key of a namespaced object's metadata (missing fields become empty).
    pub fn of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Self {
        ObjectKey { namespace: meta.namespace.clone().unwrap_or_default(), name: meta.name.clone().unwrap_or_default() }
    }
}

impl Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Like client-go's workqueue: `queued` is the dirty set, `order` holds
/// the queued keys not being processed, `processing` the keys handed out.
struct State<Key> {
    order: VecDeque<Key>,
    queued: HashSet<Key>,
    processing: HashSet<Key>,
    /// Keys ever queued (`workqueue_adds_total`).
    adds: u64,
    /// Delayed requeues pending: the earliest wake per key (one timer
    /// task per key, however often a reconcile asks for a later one).
    waiting: HashMap<Key, tokio::time::Instant>,
}

impl<Key> State<Key> {
    fn stats(&self) -> QueueStats {
        QueueStats { depth: self.order.len(), adds: self.adds }
    }
}

/// What `/metrics` shows of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Keys waiting (queued, not being processed).
    pub depth: usize,
    /// Keys queued since the queue was made.
    pub adds: u64,
}

/// Cloneable handle to a queue of keys.
pub struct WorkQueue<Key> {
    state: Arc<Mutex<State<Key>>>,
    notify: Arc<Notify>,
    token: CancellationToken,
}

impl<Key> Clone for WorkQueue<Key> {
    fn clone(&self) -> Self {
        WorkQueue { state: self.state.clone(), notify: self.notify.clone(), token: self.token.clone() }
    }
}

impl<Key: Clone + Eq + Hash + Send + 'static> WorkQueue<Key> {
    /// An empty queue whose delayed requeues stop when `token` is cancelled.
    pub fn new(token: CancellationToken) -> Self {
        WorkQueue {
            state: Arc::new(Mutex::new(State {
                order: VecDeque::new(),
                queued: HashSet::new(),
                processing: HashSet::new(),
                adds: 0,
                waiting: HashMap::new(),
            })),
            notify: Arc::new(Notify::new()),
            token,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<Key>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `key` unless it is already waiting (a key being processed
    /// is handed out again once its worker is `done` with it).
    pub fn add(&self, key: Key) {
        let mut state = self.lock();
        if state.queued.insert(key.clone()) {
            state.adds = state.adds.saturating_add(1);
            if !state.processing.contains(&key) {
                state.order.push_back(key);
            }
        }
        drop(state);
        self.notify.notify_one();
    }

    /// Marks `key` (returned by `next`) as processed: if it was queued
    /// meanwhile, it becomes available again.
    pub fn done(&self, key: &Key) {
        let mut state = self.lock();
        state.processing.remove(key);
        let again = state.queued.contains(key);
        if again {
            state.order.push_back(key.clone());
        }
        drop(state);
        if again {
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`, unless a requeue of it is already
    /// pending no later than that (the earliest one wins, as client-go's
    /// delaying queue: the reconcile it triggers asks again if needed).
    pub fn add_after(&self, key: Key, delay: Duration) {
        let Some(at) = tokio::time::Instant::now().checked_add(delay) else { return };
        {
            let mut state = self.lock();
            if state.waiting.get(&key).is_some_and(|pending| *pending <= at) {
                return;
            }
            state.waiting.insert(key.clone(), at);
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = queue.token.cancelled() => {}
                () = tokio::time::sleep_until(at) => {
                    {
                        let mut state = queue.lock();
                        if state.waiting.get(&key) == Some(&at) {
                            state.waiting.remove(&key);
                        }
                    }
                    queue.add(key);
                }
            }
        });
    }

    /// Depth and adds, for metrics.
    pub fn stats(&self) -> QueueStats {
        self.lock().stats()
    }

    /// A probe of [`Self::stats`] that does not keep the queue alive.
    pub fn stats_probe(&self) -> impl Fn() -> Option<QueueStats> + Send + Sync + 'static {
        let state = Arc::downgrade(&self.state);
        move || {
            let state = state.upgrade()?;
            let stats = state.lock().unwrap_or_else(PoisonError::into_inner).stats();
            Some(stats)
        }
    }

    fn pop(&self) -> Option<Key> {
        let mut state = self.lock();
        let key = state.order.pop_front()?;
        state.queued.remove(&key);
        state.processing.insert(key.clone());
        let more = !state.order.is_empty();
        drop(state);
        if more {
            // Wake another worker for the rest.
            self.notify.notify_one();
        }
        Some(key)
    }

    /// The next key, waiting for one; `None` once the token is cancelled.
    /// The caller must call `done` with it after processing (`Retry::finish`
    /// does).
    pub async fn next(&self) -> Option<Key> {
        loop {
            if self.token.is_cancelled() {
                return None;
            }
            if let Some(key) = self.pop() {
                return Some(key);
            }
            tokio::select! {
                () = self.token.cancelled() => return None,
                () = self.notify.notified() => {}
            }
        }
    }
}

/// How often a resync round queues its next batch of keys.
const RESYNC_TICK: Duration = Duration::from_millis(100);

/// Queues the key of every object in `store` once per `interval`, spread
/// evenly over the interval in small batches (a level-triggered safety net
/// whose cost is smooth and O(objects) per interval), until `token` is
/// cancelled. The first round starts after one interval: the informers'
/// initial list already queues every key.
pub fn spawn_resync<K>(
    queue: WorkQueue<ObjectKey>,
    store: kube::runtime::reflector::Store<K>,
    interval: Duration,
    token: CancellationToken,
) where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut round = tokio::time::Instant::now();
        loop {
            round += interval;
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep_until(round) => {}
            }
            let keys: Vec<ObjectKey> = store.state().iter().map(|o| ObjectKey::of(o.meta())).collect();
            for batch in keys.chunks(resync_batch(keys.len(), interval, RESYNC_TICK)) {
                for key in batch {
                    queue.add(key.clone());
                }
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(RESYNC_TICK) => {}
                }
            }
        }
    });
}

/// How many of `total` keys to queue per `tick` so a round spreads over
/// `interval` (at least one).
pub fn resync_batch(total: usize, interval: Duration, tick: Duration) -> usize {
    let ticks = (interval.as_millis() / tick.as_millis().max(1)).max(1);
    let total = u128::try_from(total).unwrap_or(u128::MAX);
    usize::try_from(total.div_ceil(ticks)).unwrap_or(usize::MAX).max(1)
}

/// Delay before retrying a key that failed `failures` times in a row.
pub fn backoff(failures: u32) -> Duration {
    let millis = 200u64.saturating_mul(1u64 << failures.min(10));
    Duration::from_millis(millis.min(30_000))
}

/// Per-key failure counts: turns a reconcile result into the next requeue
/// (the requested delay, or exponential backoff after errors). The first
/// failure of a streak is reported (a log line, and a Warning Event with a
/// `Reporter`); repeats are logged at debug level only.
pub struct Retry<Key> {
    name: &'static str,
    failures: HashMap<Key, u32>,
    reporter: Option<Reporter<Key>>,
}

impl<Key: Clone + Eq + Hash + Display + Send + 'static> Retry<Key> {
    /// Retry bookkeeping for the controller called `name` (used in logs).
    pub fn new(name: &'static str) -> Self {
        Retry { name, failures: HashMap::new(), reporter: None }
    }

    /// Also posts a Warning Event on the object when its failures start.
    pub fn reporting(mut self, reporter: Reporter<Key>) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// Records the outcome of reconciling `key` (handed out by `queue`),
    /// marks it done and requeues it if needed.
    pub fn finish<E: Display>(&mut self, queue: &WorkQueue<Key>, key: Key, result: Result<Option<Duration>, E>) {
        queue.done(&key);
        match result {
            Ok(requeue) => {
                self.failures.remove(&key);
                if let Some(delay) = requeue {
                    queue.add_after(key, delay);
                }
            }
            Err(error) => {
                let count = self.failures.entry(key.clone()).or_insert(0);
                let delay = backoff(*count);
                let first = *count == 0;
                *count = count.saturating_add(1);
                if first {
                    tracing::warn!(controller = self.name, %key, %error, ?delay, "reconcile failed; retrying with backoff");
                    if let Some(reporter) = &self.reporter {
                        reporter.report(self.name, &key, &error);
                    }
                } else {
                    tracing::debug!(controller = self.name, %key, %error, ?delay, "reconcile failed again");
                }
                queue.add_after(key, delay);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn duplicate_keys_are_processed_once_in_order() {
        let token = CancellationToken::new();
        let queue = WorkQueue::new(token.clone());
        for key in ["a", "b", "a", "c", "b"] {
            queue.add(key.to_string());
        }
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(queue.next().await.expect("key"));
        }
        assert_eq!(seen, ["a", "b", "c"]);
        token.cancel();
        assert_eq!(queue.next().await, None);
    }

    #[tokio::test]
    async fn a_key_in_process_is_handed_out_again_only_after_done() {
        let token = CancellationToken::new();
        let queue = WorkQueue::new(token.clone());
        queue.add("a".to_string());
        queue.add("b".to_string());
        let first = queue.next().await.expect("a");
        queue.add("a".to_string());
        assert_eq!(queue.next().await.as_deref(), Some("b"), "a is still being processed");
        queue.done(&"b".to_string());
        assert!(queue.pop().is_none(), "a waits for its worker");
        queue.done(&first);
        assert_eq!(queue.next().await.as_deref(), Some("a"), "queued again while processed");
        queue.done(&first);
        assert!(queue.pop().is_none());
        token.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_requeues_keep_the_earliest_one_per_key() {
        let token = CancellationToken::new();
        let queue = WorkQueue::new(token.clone());
        queue.add_after("a".to_string(), Duration::from_secs(600));
        queue.add_after("a".to_string(), Duration::from_secs(900));
        queue.add_after("a".to_string(), Duration::from_secs(5));
        assert_eq!(queue.lock().waiting.len(), 1);
        let start = tokio::time::Instant::now();
        assert_eq!(queue.next().await.as_deref(), Some("a"));
        assert_eq!(start.elapsed(), Duration::from_secs(5), "the earliest wake");
        assert!(queue.lock().waiting.is_empty());
        queue.done(&"a".to_string());
        // The superseded 600 s timer still fires once (harmless), the 900 s one never existed.
        assert_eq!(queue.next().await.as_deref(), Some("a"));
        assert_eq!(start.elapsed(), Duration::from_secs(600));
        token.cancel();
    }

    #[test]
    fn resync_rounds_are_spread_over_the_interval() {
        let tick = Duration::from_millis(100);
        let cases = [
            (0, Duration::from_secs(30), 1),
            (5, Duration::from_secs(30), 1),
            (10_000, Duration::from_secs(30), 34),
            (44_000, Duration::from_secs(300), 15),
            (7, Duration::from_millis(10), 7),
        ];
        for (total, interval, want) in cases {
            assert_eq!(resync_batch(total, interval, tick), want, "{total} keys over {interval:?}");
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        let got: Vec<u64> =
            [0, 1, 2, 5, 20].into_iter().map(|n| u64::try_from(backoff(n).as_millis()).unwrap_or(u64::MAX)).collect();
        assert_eq!(got, [200, 400, 800, 6400, 30_000]);
    }
}
