//! Which thresholds are met and what follows (pure, upstream's
//! `synchronize` decisions): a threshold is met when its signal's available
//! amount is below it; a met threshold raises its node condition at once
//! and keeps it for the transition period after it clears; a hard one
//! triggers eviction at once, a soft one after it has been met for its
//! grace period without a break.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;

use super::signals::Observations;
use super::thresholds::{Signal, Threshold, Thresholds};

/// What the manager remembers between observations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PressureState {
    /// When each threshold (by index in [`Thresholds::all`]) was first seen met, without a break.
    pub first_met: BTreeMap<usize, Timestamp>,
    /// When each condition was last seen under pressure.
    pub last_pressure: BTreeMap<&'static str, Timestamp>,
}

/// One decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Node conditions that are `True` now (`MemoryPressure`, `DiskPressure`, `PIDPressure`).
    pub conditions: BTreeSet<&'static str>,
    /// The threshold to act on now (hard first, then the soft one met longest), with its signal's
    /// available amount and threshold amount.
    pub reclaim: Option<Reclaim>,
    /// The state for the next decision.
    pub state: PressureState,
}

/// The signal to reclaim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reclaim {
    /// The signal.
    pub signal: Signal,
    /// The threshold amount.
    pub threshold: i64,
    /// The available amount observed.
    pub available: i64,
    /// Soft thresholds give pods a grace period (the smaller of the pod's and
    /// `evictionMaxPodGracePeriod`); hard ones kill at once.
    pub soft: bool,
}

/// Decides from `observed` at `now`, given what was remembered.
pub fn decide(thresholds: &Thresholds, observed: &Observations, previous: &PressureState, now: Timestamp) -> Decision {
    let mut state = PressureState { first_met: BTreeMap::new(), last_pressure: previous.last_pressure.clone() };
    let mut reclaim: Option<(bool, Timestamp, Reclaim)> = None;
    for (i, t) in thresholds.all.iter().enumerate() {
        let Some(obs) = observed.get(t.signal) else { continue };
        let amount = t.value.amount(obs.capacity);
        if obs.available >= amount {
            continue;
        }
        let since = previous.first_met.get(&i).copied().unwrap_or(now);
        state.first_met.insert(i, since);
        state.last_pressure.insert(t.signal.condition(), now);
        if !grace_over(t, since, now) {
            continue;
        }
        let candidate =
            Reclaim { signal: t.signal, threshold: amount, available: obs.available, soft: t.grace.is_some() };
        let key = (t.grace.is_none(), since);
        let better = match &reclaim {
            None => true,
            // Hard before soft; among equals the one met longest.
            Some((hard, at, _)) => (key.0 && !hard) || (key.0 == *hard && key.1 < *at),
        };
        if better {
            reclaim = Some((key.0, key.1, candidate));
        }
    }
    let transition = thresholds.transition;
    state.last_pressure.retain(|_, at| within(*at, now, transition));
    let conditions = state.last_pressure.keys().copied().collect();
    Decision { conditions, reclaim: reclaim.map(|(_, _, r)| r), state }
}

fn grace_over(t: &Threshold, since: Timestamp, now: Timestamp) -> bool {
    match t.grace {
        None => true,
        Some(grace) => !within(since, now, grace),
    }
}

/// `at` is less than `period` before `now`.
fn within(at: Timestamp, now: Timestamp, period: Duration) -> bool {
    let elapsed = now.duration_since(at);
    elapsed.is_negative() || elapsed.unsigned_abs() < period
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eviction::signals::Observation;
    use crate::eviction::thresholds::ThresholdValue;

    const MI: i64 = 1 << 20;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_000_000 + s).expect("ts")
    }

    fn thresholds() -> Thresholds {
        Thresholds {
            all: vec![
                Threshold { signal: Signal::MemoryAvailable, value: ThresholdValue::Quantity(100 * MI), grace: None },
                Threshold {
                    signal: Signal::MemoryAvailable,
                    value: ThresholdValue::Quantity(500 * MI),
                    grace: Some(Duration::from_secs(60)),
                },
                Threshold { signal: Signal::PidAvailable, value: ThresholdValue::Percent(10.0), grace: None },
            ],
            transition: Duration::from_secs(300),
        }
    }

    fn memory(available_mi: i64) -> Observations {
        Observations {
            memory: Some(Observation { available: available_mi * MI, capacity: 4096 * MI }),
            pids: Some(Observation { available: 900, capacity: 1000 }),
            nodefs: None,
        }
    }

    #[test]
    fn decisions_over_time() {
        let th = thresholds();
        // (seconds, available MiB, condition set, reclaim signal + soft)
        let steps: Vec<(i64, i64, bool, Option<bool>)> = vec![
            (0, 1000, false, None),      // plenty
            (10, 400, true, None),       // soft met, grace running: pressure, no eviction
            (50, 400, true, None),       // still within 60 s
            (75, 400, true, Some(true)), // soft grace over: reclaim (soft)
            (80, 50, true, Some(false)), // hard met: reclaim at once (hard first)
            (90, 1000, true, None),      // cleared: condition stays for the transition period
            (370, 1000, true, None),     // 290 s after the last pressure (t=80)
            (400, 1000, false, None),    // transition over
            (410, 400, true, None),      // soft met again: grace starts over
        ];
        let mut state = PressureState::default();
        for (s, avail, pressure, reclaim) in steps {
            let d = decide(&th, &memory(avail), &state, t(s));
            assert_eq!(d.conditions.contains("MemoryPressure"), pressure, "t={s}: condition");
            assert_eq!(d.reclaim.map(|r| r.soft), reclaim, "t={s}: reclaim");
            assert!(!d.conditions.contains("PIDPressure"), "t={s}");
            state = d.state;
        }
    }

    #[test]
    fn percent_thresholds_use_capacity_and_report_amounts() {
        let th = thresholds();
        let obs = Observations { pids: Some(Observation { available: 50, capacity: 1000 }), ..Default::default() };
        let d = decide(&th, &obs, &PressureState::default(), t(0));
        assert!(d.conditions.contains("PIDPressure"));
        let r = d.reclaim.expect("reclaim");
        assert_eq!((r.signal, r.threshold, r.available, r.soft), (Signal::PidAvailable, 100, 50, false));
    }
}
