//! A small bounded map that forgets the least recently used entry first.
//!
//! Owns: bounding the correlator's memory. Lookups and inserts are
//! O(log n); nothing here knows about events.

use std::collections::{BTreeMap, HashMap};

/// A map of at most `capacity` entries; inserting into a full map evicts
/// the entry touched longest ago.
#[derive(Debug)]
pub struct Lru<V> {
    capacity: usize,
    tick: u64,
    entries: HashMap<String, (V, u64)>,
    order: BTreeMap<u64, String>,
}

impl<V> Lru<V> {
    /// An empty map holding at most `capacity` (at least 1) entries.
    pub fn new(capacity: usize) -> Self {
        Lru { capacity: capacity.max(1), tick: 0, entries: HashMap::new(), order: BTreeMap::new() }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick = self.tick.wrapping_add(1);
        self.tick
    }

    /// The value under `key`, marking it most recently used.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let tick = self.next_tick();
        let (_, used) = self.entries.get_mut(key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, key.to_string());
        self.entries.get_mut(key).map(|(value, _)| value)
    }

    /// Inserts or replaces `key`, evicting the least recently used entry
    /// if the map is full.
    pub fn insert(&mut self, key: String, value: V) {
        let tick = self.next_tick();
        if let Some((_, used)) = self.entries.remove(&key) {
            self.order.remove(&used);
        }
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            self.entries.remove(&oldest);
        }
        self.order.insert(tick, key.clone());
        self.entries.insert(key, (value, tick));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let (value, used) = self.entries.remove(key)?;
        self.order.remove(&used);
        Some(value)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_map_evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.insert("a".to_string(), 1);
        lru.insert("b".to_string(), 2);
        assert_eq!(lru.get_mut("a").copied(), Some(1), "touch a");
        lru.insert("c".to_string(), 3);
        assert_eq!(lru.len(), 2);
        assert!(lru.get_mut("b").is_none(), "b was least recently used");
        assert_eq!(lru.get_mut("a").copied(), Some(1));
        assert_eq!(lru.get_mut("c").copied(), Some(3));
        lru.insert("c".to_string(), 4);
        assert_eq!((lru.len(), lru.get_mut("c").copied()), (2, Some(4)), "replacing does not grow");
        assert_eq!(lru.remove("a"), Some(1));
        assert_eq!(lru.len(), 1);
    }
}
