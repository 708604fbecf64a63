//! The graceful-deletion mark, pure: `deletionTimestamp` is the time by
//! which the object must be gone (request time + grace), and a later delete
//! may only shorten it: upstream computes the new deadline from the first
//! request's time (old deadline - old grace) plus the new grace. A delete
//! with the same or a longer grace changes nothing.

use jiff::{SignedDuration, Timestamp};

/// RFC 3339 at second precision, as every API time.
fn format(ts: Timestamp) -> String {
    jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", ts).unwrap_or_default()
}

/// The `(deletionTimestamp, deletionGracePeriodSeconds)` to store for a
/// delete with `grace` seconds at `now`, or `None` to leave the object as
/// it is. `existing` is the current mark, if any.
pub fn mark(existing: Option<(&str, i64)>, grace: i64, now: Timestamp) -> Option<(String, i64)> {
    let grace = grace.max(0);
    let requested_at = match existing {
        None => now,
        Some((_, old_grace)) if old_grace <= grace => return None,
        Some((deadline, old_grace)) => deadline
            .parse::<Timestamp>()
            .ok()
            .and_then(|d| d.checked_sub(SignedDuration::from_secs(old_grace)).ok())
            .unwrap_or(now),
    };
    let deadline = requested_at.checked_add(SignedDuration::from_secs(grace)).unwrap_or(requested_at);
    Some((format(deadline), grace))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn first_delete_sets_the_deadline_to_now_plus_grace() {
        assert_eq!(mark(None, 30, at(1000)), Some((format(at(1030)), 30)));
        assert_eq!(mark(None, -4, at(1000)), Some((format(at(1000)), 0)));
        assert_eq!(mark(None, i64::MAX, at(1000)), Some((format(at(1000)), i64::MAX)), "no overflow");
    }

    #[test]
    fn a_later_delete_only_shortens() {
        let first = format(at(1030));
        assert_eq!(mark(Some((&first, 30)), 30, at(1010)), None);
        assert_eq!(mark(Some((&first, 30)), 60, at(1010)), None, "a longer grace does not extend");
        assert_eq!(mark(Some((&first, 30)), 5, at(1010)), Some((format(at(1005)), 5)), "from the first request");
    }
}
