//! The probe state machine, pure: consecutive outcomes against the
//! thresholds give the result; the gate says whether a probe runs now
//! (initial delay, startup gating). Mirrors the upstream prober worker.

use std::time::Duration;

use super::spec::{ProbeKind, Timing};

/// A probe's current verdict for one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    /// Not decided yet (a startup probe before its first success).
    Unknown,
    /// Passing.
    Success,
    /// Failing.
    Failure,
}

impl ProbeResult {
    /// What a probe reports before it has run: readiness starts not ready,
    /// liveness starts alive, startup starts undecided.
    pub fn initial(kind: ProbeKind) -> Self {
        match kind {
            ProbeKind::Readiness => ProbeResult::Failure,
            ProbeKind::Liveness => ProbeResult::Success,
            ProbeKind::Startup => ProbeResult::Unknown,
        }
    }
}

/// Counts consecutive outcomes of one probe of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    kind: ProbeKind,
    timing: Timing,
    result: ProbeResult,
    last: Option<bool>,
    run: u32,
}

/// What the worker does after recording an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The result changed to this.
    pub changed: Option<ProbeResult>,
    /// Stop probing this container: a liveness or startup failure (it is
    /// about to be killed) or a startup success (it has started).
    pub stop: bool,
}

impl ProbeState {
    /// A fresh state for a new container.
    pub fn new(kind: ProbeKind, timing: Timing) -> Self {
        ProbeState { kind, timing, result: ProbeResult::initial(kind), last: None, run: 0 }
    }

    /// The current result.
    pub fn result(&self) -> ProbeResult {
        self.result
    }

    /// Records one probe outcome.
    pub fn record(&mut self, success: bool) -> Step {
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success { self.timing.success_threshold } else { self.timing.failure_threshold };
        if self.run < threshold {
            return Step { changed: None, stop: false };
        }
        let next = if success { ProbeResult::Success } else { ProbeResult::Failure };
        let changed = (next != self.result).then_some(next);
        self.result = next;
        let stop = match self.kind {
            ProbeKind::Readiness => false,
            ProbeKind::Liveness => !success,
            ProbeKind::Startup => true,
        };
        Step { changed, stop }
    }
}

/// Whether a probe runs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Run it.
    Probe,
    /// Not yet: wait this long (initial delay still running).
    Wait(Duration),
    /// Not yet: the startup probe has not succeeded (check again next period).
    AwaitStartup,
}

/// The gate for a `kind` probe of a container running for `running_for`;
/// `started` is whether its startup probe (if any) has succeeded.
pub fn gate(kind: ProbeKind, timing: &Timing, running_for: Duration, started: bool) -> Gate {
    if kind != ProbeKind::Startup && !started {
        return Gate::AwaitStartup;
    }
    match timing.initial_delay.checked_sub(running_for) {
        Some(wait) if !wait.is_zero() => Gate::Wait(wait),
        _ => Gate::Probe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(success: u32, failure: u32) -> Timing {
        Timing {
            initial_delay: Duration::from_secs(5),
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn readiness_flips_only_after_consecutive_thresholds() {
        let mut s = ProbeState::new(ProbeKind::Readiness, timing(2, 3));
        assert_eq!(s.result(), ProbeResult::Failure);
        assert_eq!(s.record(true).changed, None);
        assert_eq!(s.record(true).changed, Some(ProbeResult::Success));
        assert_eq!(s.record(false).changed, None);
        assert_eq!(s.record(true).changed, None, "a success resets the failure run");
        assert_eq!(s.record(false).changed, None);
        assert_eq!(s.record(false).changed, None);
        let step = s.record(false);
        assert_eq!(step, Step { changed: Some(ProbeResult::Failure), stop: false });
        assert_eq!(s.record(false).changed, None, "no repeated change");
    }

    #[test]
    fn liveness_failure_at_threshold_stops_the_worker() {
        let mut s = ProbeState::new(ProbeKind::Liveness, timing(1, 2));
        assert_eq!(s.result(), ProbeResult::Success);
        assert_eq!(s.record(true), Step { changed: None, stop: false });
        assert_eq!(s.record(false), Step { changed: None, stop: false });
        assert_eq!(s.record(false), Step { changed: Some(ProbeResult::Failure), stop: true });
    }

    #[test]
    fn startup_stops_on_first_success_or_at_failure_threshold() {
        let mut s = ProbeState::new(ProbeKind::Startup, timing(1, 3));
        assert_eq!(s.result(), ProbeResult::Unknown);
        assert!(!s.record(false).stop);
        assert_eq!(s.record(true), Step { changed: Some(ProbeResult::Success), stop: true });
        let mut s = ProbeState::new(ProbeKind::Startup, timing(1, 2));
        s.record(false);
        assert_eq!(s.record(false), Step { changed: Some(ProbeResult::Failure), stop: true });
    }

    #[test]
    fn initial_delay_and_startup_gate_probes() {
        let t = timing(1, 1);
        assert_eq!(gate(ProbeKind::Readiness, &t, Duration::from_secs(2), true), Gate::Wait(Duration::from_secs(3)));
        assert_eq!(gate(ProbeKind::Readiness, &t, Duration::from_secs(5), true), Gate::Probe);
        assert_eq!(gate(ProbeKind::Liveness, &t, Duration::from_secs(60), false), Gate::AwaitStartup);
        assert_eq!(gate(ProbeKind::Readiness, &t, Duration::from_secs(60), false), Gate::AwaitStartup);
        assert_eq!(gate(ProbeKind::Startup, &t, Duration::from_secs(9), false), Gate::Probe);
    }
}
