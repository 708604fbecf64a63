//! Termination timing, pure: how long StopContainer may wait for a
//! container to exit on its stop signal before the runtime kills it.
//!
//! The apiserver sets `deletionTimestamp = now + grace` and
//! `deletionGracePeriodSeconds = grace` (a second delete may shorten both);
//! the agent stops containers by that deadline. The preStop hook runs
//! first and its time comes out of the grace; as upstream, the runtime
//! always gets at least [`MIN_GRACE`] after a hook.

use std::time::Duration;

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
    fn pre_stop_time_comes_out_of_the_grace_with_a_floor() {
        assert_eq!(grace_after_pre_stop(Duration::from_secs(30), Duration::from_secs(5)), Duration::from_secs(25));
        assert_eq!(grace_after_pre_stop(Duration::from_secs(5), Duration::from_secs(5)), MIN_GRACE);
        assert_eq!(grace_after_pre_stop(Duration::from_secs(1), Duration::ZERO), MIN_GRACE);
    }
}
