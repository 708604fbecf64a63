//! Pure bookkeeping of who uses which watched object: which watches a
//! change of one pod's interest starts and stops, and whether a pod's
//! volumes must be set up again ([`freshness`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::ObjectKey;

/// Users (pod UIDs) per watched object.
#[derive(Debug, Default)]
pub struct Interest {
    by_pod: HashMap<String, BTreeSet<ObjectKey>>,
    users: BTreeMap<ObjectKey, usize>,
}

/// Watches to start and stop after an interest change.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub start: Vec<ObjectKey>,
    pub stop: Vec<ObjectKey>,
}

impl Interest {
    /// Pod `uid` now uses exactly `keys`.
    pub fn set(&mut self, uid: &str, keys: BTreeSet<ObjectKey>) -> Change {
        let old = self.by_pod.remove(uid).unwrap_or_default();
        let mut change = Change::default();
        for key in keys.difference(&old) {
            let count = self.users.entry(key.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                change.start.push(key.clone());
            }
        }
        for key in old.difference(&keys) {
            if let Some(count) = self.users.get_mut(key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.users.remove(key);
                    change.stop.push(key.clone());
                }
            }
        }
        if !keys.is_empty() {
            self.by_pod.insert(uid.to_string(), keys);
        }
        change
    }

    /// The pods that use `key`.
    pub fn users_of<'a>(&'a self, key: &'a ObjectKey) -> impl Iterator<Item = &'a str> + 'a {
        self.by_pod.iter().filter(|(_, keys)| keys.contains(key)).map(|(uid, _)| uid.as_str())
    }

    /// How many objects are watched.
    pub fn watched(&self) -> usize {
        self.users.len()
    }
}

/// How volumes set up from objects at revisions `seen` (`None`: the
/// object came from a GET before its watch listed it) stand against the
/// watches' revisions now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Every object is at the revision the volumes were set up from.
    Current,
    /// An object changed (or its watch lost it): set up again now.
    Changed,
    /// Some object was never seen by its watch: poll it now and then.
    Unknown,
}

/// See [`Freshness`]; `current` is a watch's revision (`None`: not listed).
pub fn freshness(seen: &BTreeMap<ObjectKey, Option<u64>>, current: impl Fn(&ObjectKey) -> Option<u64>) -> Freshness {
    let mut unknown = false;
    for (key, revision) in seen {
        match (revision, current(key)) {
            (Some(seen), Some(now)) if *seen == now => {}
            (None, None) => unknown = true,
            _ => return Freshness::Changed,
        }
    }
    if unknown {
        Freshness::Unknown
    } else {
        Freshness::Current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object_watch::Kind;

    fn key(name: &str) -> ObjectKey {
        ObjectKey { kind: Kind::ConfigMap, namespace: "ns".into(), name: name.into() }
    }

    fn set(names: &[&str]) -> BTreeSet<ObjectKey> {
        names.iter().map(|n| key(n)).collect()
    }

    #[test]
    fn the_first_user_starts_a_watch_and_the_last_stops_it() {
        let mut interest = Interest::default();
        assert_eq!(interest.set("a", set(&["x", "y"])), Change { start: vec![key("x"), key("y")], stop: vec![] });
        assert_eq!(interest.set("b", set(&["y"])), Change::default());
        assert_eq!(interest.set("a", set(&["x"])), Change::default(), "y still used by b");
        assert_eq!(interest.set("b", set(&[])), Change { start: vec![], stop: vec![key("y")] });
        assert_eq!(interest.users_of(&key("x")).collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(interest.set("a", BTreeSet::new()), Change { start: vec![], stop: vec![key("x")] });
        assert_eq!(interest.watched(), 0);
        assert_eq!(interest.by_pod.len(), 0, "a pod without interest is not kept");
    }

    #[test]
    fn freshness_follows_the_watch_revisions() {
        let at = |x: Option<u64>| move |k: &ObjectKey| if k.name == "x" { x } else { Some(1) };
        let seen: BTreeMap<_, _> = [(key("x"), Some(3)), (key("y"), Some(1))].into();
        assert_eq!(freshness(&seen, at(Some(3))), Freshness::Current);
        assert_eq!(freshness(&seen, at(Some(4))), Freshness::Changed);
        assert_eq!(freshness(&seen, at(None)), Freshness::Changed, "the watch restarted: its list decides");
        let from_get: BTreeMap<_, _> = [(key("x"), None), (key("y"), Some(1))].into();
        assert_eq!(freshness(&from_get, at(Some(1))), Freshness::Changed, "listed since the GET");
        assert_eq!(freshness(&from_get, at(None)), Freshness::Unknown);
        assert_eq!(freshness(&BTreeMap::new(), |_| None), Freshness::Current, "no objects, nothing to follow");
    }
}
