//! Termination timing, pure: how long StopContainer may wait for a
//! container to exit on its stop signal before the runtime kills it.
//!
//! The apiserver sets `deletionTimestamp = now + grace` and
//! `deletionGracePeriodSeconds = grace` (a second delete may shorten both);
//! the agent stops containers by that deadline. The preStop hook runs
//! first and its time comes out of the grace; as upstream, the runtime
//! always gets at least [`MIN_GRACE`] after a hook.
//!
//! The grace is decided once (`actions::PodActions::terminate`) and becomes
//! one [`Budget`] for the whole termination: app containers, then sidecars
//! wave by wave, each get what is left of it, as upstream, not a full
//! grace per wave. A later delete with a shorter grace only shortens it.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

/// Upstream's floor for the stop grace after a preStop hook.
pub const MIN_GRACE: Duration = Duration::from_secs(2);

/// Grace left for StopContainer after a preStop hook that took `spent`.
pub fn grace_after_pre_stop(grace: Duration, spent: Duration) -> Duration {
    grace.saturating_sub(spent).max(MIN_GRACE)
}

/// Rounds up to whole seconds (the CRI's unit). API times are truncated to
/// the second, so the stored deadline is up to a second early; rounding up
/// lands the kill on the deadline's second rather than before it.
fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0)))
}

/// The grace for stopping a pod being deleted, at `now`: the pod's
/// deletion grace (or its terminationGracePeriodSeconds, default 30), cut
/// to what is left until its deletionTimestamp.
pub fn deletion_grace(pod: &Pod, now: Timestamp) -> Duration {
    let grace = crate::actions::grace_period(pod);
    let Some(deadline) = pod.metadata.deletion_timestamp.as_ref().map(|t| t.0) else {
        return grace;
    };
    let left_ns = deadline.as_nanosecond().saturating_sub(now.as_nanosecond()).max(0);
    let left = Duration::from_nanos(u64::try_from(left_ns).unwrap_or(u64::MAX));
    whole_seconds(left.min(grace))
}

/// One grace budget for a whole pod termination: a deadline fixed when the
/// termination began, shortened (never extended) by a shorter grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    deadline: Instant,
}

impl Budget {
    /// A budget of `grace` from `now`.
    pub fn starting(now: Instant, grace: Duration) -> Self {
        Self { deadline: now.checked_add(grace).unwrap_or(now) }
    }

    /// What is left at `now` (zero once the deadline passed).
    pub fn left(&self, now: Instant) -> Duration {
        self.deadline.saturating_duration_since(now)
    }

    /// Shortens the budget to `grace` from `now` when that ends earlier;
    /// true when it did.
    pub fn shorten(&mut self, now: Instant, grace: Duration) -> bool {
        let shorter = Self::starting(now, grace);
        if shorter.deadline >= self.deadline {
            return false;
        }
        *self = shorter;
        true
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn deleted(deadline: i64, grace: i64) -> Pod {
        let mut pod = Pod { spec: Some(PodSpec::default()), ..Default::default() };
        pod.metadata.deletion_timestamp = Some(Time(at(deadline)));
        pod.metadata.deletion_grace_period_seconds = Some(grace);
        pod
    }

    #[test]
    fn stop_grace_is_what_is_left_until_the_deadline() {
        assert_eq!(deletion_grace(&deleted(1030, 30), at(1000)), Duration::from_secs(30));
        assert_eq!(deletion_grace(&deleted(1030, 30), at(1020)), Duration::from_secs(10));
        assert_eq!(deletion_grace(&deleted(1030, 30), at(1040)), Duration::ZERO);
        assert_eq!(deletion_grace(&deleted(1030, 5), at(1000)), Duration::from_secs(5), "never past the grace");
        let now = Timestamp::from_nanosecond(1_020_600_000_000).unwrap();
        assert_eq!(deletion_grace(&deleted(1030, 30), now), Duration::from_secs(10), "rounded up to whole seconds");
    }

    #[test]
    fn one_budget_is_shared_by_every_wave_and_only_ever_shortened() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut budget = Budget::starting(t0, s(30));
        assert_eq!(budget.left(t0), s(30));
        assert_eq!(budget.left(t0 + s(12)), s(18), "the second wave gets what the first left");
        assert_eq!(budget.left(t0 + s(40)), Duration::ZERO);
        assert!(!budget.shorten(t0 + s(10), s(25)), "a longer grace does not extend it");
        assert_eq!(budget.left(t0 + s(10)), s(20));
        assert!(budget.shorten(t0 + s(10), s(5)));
        assert_eq!(budget.left(t0 + s(12)), s(3));
    }

    #[test]
    fn pre_stop_time_comes_out_of_the_grace_with_a_floor() {
        assert_eq!(grace_after_pre_stop(Duration::from_secs(30), Duration::from_secs(5)), Duration::from_secs(25));
        assert_eq!(grace_after_pre_stop(Duration::from_secs(5), Duration::from_secs(5)), MIN_GRACE);
        assert_eq!(grace_after_pre_stop(Duration::from_secs(1), Duration::ZERO), MIN_GRACE);
    }
}
