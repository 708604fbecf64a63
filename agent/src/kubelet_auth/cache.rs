//! A small TTL cache of review answers (token reviews, access reviews),
//! bounded in size: upstream's kubelet keeps allowed decisions 5 minutes and
//! denied ones 30 seconds. Time is passed in, so tests need no clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long answers are kept, by outcome, and how many at most.
#[derive(Debug, Clone, Copy)]
pub struct Ttl {
    /// For positive answers.
    pub positive: Duration,
    /// For negative answers.
    pub negative: Duration,
    /// Entries kept at most.
    pub capacity: usize,
}

/// Answers by key until they expire.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Ttl,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// An empty cache.
    pub fn new(ttl: Ttl) -> TtlCache<K, V> {
        TtlCache { ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// The answer for `key` if it has not expired at `now`.
    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some((value, expires)) if *expires > now => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` (positive or not) for `key` from `now`. When full,
    /// expired entries go first, then the one expiring soonest.
    pub fn put(&self, key: K, value: V, positive: bool, now: Instant) {
        let ttl = if positive { self.ttl.positive } else { self.ttl.negative };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.ttl.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= self.ttl.capacity {
                let soonest = entries.iter().min_by_key(|(_, (_, expires))| *expires).map(|(k, _)| k.clone());
                if let Some(soonest) = soonest {
                    entries.remove(&soonest);
                }
            }
        }
        if self.ttl.capacity > 0 {
            entries.insert(key, (value, now + ttl));
        }
    }

    /// Entries held (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Ttl = Ttl { positive: Duration::from_secs(300), negative: Duration::from_secs(30), capacity: 3 };

    #[test]
    fn allowed_answers_live_five_minutes_and_denied_thirty_seconds() {
        let cache = TtlCache::new(TTL);
        let t0 = Instant::now();
        cache.put("allow", true, true, t0);
        cache.put("deny", false, false, t0);
        assert_eq!(cache.get(&"allow", t0 + Duration::from_secs(299)), Some(true));
        assert_eq!(cache.get(&"deny", t0 + Duration::from_secs(29)), Some(false));
        assert_eq!(cache.get(&"deny", t0 + Duration::from_secs(30)), None, "denials expire after 30 s");
        assert_eq!(cache.get(&"allow", t0 + Duration::from_secs(300)), None, "allows expire after 5 min");
        assert!(cache.is_empty(), "expired entries are dropped when read");
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_the_soonest_to_expire() {
        let cache = TtlCache::new(TTL);
        let t0 = Instant::now();
        cache.put("a", 1, false, t0);
        cache.put("b", 2, true, t0);
        cache.put("c", 3, true, t0 + Duration::from_secs(1));
        // Full: "a" (denied, expiring first) makes room.
        cache.put("d", 4, true, t0 + Duration::from_secs(2));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&"a", t0 + Duration::from_secs(2)), None);
        // Then "b", the soonest of the rest.
        cache.put("e", 5, true, t0 + Duration::from_secs(3));
        assert_eq!(cache.get(&"b", t0 + Duration::from_secs(3)), None);
        for key in ["c", "d", "e"] {
            assert!(cache.get(&key, t0 + Duration::from_secs(3)).is_some(), "{key}");
        }
        // Replacing a held key needs no room.
        cache.put("e", 6, true, t0 + Duration::from_secs(4));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&"e", t0 + Duration::from_secs(4)), Some(6));
    }
}
