//! Per-key exponential backoff on wall-clock time (crash loops keyed by
//! container, image pulls keyed by image), with the kubelet's semantics:
//! the delay doubles from `initial` up to `max`, and an entry not touched for
//! `2 * max` starts over.
//!
//! Must not: read the clock. Callers pass `now`, so tests are exact.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    delay: Duration,
    last_update: Timestamp,
}

/// One key's state as it is saved across agent restarts
/// (`crate::recovery`): the delay in force and when it was last recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedEntry {
    /// The delay in force, in ms.
    pub delay_ms: u64,
    /// When the failure that set it was recorded, ms since the epoch.
    pub last_update_ms: i64,
}

/// Backoff state for a set of keys.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    let nanos = to.as_nanosecond() - from.as_nanosecond();
    Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
}

impl Backoff {
    /// Backoff starting at `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max, entries: HashMap::new() }
    }

    /// The kubelet's container restart backoff: 10 s doubling to 5 min.
    pub fn crash_loop() -> Self {
        Self::new(Duration::from_secs(10), Duration::from_secs(300))
    }

    /// The kubelet's image pull backoff: 10 s doubling to 5 min.
    pub fn image_pull() -> Self {
        Self::new(Duration::from_secs(10), Duration::from_secs(300))
    }

    fn live(&self, key: &str, at: Timestamp) -> Option<&Entry> {
        self.entries.get(key).filter(|e| elapsed(e.last_update, at) <= self.max * 2)
    }

    /// Time still to wait when the event at `since` (e.g. a container exit)
    /// happened less than the current delay before `now`.
    pub fn remaining_since(&self, key: &str, since: Timestamp, now: Timestamp) -> Option<Duration> {
        let entry = self.live(key, since)?;
        entry.delay.checked_sub(elapsed(since, now)).filter(|d| !d.is_zero())
    }

    /// Time still to wait counted from the last failure recorded for `key`.
    pub fn remaining(&self, key: &str, now: Timestamp) -> Option<Duration> {
        let entry = self.live(key, now)?;
        let since = entry.last_update;
        entry.delay.checked_sub(elapsed(since, now)).filter(|d| !d.is_zero())
    }

    /// The delay currently in force for `key` (for messages).
    pub fn delay(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.delay)
    }

    /// Records a failure of `key` at `at`: first failure sets `initial`,
    /// later ones double up to `max`.
    pub fn record(&mut self, key: &str, at: Timestamp) {
        let delay = match self.live(key, at) {
            Some(e) => (e.delay * 2).min(self.max),
            None => self.initial,
        };
        self.entries.insert(key.to_string(), Entry { delay, last_update: at });
    }

    /// Forgets `key`.
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Every key's state, for saving.
    pub fn snapshot(&self) -> BTreeMap<String, SavedEntry> {
        self.entries
            .iter()
            .map(|(key, e)| {
                let delay_ms = u64::try_from(e.delay.as_millis()).unwrap_or(u64::MAX);
                (key.clone(), SavedEntry { delay_ms, last_update_ms: e.last_update.as_millisecond() })
            })
            .collect()
    }

    /// Takes back saved state (e.g. after an agent restart). Keys already
    /// known keep their state; a saved delay is clamped to `initial..=max`;
    /// an entry with an impossible time is skipped.
    pub fn restore(&mut self, saved: &BTreeMap<String, SavedEntry>) {
        for (key, entry) in saved {
            let Ok(last_update) = Timestamp::from_millisecond(entry.last_update_ms) else { continue };
            let delay = Duration::from_millis(entry.delay_ms).clamp(self.initial, self.max);
            self.entries.entry(key.clone()).or_insert(Entry { delay, last_update });
        }
    }

    /// Drops entries untouched for `2 * max` before `now`.
    pub fn gc(&mut self, now: Timestamp) {
        let horizon = self.max * 2;
        self.entries.retain(|_, e| elapsed(e.last_update, now) <= horizon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("valid")
    }

    #[test]
    fn doubles_up_to_max_and_expires() {
        let mut b = Backoff::crash_loop();
        assert_eq!(b.remaining("c", t(0)), None);
        b.record("c", t(0));
        assert_eq!(b.remaining("c", t(4)), Some(Duration::from_secs(6)));
        assert_eq!(b.remaining("c", t(10)), None);
        let delays: Vec<u64> = (1..=7)
            .map(|i| {
                b.record("c", t(i * 20));
                b.delay("c").map(|d| d.as_secs()).unwrap_or(0)
            })
            .collect();
        assert_eq!(delays, vec![20, 40, 80, 160, 300, 300, 300]);
        // Untouched for more than 10 minutes: starts over.
        b.record("c", t(140 + 601));
        assert_eq!(b.delay("c"), Some(Duration::from_secs(10)));
    }

    #[test]
    fn remaining_since_counts_from_the_event() {
        let mut b = Backoff::crash_loop();
        b.record("c", t(0));
        // Container exited at 5 s, now is 8 s: 7 s of the 10 s delay left.
        assert_eq!(b.remaining_since("c", t(5), t(8)), Some(Duration::from_secs(7)));
        assert_eq!(b.remaining_since("c", t(5), t(15)), None);
        assert_eq!(b.remaining_since("other", t(5), t(6)), None);
    }

    #[test]
    fn restored_state_decides_as_the_saved_one() {
        let mut before = Backoff::crash_loop();
        before.record("c", t(0));
        before.record("c", t(20));
        let mut after = Backoff::crash_loop();
        after.restore(&before.snapshot());
        assert_eq!(after.delay("c"), Some(Duration::from_secs(20)));
        assert_eq!(after.remaining_since("c", t(25), t(30)), before.remaining_since("c", t(25), t(30)));
        // The next failure doubles from the restored delay.
        after.record("c", t(50));
        assert_eq!(after.delay("c"), Some(Duration::from_secs(40)));
    }

    #[test]
    fn restore_clamps_delays_and_keeps_newer_state() {
        let saved = BTreeMap::from([
            ("huge".to_string(), SavedEntry { delay_ms: u64::MAX, last_update_ms: 1_700_000_000_000 }),
            ("zero".to_string(), SavedEntry { delay_ms: 0, last_update_ms: 1_700_000_000_000 }),
            ("bad-time".to_string(), SavedEntry { delay_ms: 10_000, last_update_ms: i64::MAX }),
            ("known".to_string(), SavedEntry { delay_ms: 300_000, last_update_ms: 1_700_000_000_000 }),
        ]);
        let mut b = Backoff::crash_loop();
        b.record("known", t(0));
        b.restore(&saved);
        assert_eq!(b.delay("huge"), Some(Duration::from_secs(300)));
        assert_eq!(b.delay("zero"), Some(Duration::from_secs(10)));
        assert_eq!(b.delay("bad-time"), None);
        assert_eq!(b.delay("known"), Some(Duration::from_secs(10)), "in-memory state wins");
    }

    #[test]
    fn gc_drops_stale_entries() {
        let mut b = Backoff::image_pull();
        b.record("img", t(0));
        b.gc(t(700));
        assert_eq!(b.delay("img"), None);
    }
}
