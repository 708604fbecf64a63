//! Probe timing from the spec, with upstream's defaults and every user
//! number bounded (negative delays are zero, periods and timeouts at least
//! one second, thresholds at least one; liveness and startup always use a
//! success threshold of one).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    /// Gates the other two until it first succeeds.
    Startup,
    /// Restarts the container when it fails.
    Liveness,
    /// Decides whether the container is ready (Service endpoints).
    Readiness,
}

impl ProbeKind {
    /// All kinds, in the order they gate each other.
    pub const ALL: [ProbeKind; 3] = [ProbeKind::Startup, ProbeKind::Liveness, ProbeKind::Readiness];

    /// `Startup`, `Liveness`, `Readiness` (Event messages).
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }

    /// The container's probe of this kind.
    pub fn of(self, container: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Startup => container.startup_probe.as_ref(),
            ProbeKind::Liveness => container.liveness_probe.as_ref(),
            ProbeKind::Readiness => container.readiness_probe.as_ref(),
        }
    }
}

/// Upstream defaults.
pub const DEFAULT_PERIOD_SECONDS: i32 = 10;
/// Upstream default probe timeout.
pub const DEFAULT_TIMEOUT_SECONDS: i32 = 1;
/// Upstream default failure threshold.
pub const DEFAULT_FAILURE_THRESHOLD: i32 = 3;

/// When and how often a probe runs, and how many results flip it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Wait after the container started before the first probe.
    pub initial_delay: Duration,
    /// Between probes.
    pub period: Duration,
    /// One probe's limit.
    pub timeout: Duration,
    /// Consecutive successes that make the result Success.
    pub success_threshold: u32,
    /// Consecutive failures that make the result Failure.
    pub failure_threshold: u32,
}

fn secs(value: Option<i32>, default: i32, min: i32) -> Duration {
    let v = value.unwrap_or(default).max(min);
    Duration::from_secs(u64::try_from(v).unwrap_or(0))
}

fn count(value: Option<i32>, default: i32) -> u32 {
    u32::try_from(value.unwrap_or(default).max(1)).unwrap_or(1)
}

impl Timing {
    /// The timing of `probe` used as a `kind` probe.
    pub fn of(probe: &Probe, kind: ProbeKind) -> Self {
        let success_threshold = match kind {
            ProbeKind::Readiness => count(probe.success_threshold, 1),
            ProbeKind::Liveness | ProbeKind::Startup => 1,
        };
        Timing {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, DEFAULT_PERIOD_SECONDS, 1),
            timeout: secs(probe.timeout_seconds, DEFAULT_TIMEOUT_SECONDS, 1),
            success_threshold,
            failure_threshold: count(probe.failure_threshold, DEFAULT_FAILURE_THRESHOLD),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_upstream() {
        let t = Timing::of(&Probe::default(), ProbeKind::Readiness);
        assert_eq!(t.initial_delay, Duration::ZERO);
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!((t.success_threshold, t.failure_threshold), (1, 3));
    }

    #[test]
    fn user_numbers_are_bounded() {
        let probe = Probe {
            initial_delay_seconds: Some(-5),
            period_seconds: Some(0),
            timeout_seconds: Some(-1),
            success_threshold: Some(4),
            failure_threshold: Some(i32::MIN),
            ..Default::default()
        };
        let t = Timing::of(&probe, ProbeKind::Readiness);
        assert_eq!(t.initial_delay, Duration::ZERO);
        assert_eq!(t.period, Duration::from_secs(1));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!((t.success_threshold, t.failure_threshold), (4, 1));
        assert_eq!(Timing::of(&probe, ProbeKind::Liveness).success_threshold, 1);
        let big = Probe { period_seconds: Some(i32::MAX), ..Default::default() };
        assert_eq!(Timing::of(&big, ProbeKind::Startup).period, Duration::from_secs(i32::MAX as u64));
    }
}
