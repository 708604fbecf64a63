//! Background compaction: keeps history watchable by count *and* by age.
//!
//! A watcher that resumes from a revision that was compacted away gets a 410
//! and must re-list everything, so compaction must not outrun reconnecting
//! clients. Upstream etcd keeps 5 minutes of history; a count alone is not
//! enough, since one bulk create of 20,000 objects would push every quiet
//! watcher (e.g. a node agent's pod watch) beyond a 10,000-revision window
//! within one compaction tick. [`Retention`] therefore keeps:
//! - at least the last `keep` revisions, however old;
//! - every revision younger than `keep_for`, beyond the count;
//! - but never more than `max_keep` revisions: the hard cap, which bounds
//!   the on-disk log and what one watch replay may load into memory.
//!
//! Revision age comes from [`RevisionClock`], which samples the current
//! revision with its time at every tick (the store keeps no timestamps).
//! Everything here decides on injected times and revisions;
//! [`spawn_compactor`] is the thin timer loop that applies it.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Revision, Store};

/// How much history stays watchable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Revisions always kept, whatever their age.
    pub keep: usize,
    /// Revisions younger than this are kept beyond `keep`.
    pub keep_for: Duration,
    /// Hard cap: never more revisions than this, whatever their age.
    pub max_keep: usize,
}

impl From<usize> for Retention {
    /// Exactly the last `keep` revisions (no age window).
    fn from(keep: usize) -> Self {
        Retention { keep, keep_for: Duration::ZERO, max_keep: keep }
    }
}

/// Samples of (time, revision current at that time), oldest first, pruned
/// to what the age window needs.
#[derive(Debug, Default)]
pub struct RevisionClock {
    samples: VecDeque<(Instant, Revision)>,
}

impl RevisionClock {
    /// Records that `current` was the current revision at `now` (call with
    /// non-decreasing times) and forgets samples no longer needed to answer
    /// [`Self::older_than`] for `keep_for` at `now` or later.
    pub fn record(&mut self, now: Instant, current: Revision, keep_for: Duration) {
        self.samples.push_back((now, current));
        let horizon = now.checked_sub(keep_for);
        // Keep the newest sample at or before the horizon, drop older ones.
        while let (Some(horizon), Some(second)) = (horizon, self.samples.get(1)) {
            if second.0 > horizon {
                break;
            }
            self.samples.pop_front();
        }
    }

    /// The newest revision known to be at least `age` old at `now`: every
    /// revision at or below it was written before `now - age`. 0 if none is
    /// known (e.g. just after start: then everything counts as young).
    pub fn older_than(&self, now: Instant, age: Duration) -> Revision {
        let Some(horizon) = now.checked_sub(age) else { return 0 };
        self.samples.iter().take_while(|(at, _)| *at <= horizon).last().map_or(0, |(_, revision)| *revision)
    }

    /// Number of samples held (bounded by the window over the tick interval).
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// The revision to compact to, or `None` if that is not beyond what is
/// already compacted. `aged` is the newest revision older than
/// `retention.keep_for` ([`RevisionClock::older_than`]).
pub fn compaction_target(
    current: Revision,
    compacted: Revision,
    retention: Retention,
    aged: Revision,
) -> Option<Revision> {
    let revisions = |n: usize| Revision::try_from(n).unwrap_or(Revision::MAX);
    let by_count = current.saturating_sub(revisions(retention.keep));
    let by_age = if retention.keep_for.is_zero() { current } else { aged };
    let cap = current.saturating_sub(revisions(retention.max_keep.max(retention.keep)));
    let target = by_count.min(by_age).max(cap).max(0);
    (target > compacted).then_some(target)
}

/// Every `interval`, compacts `store` to what `retention` no longer keeps
/// (production: 10,000 revisions, 5 minutes, cap 100,000; see `run.rs`).
/// A plain count keeps exactly that many revisions. Stops when `token` is
/// cancelled.
pub fn spawn_compactor(
    store: Store,
    interval: Duration,
    retention: impl Into<Retention>,
    token: CancellationToken,
) -> JoinHandle<()> {
    let retention = retention.into();
    tokio::spawn(async move {
        let mut clock = RevisionClock::default();
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let now = Instant::now();
            let current = store.current_revision();
            clock.record(now, current, retention.keep_for);
            let aged = clock.older_than(now, retention.keep_for);
            let Some(target) = compaction_target(current, store.compacted_revision(), retention, aged) else {
                continue;
            };
            match store.compact(target).await {
                Ok(()) => tracing::debug!(target, "store: compacted"),
                Err(super::Error::Closed) => return,
                Err(error) => tracing::warn!(%error, target, "store: compaction failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn window(keep: usize, minutes: u64, max_keep: usize) -> Retention {
        Retention { keep, keep_for: MIN * u32::try_from(minutes).expect("small"), max_keep }
    }

    #[test]
    fn compaction_target_by_count_age_and_cap() {
        let count_only = Retention::from(10_000);
        let upstream = window(10_000, 5, 100_000);
        // (what, current, compacted, retention, aged, want)
        type Case = (&'static str, Revision, Revision, Retention, Revision, Option<Revision>);
        let cases: [Case; 10] = [
            ("empty store", 0, 0, count_only, 0, None),
            ("count: within", 10, 0, Retention::from(10), 0, None),
            ("count: one beyond", 11, 0, Retention::from(10), 0, Some(1)),
            ("count: the last 10,000", 20_000, 0, count_only, 0, Some(10_000)),
            ("count: already there", 20_000, 10_000, count_only, 0, None),
            ("count: unbounded keep", 20_000, 5, Retention::from(usize::MAX), 0, None),
            ("burst younger than 5 min is kept", 20_128, 0, upstream, 50, Some(50)),
            ("burst once 5 min old: count applies", 20_128, 50, upstream, 20_128, Some(10_128)),
            ("young but beyond the hard cap", 150_000, 0, upstream, 0, Some(50_000)),
            ("old history inside the count stays", 8_000, 0, upstream, 8_000, None),
        ];
        for (what, current, compacted, retention, aged, want) in cases {
            assert_eq!(compaction_target(current, compacted, retention, aged), want, "{what}");
        }
    }

    #[test]
    fn clock_knows_which_revisions_are_old_enough() {
        let start = Instant::now();
        let mut clock = RevisionClock::default();
        let keep_for = MIN * 5;
        assert_eq!(clock.older_than(start, keep_for), 0, "nothing recorded");
        // A tick a minute; revision 50 at start, a 20,000-object burst in
        // the second minute, quiet afterwards.
        let revisions = [50, 20_128, 20_128, 20_128, 20_128, 20_128, 20_128, 20_128];
        let mut seen = Vec::new();
        for (minute, revision) in revisions.into_iter().enumerate() {
            let now = start + MIN * u32::try_from(minute).expect("small");
            clock.record(now, revision, keep_for);
            seen.push(clock.older_than(now, keep_for));
            assert!(clock.len() <= 7, "minute {minute}: samples stay bounded ({})", clock.len());
        }
        // Minutes 0-4: nothing is 5 minutes old; minute 5: revision 50 is;
        // minute 6: the burst is.
        assert_eq!(seen, vec![0, 0, 0, 0, 0, 50, 20_128, 20_128]);
    }

    #[test]
    fn a_burst_is_compacted_only_after_the_window() {
        // The agent's quiet watch sits at revision 50 while 20,000 objects
        // are created; it must be able to resume for 5 minutes.
        let retention = window(10_000, 5, 100_000);
        let start = Instant::now();
        let mut clock = RevisionClock::default();
        let mut compacted = 0;
        let mut resumable_until = None;
        for minute in 0..10u32 {
            let now = start + MIN * minute;
            let current = if minute == 0 { 50 } else { 20_128 };
            clock.record(now, current, retention.keep_for);
            let aged = clock.older_than(now, retention.keep_for);
            if let Some(target) = compaction_target(current, compacted, retention, aged) {
                compacted = target;
            }
            if compacted <= 50 {
                resumable_until = Some(minute);
            }
        }
        assert_eq!(resumable_until, Some(5), "a watch from 50 resumes until the burst is 5 minutes old");
        assert_eq!(compacted, 10_128, "then the count applies");
    }
}
