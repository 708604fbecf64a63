//! Shared informers: one watch and one reflector store per kind for the
//! whole control plane, fanned out to every controller (and the scheduler)
//! that subscribes, like client-go's `SharedInformerFactory`.
//!
//! Owns: starting each kind's informer on first use ([`Informers::of`]),
//! delivering every touched object to each subscriber after the store saw
//! it, replaying the store to a subscriber that joins after the first list
//! (a restarted controller), and dropping a subscriber when its token is
//! cancelled. A subscriber whose callback panics is dropped and its token
//! cancelled, so its supervisor restarts that controller alone. Must not:
//! decide anything about the objects, or run a subscriber's work beyond
//! its callback (callbacks only update indexes and queue keys).
//!
//! Each object is held once, as the `Arc<K>` in the kind's store; indexes
//! beside it hold keys, never objects.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::index::Index;
use super::informer::{self, Change};
use super::queue::{ObjectKey, WorkQueue};

/// What a subscriber is told: the store (already updated) and the touched
/// object, or `None` once after each complete (re)list.
type Callback<K> = Box<dyn Fn(&Store<K>, Option<(&K, Change)>) + Send>;

struct Subscriber<K: Resource<DynamicType = ()> + 'static> {
    id: u64,
    token: CancellationToken,
    callback: Callback<K>,
}

struct Fanout<K: Resource<DynamicType = ()> + 'static> {
    /// The store has completed a list: a new subscriber gets a replay.
    listed: bool,
    next_id: u64,
    subscribers: Vec<Subscriber<K>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Resource<DynamicType = ()> + 'static> Fanout<K> {
    /// Tells every live subscriber about one change; forgets cancelled ones
    /// and those whose callback panicked (cancelling their token).
    fn deliver(&mut self, store: &Store<K>, change: Option<(&K, Change)>) {
        self.listed |= change.is_none();
        self.subscribers.retain(|s| {
            if s.token.is_cancelled() {
                return false;
            }
            let delivered = std::panic::catch_unwind(AssertUnwindSafe(|| (s.callback)(store, change)));
            if let Err(payload) = delivered {
                let message = crate::supervisor::panic_message(payload);
                tracing::error!(kind = K::kind(&()).as_ref(), %message, "informer subscriber panicked; restarting it");
                s.token.cancel();
                return false;
            }
            true
        });
    }
}

/// One kind's shared informer: its store and its subscribers.
pub struct Shared<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    fanout: Arc<Mutex<Fanout<K>>>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Shared<K> {
    fn clone(&self) -> Self {
        Shared { store: self.store.clone(), fanout: self.fanout.clone() }
    }
}

impl<K> Shared<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Starts watching `api`; the watch ends when `token` is cancelled.
    fn start(api: Api<K>, token: CancellationToken) -> Self {
        let fanout = Arc::new(Mutex::new(Fanout { listed: false, next_id: 0, subscribers: Vec::new() }));
        let to = fanout.clone();
        let store = informer::spawn_with_store(api, token, move |store, change| lock(&to).deliver(store, change));
        Shared { store, fanout }
    }

    /// The kind's store (read-only; no notifications).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Calls `callback` for every object touched from now on (and once with
    /// `None` after each complete list) until `token` is cancelled, and
    /// returns the store. If the first list is already done, the store's
    /// current objects are replayed to `callback` before this returns.
    pub fn subscribe<F>(&self, token: &CancellationToken, callback: F) -> Store<K>
    where
        F: Fn(&Store<K>, Option<(&K, Change)>) + Send + 'static,
    {
        let mut fanout = lock(&self.fanout);
        if fanout.listed {
            for object in self.store.state() {
                callback(&self.store, Some((&object, Change::Applied)));
            }
            callback(&self.store, None);
        }
        let id = fanout.next_id;
        fanout.next_id = fanout.next_id.wrapping_add(1);
        fanout.subscribers.push(Subscriber { id, token: token.clone(), callback: Box::new(callback) });
        drop(fanout);
        let (fanout, token): (Weak<Mutex<Fanout<K>>>, _) = (Arc::downgrade(&self.fanout), token.clone());
        tokio::spawn(async move {
            token.cancelled().await;
            if let Some(fanout) = fanout.upgrade() {
                lock(&fanout).subscribers.retain(|s| s.id != id);
            }
        });
        self.store.clone()
    }

    /// Subscribes a callback that ignores the store (see [`Shared::subscribe`]).
    pub fn on_change<F>(&self, token: &CancellationToken, callback: F) -> Store<K>
    where
        F: Fn(Option<(&K, Change)>) + Send + 'static,
    {
        self.subscribe(token, move |_, change| callback(change))
    }

    /// Keeps `index` (objects by owner key) up to date and queues every
    /// owner an object had or has whenever it changes: the subscription of
    /// a controller to the objects it owns.
    pub fn owned_by(
        &self,
        token: &CancellationToken,
        index: &Index<K, ObjectKey>,
        queue: &WorkQueue<ObjectKey>,
    ) -> Store<K> {
        let (index, queue) = (index.clone(), queue.clone());
        self.subscribe(token, move |store, change| {
            for (_, moved) in index.apply(store, change) {
                for key in moved.before.into_iter().chain(moved.after) {
                    queue.add(key);
                }
            }
        })
    }
}

/// The control plane's shared informers, one per kind, started on first use
/// and watching all namespaces. Cloning shares them.
#[derive(Clone)]
pub struct Informers {
    client: Client,
    token: CancellationToken,
    kinds: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send>>>>,
    queues: super::queue_metrics::QueueMetrics,
}

impl Informers {
    /// No informers yet; those started later watch through `client` until
    /// `token` is cancelled.
    pub fn new(client: Client, token: CancellationToken) -> Self {
        Informers { client, token, kinds: Arc::new(Mutex::new(HashMap::new())), queues: Default::default() }
    }

    /// Controllers register their work queues in `queues` (served as
    /// `workqueue_*` metrics).
    pub fn with_queue_metrics(mut self, queues: super::queue_metrics::QueueMetrics) -> Self {
        self.queues = queues;
        self
    }

    /// Where controllers register their work queues.
    pub fn queue_metrics(&self) -> &super::queue_metrics::QueueMetrics {
        &self.queues
    }

    /// The shared informer of kind `K`, started if this is its first use.
    pub fn of<K>(&self) -> Shared<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut kinds = lock(&self.kinds);
        if let Some(shared) = kinds.get(&TypeId::of::<K>()).and_then(|s| s.downcast_ref::<Shared<K>>()) {
            return shared.clone();
        }
        let shared = Shared::start(Api::all(self.client.clone()), self.token.clone());
        kinds.insert(TypeId::of::<K>(), Box::new(shared.clone()));
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector::{self, store::Writer};
    use kube::runtime::watcher;

    type Seen = Arc<Mutex<Vec<String>>>;

    fn detached() -> (Shared<ConfigMap>, Writer<ConfigMap>) {
        let (store, writer) = reflector::store();
        let fanout = Arc::new(Mutex::new(Fanout { listed: false, next_id: 0, subscribers: Vec::new() }));
        (Shared { store, fanout }, writer)
    }

    fn map(name: &str) -> ConfigMap {
        let mut map = ConfigMap::default();
        map.metadata.name = Some(name.to_string());
        map.metadata.namespace = Some("default".to_string());
        map
    }

    /// What the informer task does for one watcher event.
    fn publish(shared: &Shared<ConfigMap>, writer: &mut Writer<ConfigMap>, event: watcher::Event<ConfigMap>) {
        writer.apply_watcher_event(&event);
        let change = match &event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => Some((o, Change::Applied)),
            watcher::Event::Delete(o) => Some((o, Change::Deleted)),
            watcher::Event::InitDone => None,
            watcher::Event::Init => return,
        };
        lock(&shared.fanout).deliver(&shared.store, change);
    }

    fn recorder(seen: &Seen) -> impl Fn(&Store<ConfigMap>, Option<(&ConfigMap, Change)>) + Send + 'static {
        let seen = seen.clone();
        move |_, change| {
            let entry = match change {
                Some((o, how)) => format!("{how:?} {}", o.metadata.name.clone().unwrap_or_default()),
                None => "listed".to_string(),
            };
            lock(&seen).push(entry);
        }
    }

    fn list(shared: &Shared<ConfigMap>, writer: &mut Writer<ConfigMap>, names: &[&str]) {
        publish(shared, writer, watcher::Event::Init);
        for name in names {
            publish(shared, writer, watcher::Event::InitApply(map(name)));
        }
        publish(shared, writer, watcher::Event::InitDone);
    }

    #[tokio::test]
    async fn every_subscriber_sees_each_change_once_from_one_store() {
        let (shared, mut writer) = detached();
        let token = CancellationToken::new();
        let (a, b): (Seen, Seen) = Default::default();
        shared.subscribe(&token, recorder(&a));
        shared.subscribe(&token, recorder(&b));
        list(&shared, &mut writer, &["x"]);
        publish(&shared, &mut writer, watcher::Event::Delete(map("x")));
        let want = ["Applied x", "listed", "Deleted x"];
        assert_eq!(*lock(&a), want);
        assert_eq!(*lock(&b), want);
    }

    #[tokio::test]
    async fn a_late_subscriber_gets_the_store_replayed_then_live_changes() {
        let (shared, mut writer) = detached();
        let token = CancellationToken::new();
        list(&shared, &mut writer, &["x", "y"]);
        let late: Seen = Default::default();
        let store = shared.subscribe(&token, recorder(&late));
        assert_eq!(store.state().len(), 2);
        let mut replayed = lock(&late).clone();
        replayed.sort();
        assert_eq!(replayed, ["Applied x", "Applied y", "listed"]);
        publish(&shared, &mut writer, watcher::Event::Apply(map("z")));
        assert_eq!(lock(&late).last().map(String::as_str), Some("Applied z"));
    }

    #[tokio::test]
    async fn a_cancelled_subscriber_hears_nothing_more() {
        let (shared, mut writer) = detached();
        let (gone, stays) = (CancellationToken::new(), CancellationToken::new());
        let (a, b): (Seen, Seen) = Default::default();
        shared.subscribe(&gone, recorder(&a));
        shared.subscribe(&stays, recorder(&b));
        gone.cancel();
        list(&shared, &mut writer, &["x"]);
        assert!(lock(&a).is_empty());
        assert_eq!(*lock(&b), ["Applied x", "listed"]);
        assert_eq!(lock(&shared.fanout).subscribers.len(), 1);
    }

    #[tokio::test]
    async fn a_panicking_subscriber_is_dropped_and_its_token_cancelled() {
        let (shared, mut writer) = detached();
        let (bad, good) = (CancellationToken::new(), CancellationToken::new());
        shared.on_change(&bad, |change: Option<(&ConfigMap, Change)>| {
            assert!(change.is_none(), "boom");
        });
        let seen: Seen = Default::default();
        shared.subscribe(&good, recorder(&seen));
        list(&shared, &mut writer, &["x", "y"]);
        assert!(bad.is_cancelled(), "its supervisor restarts it");
        assert!(!good.is_cancelled());
        assert_eq!(*lock(&seen), ["Applied x", "Applied y", "listed"]);
    }
}
