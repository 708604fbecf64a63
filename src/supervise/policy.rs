//! When a crashed child of `bosun up` is started again: a pure function of
//! how long its past runs lasted.

use std::time::Duration;

/// How many past runs a child remembers: enough to reach any delay (the
/// delay stops growing long before).
pub const HISTORY: usize = 32;

/// Restart delays: `initial` after the first crash, doubling with each
/// crash that ends a short run, at most `max`; a crash that ends a run of
/// at least `stable` starts the sequence over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub stable: Duration,
}

impl RestartPolicy {
    /// containerd: the pods' runtime. Its first restart is at once (pods
    /// keep running in their shims meanwhile, but probes, logs and new pods
    /// wait for it), 250 ms doubling to 16 s.
    pub const RUNTIME: RestartPolicy = RestartPolicy {
        initial: Duration::from_millis(250),
        max: Duration::from_secs(16),
        stable: Duration::from_secs(60),
    };

    /// The registry, control plane and agent: 2 s doubling to 32 s.
    pub const COMPONENT: RestartPolicy = RestartPolicy {
        initial: Duration::from_secs(2),
        max: Duration::from_secs(32),
        stable: Duration::from_secs(60),
    };
}

/// The delay before the next start of a child whose past runs lasted
/// `runs` (oldest first; the last one just ended).
pub fn restart_delay(policy: &RestartPolicy, runs: &[Duration]) -> Duration {
    // Crashes since the child last ran stably: the one that ended the
    // stable run, and one per short run after it.
    let streak = match runs.iter().rposition(|ran| *ran >= policy.stable) {
        Some(stable) => runs.len() - stable,
        None => runs.len(),
    };
    let doublings = u32::try_from(streak.saturating_sub(1)).unwrap_or(u32::MAX).min(31);
    policy.initial.checked_mul(1u32 << doublings).unwrap_or(policy.max).min(policy.max)
}

/// Appends a run to a history, keeping the last [`HISTORY`] runs.
pub fn record(runs: &mut Vec<Duration>, ran_for: Duration) {
    runs.push(ran_for);
    if runs.len() > HISTORY {
        runs.drain(..runs.len() - HISTORY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(list: &[u64]) -> Vec<Duration> {
        list.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn delay_doubles_with_each_short_run_and_resets_after_a_stable_one() {
        let policy = RestartPolicy::COMPONENT;
        let cases: &[(&[u64], u64)] = &[
            (&[0], 2),
            (&[0, 0], 4),
            (&[1, 3, 0], 8),
            (&[0, 0, 0, 0], 16),
            (&[0, 0, 0, 0, 0], 32),
            (&[0; 40], 32),
            (&[0, 0, 0, 600], 2),
            (&[0, 0, 0, 600, 5], 4),
            (&[0, 0, 0, 600, 5, 5], 8),
            (&[59, 59], 4),
            (&[60, 59], 4),
            (&[60, 60], 2),
        ];
        for (runs, want) in cases {
            assert_eq!(restart_delay(&policy, &secs(runs)), Duration::from_secs(*want), "runs {runs:?}");
        }
    }

    #[test]
    fn runtime_restarts_at_once_the_first_time() {
        let policy = RestartPolicy::RUNTIME;
        assert_eq!(restart_delay(&policy, &secs(&[3600])), Duration::from_millis(250));
        assert_eq!(restart_delay(&policy, &secs(&[3600, 1])), Duration::from_millis(500));
        assert_eq!(restart_delay(&policy, &[Duration::ZERO; 20]), Duration::from_secs(16));
    }

    #[test]
    fn an_empty_history_means_the_initial_delay() {
        assert_eq!(restart_delay(&RestartPolicy::COMPONENT, &[]), Duration::from_secs(2));
    }

    #[test]
    fn history_keeps_only_the_latest_runs() {
        let mut runs = Vec::new();
        for i in 0..100 {
            record(&mut runs, Duration::from_secs(i));
        }
        assert_eq!(runs.len(), HISTORY);
        assert_eq!(runs.first(), Some(&Duration::from_secs(100 - HISTORY as u64)));
        assert_eq!(runs.last(), Some(&Duration::from_secs(99)));
    }
}
