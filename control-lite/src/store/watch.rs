//! Watch fan-out: the registered watchers and delivery of committed events.
//!
//! Owned by the worker thread alone (no lock): registration and publication
//! are both steps of the worker loop, which is what makes the history replay
//! and the live stream meet without a gap or an overlap. Delivery never
//! waits: a watcher whose channel is full is dropped.

use tokio::sync::mpsc;

use super::plan::matches_prefix;
use super::{Event, Revision};

struct Watcher {
    prefix: String,
    /// Only events with a revision above this are delivered.
    after: Revision,
    tx: mpsc::Sender<Event>,
}

/// The set of live watchers.
pub(crate) struct Hub {
    watchers: Vec<Watcher>,
    /// Live events a watcher may have unread before it is dropped.
    buffer: usize,
}

impl Hub {
    pub(crate) fn new(buffer: usize) -> Hub {
        Hub { watchers: Vec::new(), buffer: buffer.max(1) }
    }

    /// Registers a watcher that first receives `history` (events already
    /// committed, revision `> after`, oldest first) and then every event
    /// published later. The channel holds all of the history plus `buffer`
    /// live events, so the history always fits.
    pub(crate) fn register(&mut self, prefix: String, after: Revision, history: Vec<Event>) -> mpsc::Receiver<Event> {
        // Forget watchers whose receiver is gone even if no write came since.
        self.watchers.retain(|w| !w.tx.is_closed());
        let (tx, rx) = mpsc::channel(history.len() + self.buffer);
        for event in history {
            if tx.try_send(event).is_err() {
                // Unreachable by capacity; if it ever happens the watcher must
                // not see a gap, so drop it and let the client re-list.
                tracing::warn!(prefix, "store: watch history did not fit its channel");
                return rx;
            }
        }
        self.watchers.push(Watcher { prefix, after, tx });
        rx
    }

    /// Delivers committed `events` (in revision order) to matching watchers.
    /// Watchers that are gone or too far behind are removed, which closes
    /// their channel once its buffered events are read.
    pub(crate) fn publish(&mut self, events: &[Event]) {
        self.watchers.retain(|w| {
            if w.tx.is_closed() {
                return false;
            }
            for event in events {
                if event.revision() <= w.after || !matches_prefix(&event.kv.key, &w.prefix) {
                    continue;
                }
                match w.tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::info!(
                            prefix = w.prefix,
                            revision = event.revision(),
                            "store: dropping watcher that fell behind"
                        );
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
    }

    /// Number of registered watchers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.watchers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventKind, KeyValue};

    fn put(key: &str, rev: Revision) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue { key: key.to_owned(), value: Vec::new(), create_revision: rev, mod_revision: rev },
            prev: None,
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Event>) -> Vec<(String, Revision)> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push((e.kv.key.clone(), e.revision()));
        }
        out
    }

    #[test]
    fn delivers_history_then_matching_live_events_above_after() {
        let mut hub = Hub::new(8);
        let mut rx = hub.register("/a/".into(), 5, vec![put("/a/x", 6)]);
        hub.publish(&[put("/a/y", 7), put("/b/z", 8), put("/a/z", 9)]);
        assert_eq!(drain(&mut rx), vec![("/a/x".into(), 6), ("/a/y".into(), 7), ("/a/z".into(), 9)]);
    }

    #[test]
    fn skips_live_events_at_or_below_after() {
        let mut hub = Hub::new(8);
        let mut rx = hub.register(String::new(), 10, Vec::new());
        hub.publish(&[put("/a", 9), put("/b", 10), put("/c", 11)]);
        assert_eq!(drain(&mut rx), vec![("/c".into(), 11)]);
    }

    #[test]
    fn drops_full_watcher_but_keeps_others() {
        let mut hub = Hub::new(2);
        let mut slow = hub.register(String::new(), 0, Vec::new());
        let mut fast = hub.register(String::new(), 0, Vec::new());
        hub.publish(&[put("/a", 1), put("/a", 2)]);
        assert_eq!(drain(&mut fast).len(), 2);
        hub.publish(&[put("/a", 3)]);
        assert_eq!(hub.len(), 1, "slow watcher removed");
        assert_eq!(drain(&mut fast), vec![("/a".into(), 3)]);
        assert_eq!(drain(&mut slow), vec![("/a".into(), 1), ("/a".into(), 2)]);
        assert!(slow.is_closed(), "slow watcher's channel closed after its buffer");
    }

    #[test]
    fn removes_watchers_whose_receiver_dropped() {
        let mut hub = Hub::new(4);
        drop(hub.register(String::new(), 0, Vec::new()));
        let _kept = hub.register("/x".into(), 0, Vec::new());
        assert_eq!(hub.len(), 1, "pruned on register");
        drop(hub.register(String::new(), 0, Vec::new()));
        hub.publish(&[put("/a", 1)]);
        assert_eq!(hub.len(), 1, "pruned on publish");
    }

    #[test]
    fn history_larger_than_buffer_fits() {
        let mut hub = Hub::new(1);
        let history: Vec<Event> = (1..=50).map(|r| put("/a", r)).collect();
        let mut rx = hub.register(String::new(), 0, history);
        hub.publish(&[put("/a", 51)]);
        assert_eq!(drain(&mut rx).len(), 51);
    }
}
