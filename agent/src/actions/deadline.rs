//! `activeDeadlineSeconds`: how long a pod may be active on the node,
//! counted from `status.startTime`. When it passes, every container is
//! killed and the pod fails with reason `DeadlineExceeded`.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;

/// `status.message` of a pod failed by its deadline (upstream's text).
pub const MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// Where the pod stands with its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// No deadline (unset, not positive, not started, or out of range).
    None,
    /// The deadline passes after this long.
    Remaining(Duration),
    /// The deadline has passed.
    Exceeded,
}

/// The deadline of `pod` at `now`.
pub fn check(pod: &Pod, now: Timestamp) -> Deadline {
    let Some(seconds) = pod.spec.as_ref().and_then(|s| s.active_deadline_seconds).filter(|s| *s > 0) else {
        return Deadline::None;
    };
    let Some(start) = pod.status.as_ref().and_then(|s| s.start_time.as_ref()) else {
        return Deadline::None;
    };
    let Ok(end) = start.0.checked_add(SignedDuration::from_secs(seconds)) else {
        return Deadline::None;
    };
    match now.duration_until(end).try_into() {
        Ok(left) if left > Duration::ZERO => Deadline::Remaining(left),
        _ => Deadline::Exceeded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(deadline: Option<i64>, start: Option<i64>) -> Pod {
        Pod {
            spec: Some(PodSpec { active_deadline_seconds: deadline, ..Default::default() }),
            status: Some(PodStatus {
                start_time: start.map(|s| Time(Timestamp::from_second(s).expect("valid"))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn deadline_counts_from_start_time() {
        let now = Timestamp::from_second(1_000).expect("valid");
        // (activeDeadlineSeconds, startTime, expected)
        let cases = [
            (None, Some(900), Deadline::None),
            (Some(0), Some(900), Deadline::None),
            (Some(-5), Some(900), Deadline::None),
            (Some(30), None, Deadline::None),
            (Some(300), Some(900), Deadline::Remaining(Duration::from_secs(200))),
            (Some(100), Some(900), Deadline::Exceeded),
            (Some(50), Some(900), Deadline::Exceeded),
            (Some(i64::MAX), Some(900), Deadline::None),
        ];
        for (deadline, start, want) in cases {
            assert_eq!(check(&pod(deadline, start), now), want, "{deadline:?} {start:?}");
        }
    }
}
