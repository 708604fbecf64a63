//! CPU rates from two samples of a cumulative usage counter. The kernel only
//! counts CPU time; "cores in use" is the change over a window. Each cgroup
//! (node, pod, container) keeps its last sample and last rate; a rate is
//! recomputed once the window since that sample is at least `min_window`,
//! so requests arriving close together all see the same, stable rate.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;

/// The last sample of one counter and the rate computed when it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    /// When the sample was taken.
    pub at: Timestamp,
    /// The counter (CPU nanoseconds).
    pub usage_nanos: u64,
    /// Nanocores over the window that ended at `at`; `None` after the first sample.
    pub rate_nanocores: Option<u64>,
}

/// The next state after observing `usage_nanos` at `at` (pure).
///
/// - no previous sample: start one, no rate yet;
/// - counter went down (a new cgroup under the same key): start over;
/// - less than `min_window` since the previous sample: keep it (and its rate);
/// - otherwise: rate = delta / elapsed, in nanocores.
pub fn advance(prev: Option<RateState>, at: Timestamp, usage_nanos: u64, min_window: Duration) -> RateState {
    let fresh = RateState { at, usage_nanos, rate_nanocores: None };
    let Some(prev) = prev else { return fresh };
    if usage_nanos < prev.usage_nanos {
        return fresh;
    }
    let elapsed = at.duration_since(prev.at);
    let elapsed_nanos = u128::try_from(elapsed.as_nanos()).unwrap_or(0);
    let min_nanos = min_window.as_nanos().max(1);
    if elapsed_nanos < min_nanos {
        return prev;
    }
    let delta = u128::from(usage_nanos - prev.usage_nanos);
    let rate = delta.saturating_mul(1_000_000_000) / elapsed_nanos;
    RateState { at, usage_nanos, rate_nanocores: Some(u64::try_from(rate).unwrap_or(u64::MAX)) }
}

/// Rate states of every cgroup seen in the last collection, by key.
#[derive(Debug, Default)]
pub struct RateTracker {
    states: HashMap<String, RateState>,
}

impl RateTracker {
    /// Observes `key`'s counter; returns its current rate.
    pub fn observe(&mut self, key: &str, at: Timestamp, usage_nanos: u64, min_window: Duration) -> Option<u64> {
        let next = advance(self.states.get(key).copied(), at, usage_nanos, min_window);
        self.states.insert(key.to_string(), next);
        next.rate_nanocores
    }

    /// Forgets every key not in `live` (cgroups that went away).
    pub fn retain(&mut self, live: &std::collections::HashSet<String>) {
        self.states.retain(|key, _| live.contains(key));
    }

    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, millis: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap() + jiff::SignedDuration::from_millis(millis)
    }

    #[test]
    fn rates_follow_the_table() {
        let window = Duration::from_secs(1);
        let start = RateState { at: at(100, 0), usage_nanos: 1_000_000_000, rate_nanocores: Some(7) };
        let cases: &[(&str, Option<RateState>, Timestamp, u64, RateState)] = &[
            (
                "first sample has no rate",
                None,
                at(100, 0),
                5,
                RateState { at: at(100, 0), usage_nanos: 5, rate_nanocores: None },
            ),
            (
                "0.1 core over 10 s",
                Some(start),
                at(110, 0),
                2_000_000_000,
                RateState { at: at(110, 0), usage_nanos: 2_000_000_000, rate_nanocores: Some(100_000_000) },
            ),
            (
                "two cores over 2 s",
                Some(start),
                at(102, 0),
                5_000_000_000,
                RateState { at: at(102, 0), usage_nanos: 5_000_000_000, rate_nanocores: Some(2_000_000_000) },
            ),
            ("window too short keeps the previous state", Some(start), at(100, 500), 9_000_000_000, start),
            ("clock went back keeps the previous state", Some(start), at(99, 0), 9_000_000_000, start),
            (
                "counter reset starts over",
                Some(start),
                at(110, 0),
                10,
                RateState { at: at(110, 0), usage_nanos: 10, rate_nanocores: None },
            ),
            (
                "idle is zero, not none",
                Some(start),
                at(105, 0),
                1_000_000_000,
                RateState { at: at(105, 0), usage_nanos: 1_000_000_000, rate_nanocores: Some(0) },
            ),
        ];
        for (name, prev, now, usage, want) in cases {
            assert_eq!(advance(*prev, *now, *usage, window), *want, "{name}");
        }
    }

    #[test]
    fn huge_deltas_saturate_instead_of_overflowing() {
        let prev = RateState { at: at(0, 0), usage_nanos: 0, rate_nanocores: None };
        let next = advance(Some(prev), at(0, 1), u64::MAX, Duration::from_nanos(1));
        assert_eq!(next.rate_nanocores, Some(u64::MAX));
    }

    #[test]
    fn tracker_forgets_cgroups_that_went_away() {
        let mut tracker = RateTracker::default();
        let window = Duration::from_secs(1);
        assert_eq!(tracker.observe("a", at(0, 0), 0, window), None);
        assert_eq!(tracker.observe("b", at(0, 0), 0, window), None);
        assert_eq!(tracker.observe("a", at(2, 0), 1_000_000_000, window), Some(500_000_000));
        tracker.retain(&["a".to_string()].into_iter().collect());
        assert_eq!(tracker.len(), 1);
        assert_eq!(tracker.observe("b", at(4, 0), 4_000_000_000, window), None, "b starts over");
    }
}
