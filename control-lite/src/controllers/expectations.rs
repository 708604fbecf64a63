//! Expectations: pods a controller created (by name) or deleted (by uid)
//! that its informer has not shown yet, so a reconcile that runs before the
//! watch catches up does not create or delete twice. Forgotten once met or
//! after a timeout.

use k8s_openapi::api::core::v1::Pod;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long unmet expectations block further creates/deletes.
const TTL: Duration = Duration::from_secs(10);

struct Pending {
    created: HashSet<String>,
    deleted: HashSet<String>,
    at: Instant,
}

/// Expectations per owner key.
pub struct Expectations<K> {
    pending: HashMap<K, Pending>,
}

impl<K: Hash + Eq + Clone> Default for Expectations<K> {
    fn default() -> Self {
        Expectations { pending: HashMap::new() }
    }
}

impl<K: Hash + Eq + Clone> Expectations<K> {
    /// True once `pods` (the owner's pods as the informer shows them)
    /// reflect every expected create and delete, or they timed out.
    pub fn met(&mut self, key: &K, pods: &[Arc<Pod>]) -> bool {
        let Some(pending) = self.pending.get(key) else { return true };
        let seen: HashSet<&str> = pods.iter().filter_map(|p| p.metadata.name.as_deref()).collect();
        let live: HashSet<&str> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        let met = pending.created.iter().all(|n| seen.contains(n.as_str()))
            && pending.deleted.iter().all(|u| !live.contains(u.as_str()));
        if met || pending.at.elapsed() > TTL {
            self.pending.remove(key);
            return true;
        }
        false
    }

    fn entry(&mut self, key: &K) -> &mut Pending {
        self.pending.entry(key.clone()).or_insert_with(|| Pending {
            created: HashSet::new(),
            deleted: HashSet::new(),
            at: Instant::now(),
        })
    }

    /// Expects a pod named `name` to appear.
    pub fn created(&mut self, key: &K, name: String) {
        self.entry(key).created.insert(name);
    }

    /// Expects the pod with `uid` to start terminating or disappear.
    pub fn deleted(&mut self, key: &K, uid: String) {
        self.entry(key).deleted.insert(uid);
    }

    /// Forgets `key` (its owner is gone).
    pub fn forget(&mut self, key: &K) {
        self.pending.remove(key);
    }
}
