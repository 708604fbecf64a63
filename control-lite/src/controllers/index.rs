//! Secondary indexes beside an informer's store.
//!
//! kube-runtime's reflector `Store` answers "the object named X" but not
//! "the pods with label app=web" or "the slices of Service X". An [`Index`]
//! answers those in O(answer): the informer callback feeds it every change
//! ([`Index::observe`]) and it keeps `key -> objects` plus `object -> keys`,
//! so an update knows the keys the object had before (a pod's old labels,
//! a slice's old Service) as well as the new ones.
//!
//! Owns: that bookkeeping, behind a std `Mutex` held only inside these
//! methods (never across `.await`). Must not: hold objects (callers resolve
//! keys through the store, which stays the single source of truth) or decide
//! anything about them.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;

use super::informer::Change;
use super::queue::ObjectKey;

type KeysOf<K, I> = dyn Fn(&K) -> Vec<I> + Send + Sync;

struct State<I> {
    by_key: HashMap<I, HashSet<ObjectKey>>,
    keys_of: HashMap<ObjectKey, Vec<I>>,
}

/// Index keys of one object before and after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved<I> {
    /// Keys the object had (empty if it was new).
    pub before: Vec<I>,
    /// Keys it has now (empty if it was deleted).
    pub after: Vec<I>,
}

impl<I: PartialEq> Moved<I> {
    /// True if the object's keys did not change.
    pub fn unchanged(&self) -> bool {
        self.before == self.after
    }
}

/// A cloneable handle to one secondary index of objects of type `K` by keys
/// of type `I` (an object may have any number of keys).
pub struct Index<K, I> {
    keys: Arc<KeysOf<K, I>>,
    state: Arc<Mutex<State<I>>>,
}

impl<K, I> Clone for Index<K, I> {
    fn clone(&self) -> Self {
        Index { keys: self.keys.clone(), state: self.state.clone() }
    }
}

impl<K, I: Clone + Eq + Hash> Index<K, I> {
    /// An empty index computing each object's keys with `keys`.
    pub fn new(keys: impl Fn(&K) -> Vec<I> + Send + Sync + 'static) -> Self {
        Index {
            keys: Arc::new(keys),
            state: Arc::new(Mutex::new(State { by_key: HashMap::new(), keys_of: HashMap::new() })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<I>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one informer change of `object` (known as `name`) and returns
    /// its keys before and after.
    pub fn observe(&self, name: ObjectKey, object: &K, change: Change) -> Moved<I> {
        let after = match change {
            Change::Applied => {
                let mut keys = (self.keys)(object);
                dedup(&mut keys);
                keys
            }
            Change::Deleted => Vec::new(),
        };
        let mut state = self.lock();
        let before = if after.is_empty() {
            state.keys_of.remove(&name).unwrap_or_default()
        } else {
            state.keys_of.insert(name.clone(), after.clone()).unwrap_or_default()
        };
        if before != after {
            for key in before.iter().filter(|k| !after.contains(k)) {
                if let Some(set) = state.by_key.get_mut(key) {
                    set.remove(&name);
                    if set.is_empty() {
                        state.by_key.remove(key);
                    }
                }
            }
            for key in after.iter().filter(|k| !before.contains(k)) {
                state.by_key.entry(key.clone()).or_default().insert(name.clone());
            }
        }
        Moved { before, after }
    }

    /// The objects indexed under `key`, sorted by namespace/name.
    pub fn get(&self, key: &I) -> Vec<ObjectKey> {
        let state = self.lock();
        let mut found: Vec<ObjectKey> = state.by_key.get(key).into_iter().flatten().cloned().collect();
        drop(state);
        found.sort();
        found
    }

    /// How many objects are indexed under `key`.
    pub fn count(&self, key: &I) -> usize {
        self.lock().by_key.get(key).map_or(0, HashSet::len)
    }

    /// The keys `name` has now (empty if unknown).
    pub fn keys_of(&self, name: &ObjectKey) -> Vec<I> {
        self.lock().keys_of.get(name).cloned().unwrap_or_default()
    }

    /// Forgets every object `alive` rejects (after a relist, objects deleted
    /// while the watch was down get no delete event) and returns them with
    /// the keys they had.
    pub fn retain(&self, alive: impl Fn(&ObjectKey) -> bool) -> Vec<(ObjectKey, Vec<I>)> {
        let mut state = self.lock();
        let gone: Vec<ObjectKey> = state.keys_of.keys().filter(|name| !alive(name)).cloned().collect();
        let mut removed = Vec::with_capacity(gone.len());
        for name in gone {
            let keys = state.keys_of.remove(&name).unwrap_or_default();
            for key in &keys {
                if let Some(set) = state.by_key.get_mut(key) {
                    set.remove(&name);
                    if set.is_empty() {
                        state.by_key.remove(key);
                    }
                }
            }
            removed.push((name, keys));
        }
        removed
    }
}

impl<K, I> Index<K, I>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    I: Clone + Eq + Hash,
{
    /// Feeds one informer callback (see `informer::spawn_with_store`): a
    /// change updates its object; the end of a (re)list forgets objects the
    /// store no longer has. Returns every object whose keys may have moved.
    pub fn apply(&self, store: &Store<K>, change: Option<(&K, Change)>) -> Vec<(ObjectKey, Moved<I>)> {
        match change {
            Some((object, change)) => {
                let name = ObjectKey::of(object.meta());
                let moved = self.observe(name.clone(), object, change);
                vec![(name, moved)]
            }
            None => self
                .retain(|name| store.get(&object_ref(name)).is_some())
                .into_iter()
                .map(|(name, before)| (name, Moved { before, after: Vec::new() }))
                .collect(),
        }
    }

    /// The objects indexed under `key`, read from `store` (sorted by
    /// namespace/name; entries the store no longer has are skipped).
    pub fn resolve(&self, store: &Store<K>, key: &I) -> Vec<Arc<K>> {
        self.get(key).iter().filter_map(|name| store.get(&object_ref(name))).collect()
    }
}

/// The store reference of `key` (cluster-scoped objects have no namespace).
pub fn object_ref<K: Resource<DynamicType = ()>>(key: &ObjectKey) -> ObjectRef<K> {
    let reference = ObjectRef::new(&key.name);
    if key.namespace.is_empty() {
        reference
    } else {
        reference.within(&key.namespace)
    }
}

fn dedup<I: Eq>(keys: &mut Vec<I>) {
    let mut unique: Vec<I> = Vec::with_capacity(keys.len());
    for key in keys.drain(..) {
        if !unique.contains(&key) {
            unique.push(key);
        }
    }
    *keys = unique;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A stand-in object: its labels.
    struct Obj(BTreeMap<&'static str, &'static str>);

    fn obj(_name: &'static str, labels: &[(&'static str, &'static str)]) -> Obj {
        Obj(labels.iter().copied().collect())
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey { namespace: "default".into(), name: name.into() }
    }

    fn by_label() -> Index<Obj, (String, String)> {
        Index::new(|o: &Obj| o.0.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    fn names(keys: &[ObjectKey]) -> Vec<&str> {
        keys.iter().map(|k| k.name.as_str()).collect()
    }

    #[test]
    fn lookups_follow_creates_updates_and_deletes() {
        let index = by_label();
        let a = obj("a", &[("app", "web")]);
        let b = obj("b", &[("app", "web"), ("tier", "front")]);
        index.observe(key("a"), &a, Change::Applied);
        index.observe(key("b"), &b, Change::Applied);
        assert_eq!(names(&index.get(&pair("app", "web"))), ["a", "b"]);
        assert_eq!(names(&index.get(&pair("tier", "front"))), ["b"]);

        let moved = index.observe(key("a"), &obj("a", &[("app", "db")]), Change::Applied);
        assert_eq!(moved.before, [pair("app", "web")], "old labels are reported");
        assert_eq!(moved.after, [pair("app", "db")]);
        assert_eq!(names(&index.get(&pair("app", "web"))), ["b"]);
        assert_eq!(names(&index.get(&pair("app", "db"))), ["a"]);

        let moved = index.observe(key("b"), &b, Change::Deleted);
        assert_eq!(moved.before.len(), 2);
        assert!(moved.after.is_empty());
        assert!(index.get(&pair("app", "web")).is_empty());
        assert_eq!(index.count(&pair("tier", "front")), 0);
    }

    #[test]
    fn reapplying_the_same_object_changes_nothing() {
        let index = by_label();
        let a = obj("a", &[("app", "web")]);
        assert!(!index.observe(key("a"), &a, Change::Applied).unchanged(), "new object");
        assert!(index.observe(key("a"), &a, Change::Applied).unchanged());
        assert_eq!(index.count(&pair("app", "web")), 1);
        assert_eq!(index.keys_of(&key("a")), [pair("app", "web")]);
    }

    #[test]
    fn an_object_without_keys_is_not_indexed() {
        let index = by_label();
        let moved = index.observe(key("bare"), &obj("bare", &[]), Change::Applied);
        assert!(moved.before.is_empty() && moved.after.is_empty());
        assert!(index.keys_of(&key("bare")).is_empty());
        assert!(index.retain(|_| false).is_empty(), "nothing to forget");
    }

    #[test]
    fn duplicate_keys_of_one_object_count_once() {
        let index: Index<Obj, String> = Index::new(|o: &Obj| o.0.values().map(|v| v.to_string()).collect());
        index.observe(key("a"), &obj("a", &[("x", "same"), ("y", "same")]), Change::Applied);
        assert_eq!(index.keys_of(&key("a")), ["same"]);
        index.observe(key("a"), &obj("a", &[]), Change::Applied);
        assert_eq!(index.count(&"same".to_string()), 0);
    }

    #[test]
    fn retain_forgets_objects_gone_during_a_relist_and_reports_their_keys() {
        let index = by_label();
        index.observe(key("a"), &obj("a", &[("app", "web")]), Change::Applied);
        index.observe(key("b"), &obj("b", &[("app", "web")]), Change::Applied);
        let gone = index.retain(|k| k.name == "a");
        assert_eq!(gone, [(key("b"), vec![pair("app", "web")])]);
        assert_eq!(names(&index.get(&pair("app", "web"))), ["a"]);
    }

    #[test]
    fn clones_share_one_index() {
        let index = by_label();
        let other = index.clone();
        other.observe(key("a"), &obj("a", &[("app", "web")]), Change::Applied);
        assert_eq!(index.count(&pair("app", "web")), 1);
    }
}
