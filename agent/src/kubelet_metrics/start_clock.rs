//! When a pod started, for `kubelet_pod_start_duration_seconds`: from the
//! worker's first sight of the pod to the first status with phase Running,
//! observed once per pod. A pod whose API status already says Running when
//! first seen (an agent restart adopting its pods) is not timed.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus};

const RUNNING: &str = "Running";

fn phase_is_running(status: Option<&PodStatus>) -> bool {
    status.and_then(|s| s.phase.as_deref()) == Some(RUNNING)
}

/// A pod's start clock: armed at first sight, read once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartClock {
    since: Option<Instant>,
}

impl StartClock {
    /// The clock of `pod`, first seen at `now`.
    pub fn first_seen(pod: &Pod, now: Instant) -> Self {
        let running = phase_is_running(pod.status.as_ref());
        Self { since: (!running).then_some(now) }
    }

    /// How long the pod took to start, the first time `status` shows it
    /// Running; `None` before and ever after.
    pub fn started(&mut self, status: &PodStatus, now: Instant) -> Option<Duration> {
        if !phase_is_running(Some(status)) {
            return None;
        }
        self.since.take().map(|since| now.saturating_duration_since(since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(phase: &str) -> PodStatus {
        PodStatus { phase: Some(phase.to_owned()), ..Default::default() }
    }

    #[test]
    fn a_new_pod_is_timed_once_when_it_first_runs() {
        let t0 = Instant::now();
        let mut clock = StartClock::first_seen(&Pod::default(), t0);
        assert_eq!(clock.started(&status("Pending"), t0 + Duration::from_secs(1)), None);
        assert_eq!(clock.started(&status("Running"), t0 + Duration::from_secs(3)), Some(Duration::from_secs(3)));
        assert_eq!(clock.started(&status("Running"), t0 + Duration::from_secs(9)), None);
    }

    #[test]
    fn a_pod_already_running_when_first_seen_is_not_timed() {
        let t0 = Instant::now();
        let pod = Pod { status: Some(status("Running")), ..Default::default() };
        let mut clock = StartClock::first_seen(&pod, t0);
        assert_eq!(clock.started(&status("Running"), t0 + Duration::from_secs(1)), None);
    }

    #[test]
    fn a_pod_that_never_runs_is_never_timed() {
        let t0 = Instant::now();
        let mut clock = StartClock::first_seen(&Pod::default(), t0);
        assert_eq!(clock.started(&status("Succeeded"), t0 + Duration::from_secs(1)), None);
        assert_eq!(clock.started(&status("Failed"), t0 + Duration::from_secs(2)), None);
    }
}
