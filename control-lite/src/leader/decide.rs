//! The leader-election decision (pure): given what the Lease says, who we
//! are and the time, what to do next.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// What a candidate read from the Lease (`None` in [`decide`]: no Lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `spec.holderIdentity` (`None` or empty: released).
    pub holder: Option<String>,
    /// `spec.renewTime`.
    pub renew_time: Option<Timestamp>,
    /// `spec.leaseDurationSeconds` (`None`: the candidate's own).
    pub duration: Option<Duration>,
}

/// What the candidate does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it, holding it.
    Create,
    /// The Lease is released or expired: take it over (an update
    /// conditioned on the resourceVersion read, so one candidate wins).
    Acquire,
    /// We hold it: renew it (conditioned the same way).
    Renew,
    /// `holder` holds a valid Lease: read it again at the latest at `until`,
    /// when it expires unless renewed.
    Wait { holder: String, until: Timestamp },
}

/// The decision for `identity` at `now` (wall clock, as `renewTime` is:
/// the hosts' clocks are assumed synchronised within a fraction of the
/// lease duration). A Lease without a renew time or a holder is free; one
/// is expired at `renewTime + leaseDurationSeconds` (`default_duration`
/// if it has none).
pub fn decide(lease: Option<&Observed>, identity: &str, now: Timestamp, default_duration: Duration) -> Decision {
    let Some(lease) = lease else { return Decision::Create };
    let holder = lease.holder.as_deref().filter(|h| !h.is_empty());
    let Some(holder) = holder else { return Decision::Acquire };
    if holder == identity {
        return Decision::Renew;
    }
    let Some(renewed) = lease.renew_time else { return Decision::Acquire };
    let duration = lease.duration.unwrap_or(default_duration);
    let until = SignedDuration::try_from(duration).ok().and_then(|d| renewed.checked_add(d).ok());
    match until {
        Some(until) if until > now => Decision::Wait { holder: holder.to_owned(), until },
        // Expired, or so far out it cannot be represented: expired too.
        _ => Decision::Acquire,
    }
}

/// Whether a leader whose last successful renewal was `since_renewed` ago
/// must stop leading: after `renew_deadline` without one (upstream's
/// `--leader-elect-renew-deadline`), before its Lease can expire for others.
pub fn renewal_overdue(since_renewed: Duration, renew_deadline: Duration) -> bool {
    since_renewed >= renew_deadline
}

/// How long a waiting candidate sleeps before reading the Lease again: the
/// retry period, or less if the Lease expires sooner (so a standby takes
/// over as soon as the holder's Lease runs out, not up to a period later).
pub fn wait_time(until: Timestamp, now: Timestamp, retry_period: Duration) -> Duration {
    let left = until.duration_since(now);
    let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
    left.min(retry_period)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECS: fn(u64) -> Duration = Duration::from_secs;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("timestamp")
    }

    fn lease(holder: Option<&str>, renewed: Option<i64>, duration: Option<u64>) -> Observed {
        Observed { holder: holder.map(str::to_owned), renew_time: renewed.map(at), duration: duration.map(SECS) }
    }

    #[test]
    fn decides_create_acquire_renew_or_wait() {
        let wait = |holder: &str, until| Decision::Wait { holder: holder.into(), until: at(until) };
        let cases: [(Option<Observed>, i64, Decision); 9] = [
            (None, 0, Decision::Create),
            (Some(lease(None, Some(0), Some(15))), 1, Decision::Acquire),
            (Some(lease(Some(""), Some(0), Some(15))), 1, Decision::Acquire),
            (Some(lease(Some("me"), Some(0), Some(15))), 1, Decision::Renew),
            (Some(lease(Some("me"), Some(0), Some(15))), 100, Decision::Renew),
            (Some(lease(Some("other"), Some(0), Some(15))), 14, wait("other", 15)),
            (Some(lease(Some("other"), Some(0), Some(15))), 15, Decision::Acquire),
            (Some(lease(Some("other"), Some(0), None)), 5, wait("other", 10)),
            (Some(lease(Some("other"), None, Some(15))), 0, Decision::Acquire),
        ];
        for (i, (observed, now, want)) in cases.into_iter().enumerate() {
            assert_eq!(decide(observed.as_ref(), "me", at(now), SECS(10)), want, "case {i}");
        }
    }

    #[test]
    fn an_unrepresentable_expiry_counts_as_expired() {
        let huge = Observed { holder: Some("other".into()), renew_time: Some(at(0)), duration: Some(Duration::MAX) };
        assert_eq!(decide(Some(&huge), "me", at(1), SECS(15)), Decision::Acquire);
    }

    #[test]
    fn a_leader_stops_once_renewal_is_overdue() {
        assert!(!renewal_overdue(SECS(9), SECS(10)));
        assert!(renewal_overdue(SECS(10), SECS(10)));
    }

    #[test]
    fn a_standby_wakes_at_expiry_or_after_the_retry_period() {
        assert_eq!(wait_time(at(15), at(14), SECS(2)), SECS(1));
        assert_eq!(wait_time(at(15), at(5), SECS(2)), SECS(2));
        assert_eq!(wait_time(at(15), at(20), SECS(2)), Duration::ZERO, "already expired");
    }
}
