//! The ConfigMaps and Secrets this node's pods mount, followed by watching
//! (upstream's `Watch` change-detection strategy): one watch per object
//! (`fieldSelector=metadata.name=<name>` in its namespace) while at least
//! one pod uses it, the latest object cached, and the using pods' workers
//! woken on every change, so an update reaches the volume in about a watch
//! event's latency instead of a poll period.
//!
//! [`interest`] (pure) counts users; [`source`] is the narrow watch trait
//! (kube-rs watcher, or a fake). A pod worker calls [`ObjectWatches::set_interest`]
//! when it sets its volumes up, reads objects through [`ObjectWatches::lookup`]
//! (falling back to a GET while a watch has not listed yet) and compares
//! [`ObjectWatches::revision`]s to know when to set them up again.
//!
//! Must not: hold its lock across an await, or write volumes (the worker does).

pub mod interest;
pub mod source;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use self::interest::Interest;
pub use self::source::{FakeObjectSource, KubeObjectSource, ObjectEvent, ObjectSource};

/// The kinds of object a volume can take data from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ConfigMap,
    Secret,
}

/// One watched object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

/// A watched object as last seen.
#[derive(Debug, Clone)]
pub enum Object {
    ConfigMap(Arc<ConfigMap>),
    Secret(Arc<Secret>),
}

impl Object {
    fn resource_version(&self) -> Option<&str> {
        match self {
            Object::ConfigMap(cm) => cm.metadata.resource_version.as_deref(),
            Object::Secret(s) => s.metadata.resource_version.as_deref(),
        }
    }
}

/// What the watch of an object knows.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// `None` until the watch has listed; then bumped on every change.
    pub revision: Option<u64>,
    /// The object (`None`: absent, or not listed yet).
    pub object: Option<Object>,
}

#[derive(Debug)]
struct Entry {
    lookup: Lookup,
    cancel: CancellationToken,
}

#[derive(Default)]
struct State {
    interest: Interest,
    entries: HashMap<ObjectKey, Entry>,
    wakes: HashMap<String, Arc<Notify>>,
    /// Revisions are unique across watches, so a stopped and restarted
    /// watch never repeats one a pod saw.
    last_revision: u64,
}

/// The node's watches of mounted ConfigMaps and Secrets.
pub struct ObjectWatches {
    source: Arc<dyn ObjectSource>,
    state: Arc<Mutex<State>>,
    token: CancellationToken,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ObjectWatches {
    /// Watches objects through `source` until `token` is cancelled.
    pub fn new(source: Arc<dyn ObjectSource>, token: CancellationToken) -> Arc<Self> {
        Arc::new(Self { source, state: Arc::default(), token })
    }

    /// Pod `uid` now uses exactly `keys`; `wake` wakes its worker.
    pub fn set_interest(&self, uid: &str, keys: BTreeSet<ObjectKey>, wake: Arc<Notify>) {
        let mut state = lock(&self.state);
        if keys.is_empty() {
            state.wakes.remove(uid);
        } else {
            state.wakes.insert(uid.to_string(), wake);
        }
        let change = state.interest.set(uid, keys);
        for key in change.stop {
            if let Some(entry) = state.entries.remove(&key) {
                entry.cancel.cancel();
            }
        }
        for key in change.start {
            let cancel = self.token.child_token();
            let entry = Entry { lookup: Lookup { revision: None, object: None }, cancel: cancel.clone() };
            state.entries.insert(key.clone(), entry);
            let events = self.source.watch(&key);
            tokio::spawn(follow(events, key, self.state.clone(), cancel));
        }
    }

    /// Pod `uid` uses nothing any more.
    pub fn forget(&self, uid: &str) {
        self.set_interest(uid, BTreeSet::new(), Arc::new(Notify::new()));
    }

    /// What the watch of `key` knows (`None`: not watched).
    pub fn lookup(&self, key: &ObjectKey) -> Option<Lookup> {
        lock(&self.state).entries.get(key).map(|e| e.lookup.clone())
    }

    /// The revision of `key` (`None`: not watched or not listed yet).
    pub fn revision(&self, key: &ObjectKey) -> Option<u64> {
        lock(&self.state).entries.get(key).and_then(|e| e.lookup.revision)
    }

    /// How many objects are watched.
    pub fn watched(&self) -> usize {
        lock(&self.state).interest.watched()
    }
}

/// Applies one watch's events to its entry and wakes the users when the
/// object changed (by presence or resourceVersion).
async fn follow(
    mut events: futures::stream::BoxStream<'static, ObjectEvent>,
    key: ObjectKey,
    state: Arc<Mutex<State>>,
    cancel: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return,
            event = events.next() => match event {
                Some(event) => event,
                None => return,
            },
        };
        let object = match event {
            ObjectEvent::Listed(object) => object,
            ObjectEvent::Changed(object) => Some(object),
            ObjectEvent::Deleted => None,
        };
        let mut guard = lock(&state);
        let state = &mut *guard;
        let Some(entry) = state.entries.get_mut(&key) else { return };
        let version = |o: &Option<Object>| o.as_ref().map(|o| o.resource_version().unwrap_or_default().to_string());
        let changed = entry.lookup.revision.is_none() || version(&entry.lookup.object) != version(&object);
        if !changed {
            continue;
        }
        state.last_revision = state.last_revision.saturating_add(1);
        entry.lookup = Lookup { revision: Some(state.last_revision), object };
        tracing::debug!(?key, revision = state.last_revision, "watched object changed");
        for uid in state.interest.users_of(&key) {
            if let Some(wake) = state.wakes.get(uid) {
                wake.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests;
