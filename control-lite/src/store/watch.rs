//! Watch fan-out: the registered watchers and delivery of committed events.
//!
//! Owned by the worker thread alone: registration and publication are both
//! steps of the worker loop, which is what makes the history replay and the
//! live stream meet without a gap or an overlap. Delivery never waits: each
//! watcher has its own queue, appended to under a short lock.
//!
//! When a watcher is dropped depends on time, not on buffer sizes: a watcher
//! that has had events pending without taking one for its `deadline` is
//! dropped at the next publication (its queue closes after the events already
//! in it). A watcher that keeps reading is never dropped, however bursty the
//! writes, unless its backlog passes `max_backlog` events, a memory backstop
//! set far above what a reading watcher accumulates.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::plan::matches_prefix;
use super::{Event, Revision};

/// One watcher's queue, shared by the hub (appends) and the receiver (takes).
#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct QueueState {
    events: VecDeque<Event>,
    /// The hub dropped this watcher: no more events will come.
    closed: bool,
    /// Since when the receiver has had events pending without taking one
    /// (`None` while the queue is empty).
    stalled_since: Option<Instant>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // The lock guards plain data; a panicking holder leaves it consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, event: Event, now: Instant) {
        let mut state = self.lock();
        if state.events.is_empty() {
            state.stalled_since = Some(now);
        }
        state.events.push_back(event);
        drop(state);
        self.ready.notify_one();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }
}

/// The receiving end of a watch: events in revision order, then `None` once
/// the store dropped the watcher (it fell behind its deadline, or the store
/// closed) and every event already queued was taken.
#[derive(Debug)]
pub struct WatchReceiver {
    queue: Arc<Queue>,
}

impl WatchReceiver {
    /// The next event; `None` when the watch has ended.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            match self.take() {
                Taken::Event(event) => return Some(event),
                Taken::Closed => return None,
                // `notify_one` keeps a permit, so a push between `take` and
                // here is not missed.
                Taken::Empty => self.queue.ready.notified().await,
            }
        }
    }

    /// The next event if one is queued now.
    pub fn try_recv(&mut self) -> Option<Event> {
        match self.take() {
            Taken::Event(event) => Some(event),
            Taken::Closed | Taken::Empty => None,
        }
    }

    /// Whether the store dropped this watcher (queued events may remain).
    pub fn is_closed(&self) -> bool {
        self.queue.lock().closed
    }

    fn take(&self) -> Taken {
        let mut state = self.queue.lock();
        match state.events.pop_front() {
            Some(event) => {
                // Progress: what remains has been pending only from now on.
                state.stalled_since = (!state.events.is_empty()).then(Instant::now);
                Taken::Event(event)
            }
            None if state.closed => Taken::Closed,
            None => Taken::Empty,
        }
    }
}

enum Taken {
    Event(Event),
    Closed,
    Empty,
}

struct Watcher {
    prefix: String,
    /// Only events with a revision above this are delivered.
    after: Revision,
    /// How long events may stay pending without the receiver taking one.
    deadline: Duration,
    /// Queued events above which the watcher is dropped (its history plus the hub's `max_backlog`).
    backlog_limit: usize,
    queue: Arc<Queue>,
}

impl Watcher {
    fn receiver_gone(&self) -> bool {
        Arc::strong_count(&self.queue) == 1
    }

    /// Why this watcher must be dropped now, if it must.
    fn overdue(&self, now: Instant) -> Option<&'static str> {
        let state = self.queue.lock();
        if state.stalled_since.is_some_and(|since| now.saturating_duration_since(since) >= self.deadline) {
            return Some("took no event within its deadline");
        }
        (state.events.len() > self.backlog_limit).then_some("backlog above the limit")
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// The set of live watchers.
pub(crate) struct Hub {
    watchers: Vec<Watcher>,
    /// Queued events above which a watcher is dropped even before its deadline.
    max_backlog: usize,
}

impl Hub {
    pub(crate) fn new(max_backlog: usize) -> Hub {
        Hub { watchers: Vec::new(), max_backlog: max_backlog.max(1) }
    }

    /// Registers a watcher that first receives `history` (events already
    /// committed, revision `> after`, oldest first) and then every event
    /// published later.
    pub(crate) fn register(
        &mut self,
        prefix: String,
        after: Revision,
        deadline: Duration,
        history: Vec<Event>,
        now: Instant,
    ) -> WatchReceiver {
        // Forget watchers whose receiver is gone even if no write came since.
        self.watchers.retain(|w| !w.receiver_gone());
        let queue = Arc::new(Queue::default());
        let backlog_limit = history.len().saturating_add(self.max_backlog);
        for event in history {
            queue.push(event, now);
        }
        self.watchers.push(Watcher { prefix, after, deadline, backlog_limit, queue: queue.clone() });
        WatchReceiver { queue }
    }

    /// Delivers committed `events` (in revision order) to matching watchers,
    /// then drops the watchers that are gone or overdue at `now`, which
    /// closes their queue after the events in it.
    pub(crate) fn publish(&mut self, events: &[Event], now: Instant) {
        self.watchers.retain(|w| {
            if w.receiver_gone() {
                return false;
            }
            for event in events {
                if event.revision() > w.after && matches_prefix(&event.kv.key, &w.prefix) {
                    w.queue.push(event.clone(), now);
                }
            }
            match w.overdue(now) {
                Some(why) => {
                    tracing::info!(prefix = w.prefix, why, "store: dropping watcher that fell behind");
                    false
                }
                None => true,
            }
        });
    }

    /// Number of registered watchers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.watchers.len()
    }

    /// Whether no watcher is left (every one was dropped or went away).
    pub(crate) fn is_empty(&self) -> bool {
        self.watchers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventKind, KeyValue};

    const LONG: Duration = Duration::from_secs(3600);

    fn put(key: &str, rev: Revision) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue { key: key.to_owned(), value: Vec::new(), create_revision: rev, mod_revision: rev },
            prev: None,
        }
    }

    fn drain(rx: &mut WatchReceiver) -> Vec<(String, Revision)> {
        let mut out = Vec::new();
        while let Some(e) = rx.try_recv() {
            out.push((e.kv.key.clone(), e.revision()));
        }
        out
    }

    #[test]
    fn delivers_history_then_matching_live_events_above_after() {
        let now = Instant::now();
        let mut hub = Hub::new(8);
        let mut rx = hub.register("/a/".into(), 5, LONG, vec![put("/a/x", 6)], now);
        hub.publish(&[put("/a/y", 7), put("/b/z", 8), put("/a/z", 9)], now);
        assert_eq!(drain(&mut rx), vec![("/a/x".into(), 6), ("/a/y".into(), 7), ("/a/z".into(), 9)]);
    }

    #[test]
    fn skips_live_events_at_or_below_after() {
        let now = Instant::now();
        let mut hub = Hub::new(8);
        let mut rx = hub.register(String::new(), 10, LONG, Vec::new(), now);
        hub.publish(&[put("/a", 9), put("/b", 10), put("/c", 11)], now);
        assert_eq!(drain(&mut rx), vec![("/c".into(), 11)]);
    }

    #[test]
    fn drops_watcher_that_took_nothing_within_its_deadline_but_keeps_a_reader() {
        let t0 = Instant::now();
        let mut hub = Hub::new(1_000);
        let mut slow = hub.register(String::new(), 0, Duration::from_secs(10), Vec::new(), t0);
        let mut fast = hub.register(String::new(), 0, Duration::from_secs(10), Vec::new(), t0);
        // A burst far above any buffer: nobody is dropped before the deadline.
        let burst: Vec<Event> = (1..=100).map(|r| put("/a", r)).collect();
        hub.publish(&burst, t0);
        hub.publish(&[put("/a", 101)], t0 + Duration::from_secs(9));
        assert_eq!(hub.len(), 2, "within the deadline");
        assert_eq!(drain(&mut fast).len(), 101);
        // The reader took everything (progress); the other one did not.
        hub.publish(&[put("/a", 102)], Instant::now() + Duration::from_secs(11));
        assert_eq!(hub.len(), 1, "slow watcher removed");
        assert_eq!(drain(&mut fast), vec![("/a".into(), 102)]);
        assert_eq!(drain(&mut slow).len(), 102, "queued events are still delivered");
        assert!(slow.is_closed(), "then the slow watcher's queue is closed");
        assert!(!fast.is_closed());
    }

    #[test]
    fn backlog_backstop_drops_before_the_deadline() {
        let now = Instant::now();
        let mut hub = Hub::new(3);
        let rx = hub.register(String::new(), 0, LONG, Vec::new(), now);
        hub.publish(&[put("/a", 1), put("/a", 2), put("/a", 3)], now);
        assert_eq!(hub.len(), 1);
        hub.publish(&[put("/a", 4)], now);
        assert_eq!(hub.len(), 0);
        assert!(rx.is_closed());
    }

    #[test]
    fn removes_watchers_whose_receiver_dropped() {
        let now = Instant::now();
        let mut hub = Hub::new(4);
        drop(hub.register(String::new(), 0, LONG, Vec::new(), now));
        let _kept = hub.register("/x".into(), 0, LONG, Vec::new(), now);
        assert_eq!(hub.len(), 1, "pruned on register");
        drop(hub.register(String::new(), 0, LONG, Vec::new(), now));
        hub.publish(&[put("/a", 1)], now);
        assert_eq!(hub.len(), 1, "pruned on publish");
    }

    #[test]
    fn history_larger_than_the_backlog_is_delivered() {
        let now = Instant::now();
        let mut hub = Hub::new(1);
        let history: Vec<Event> = (1..=50).map(|r| put("/a", r)).collect();
        let mut rx = hub.register(String::new(), 0, LONG, history, now);
        hub.publish(&[put("/a", 51)], now);
        assert_eq!(hub.len(), 1, "history does not count against the backlog");
        assert_eq!(drain(&mut rx).len(), 51);
    }

    #[tokio::test]
    async fn dropping_the_hub_ends_receivers_after_their_events() {
        let now = Instant::now();
        let mut hub = Hub::new(8);
        let mut rx = hub.register(String::new(), 0, LONG, vec![put("/a", 1)], now);
        drop(hub);
        assert_eq!(rx.recv().await.map(|e| e.revision()), Some(1));
        assert!(rx.recv().await.is_none());
    }
}
