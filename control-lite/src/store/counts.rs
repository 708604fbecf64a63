//! Live objects per resource, kept by the worker as it commits (one
//! counter update per write, never a scan after start-up) and read at
//! scrape as `apiserver_storage_objects{resource}`.
//!
//! Keys are `/registry/<group>/<plural>/...` (`core` for the core group);
//! the resource is named as upstream's label names it: `pods`,
//! `deployments.apps`. Keys of another shape are not counted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{Event, EventKind};

/// The resource label of a store key (`None` for keys outside `/registry/`).
pub fn resource_of(key: &str) -> Option<String> {
    let mut parts = key.strip_prefix("/registry/")?.splitn(3, '/');
    let group = parts.next().filter(|g| !g.is_empty())?;
    let plural = parts.next().filter(|p| !p.is_empty())?;
    parts.next()?;
    Some(if group == "core" { plural.to_owned() } else { format!("{plural}.{group}") })
}

/// Live object counts by resource (cheap to clone; shared with the worker).
#[derive(Debug, Clone, Default)]
pub struct ObjectCounts {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl ObjectCounts {
    /// Counts `keys` (the live keys at start-up) from zero.
    pub(crate) fn reset<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut fresh = BTreeMap::new();
        for resource in keys.into_iter().filter_map(resource_of) {
            let count: &mut u64 = fresh.entry(resource).or_default();
            *count = count.saturating_add(1);
        }
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
    }

    /// Applies committed events: a create adds one, a delete takes one.
    pub(crate) fn apply(&self, events: &[Event]) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        for event in events {
            let created = event.kind == EventKind::Put && event.prev.is_none();
            let deleted = event.kind == EventKind::Delete;
            if !(created || deleted) {
                continue;
            }
            let Some(resource) = resource_of(&event.kv.key) else { continue };
            let count = counts.entry(resource).or_default();
            *count = if created { count.saturating_add(1) } else { count.saturating_sub(1) };
        }
    }

    /// Every resource counted so far, sorted (resources whose objects are
    /// all gone stay, at zero, as upstream's gauge does).
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.iter().map(|(resource, count)| (resource.clone(), *count)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeyValue;

    fn event(kind: EventKind, key: &str, created: bool) -> Event {
        let kv = KeyValue { key: key.to_owned(), value: Vec::new(), create_revision: 1, mod_revision: 2 };
        Event { kind, prev: (!created).then(|| kv.clone()), kv }
    }

    #[test]
    fn resources_are_named_as_upstream_labels_them() {
        let cases = [
            ("/registry/core/pods/default/web", Some("pods")),
            ("/registry/apps/deployments/default/web", Some("deployments.apps")),
            ("/registry/core/nodes/n1", Some("nodes")),
            ("/registry/core/pods/", Some("pods")),
            ("/registry/core/pods", None),
            ("/registry//pods/x", None),
            ("/other/core/pods/x", None),
            ("", None),
        ];
        for (key, want) in cases {
            assert_eq!(resource_of(key).as_deref(), want, "{key}");
        }
    }

    #[test]
    fn creates_and_deletes_move_the_counts_updates_do_not() {
        let counts = ObjectCounts::default();
        counts.reset(["/registry/core/pods/a/p1", "/registry/core/pods/a/p2", "/registry/apps/deployments/a/d", "x"]);
        counts.apply(&[
            event(EventKind::Put, "/registry/core/pods/a/p3", true),
            event(EventKind::Put, "/registry/core/pods/a/p1", false),
            event(EventKind::Delete, "/registry/apps/deployments/a/d", false),
            event(EventKind::Put, "/registry/core/services/a/s", true),
            // Never below zero, whatever the events say.
            event(EventKind::Delete, "/registry/core/secrets/a/s", false),
        ]);
        let want: Vec<(String, u64)> = [("deployments.apps", 0), ("pods", 3), ("secrets", 0), ("services", 1)]
            .iter()
            .map(|(r, c)| (r.to_string(), *c))
            .collect();
        assert_eq!(counts.snapshot(), want);
    }
}
