//! CronJob schedules: standard 5-field cron (minute hour day-of-month month
//! day-of-week, names like `MON`/`JAN`, and the `@yearly`, `@annually`,
//! `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly` shorthands), as
//! upstream's parser takes them, evaluated in a time zone (UTC unless
//! `spec.timeZone` names an IANA zone).
//!
//! Owns: parsing (through the `croner` crate, with seconds and years
//! disallowed and its extensions `L`, `W`, `#` refused, since upstream has
//! none of them) and finding schedule times. Used by CronJob validation and
//! by the CronJob controller. Pure; no clock of its own.

use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// A schedule that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The cron expression does not parse.
    #[error("unparseable schedule {schedule:?}: {reason}")]
    Schedule {
        /// The expression.
        schedule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The time zone is not known.
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    /// `TZ=` or `CRON_TZ=` inside the schedule (upstream refuses it: use `spec.timeZone`).
    #[error("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")]
    ZoneInSchedule,
}

/// Longest schedule accepted (the parser's work is linear in it).
const MAX_SCHEDULE_LEN: usize = 256;

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    zone: TimeZone,
}

impl Schedule {
    /// Parses `schedule` in `time_zone` (None: UTC).
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Schedule, Error> {
        let bad = |reason: &str| Error::Schedule { schedule: schedule.to_string(), reason: reason.to_string() };
        let trimmed = schedule.trim();
        if trimmed.len() > MAX_SCHEDULE_LEN {
            return Err(bad("too long"));
        }
        if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
            return Err(Error::ZoneInSchedule);
        }
        if trimmed.contains(['L', 'W', '#', 'l', 'w']) && !trimmed.starts_with('@') && !has_only_names(trimmed) {
            return Err(bad("L, W and # are not supported"));
        }
        let pattern = if trimmed.eq_ignore_ascii_case("@midnight") { "@daily" } else { trimmed };
        if pattern.starts_with('@') && !NICKNAMES.iter().any(|n| pattern.eq_ignore_ascii_case(n)) {
            return Err(bad("unrecognized descriptor"));
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let cron = parser.parse(pattern).map_err(|e| bad(&e.to_string()))?;
        let zone = match time_zone {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|_| Error::TimeZone(name.to_string()))?,
        };
        Ok(Schedule { cron, zone })
    }

    /// The first schedule time strictly after `t`, if any.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let zoned = t.to_zoned(self.zone.clone());
        self.cron.find_next_occurrence(&zoned, false).ok().map(|z| z.timestamp())
    }

    /// The schedule times in `(after, until]`, the latest last, counting at
    /// most `limit` of them: returns (the latest, how many, whether the
    /// count stopped at `limit`).
    pub fn times_between(&self, after: Timestamp, until: Timestamp, limit: usize) -> Missed {
        let mut missed = Missed::default();
        let mut t = after;
        while let Some(next) = self.next_after(t).filter(|n| *n <= until) {
            missed.latest = Some(next);
            missed.count = missed.count.saturating_add(1);
            if missed.count > limit {
                missed.too_many = true;
                // Jump to the last time before `until` instead of walking there.
                missed.latest = self.last_at_or_before(until).or(missed.latest);
                break;
            }
            t = next;
        }
        missed
    }

    /// The latest schedule time at or before `t`.
    fn last_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let zoned = t.to_zoned(self.zone.clone());
        self.cron.find_previous_occurrence(&zoned, true).ok().map(|z| z.timestamp())
    }
}

/// Schedule times missed between two instants.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// The most recent one.
    pub latest: Option<Timestamp>,
    /// How many were counted (at most the limit + 1).
    pub count: usize,
    /// More than the limit were missed.
    pub too_many: bool,
}

const NICKNAMES: [&str; 6] = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"];

/// Month and weekday names contain L or W (JUL, WED...): allowed there.
fn has_only_names(schedule: &str) -> bool {
    const NAMES: [&str; 19] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", "SUN", "MON", "TUE", "WED",
        "THU", "FRI", "SAT",
    ];
    let upper = schedule.to_ascii_uppercase();
    let mut rest = upper.clone();
    for name in NAMES {
        rest = rest.replace(name, "");
    }
    !rest.contains(['L', 'W', '#'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn parses_standard_schedules_and_refuses_the_rest() {
        let ok =
            ["*/1 * * * *", "0 0 * * *", "@hourly", "@midnight", "@WEEKLY", "5 4 * JUL WED", "0 9-17/2 1,15 * 1-5"];
        for s in ok {
            assert!(Schedule::parse(s, None).is_ok(), "{s}");
        }
        let bad =
            ["", "* * * *", "0 * * * * *", "61 * * * *", "0 0 L * *", "0 0 * * 5#3", "@every 5m", "TZ=UTC * * * * *"];
        for s in bad {
            assert!(Schedule::parse(s, None).is_err(), "{s}");
        }
        assert_eq!(
            Schedule::parse("* * * * *", Some("Mars/Olympus")).err(),
            Some(Error::TimeZone("Mars/Olympus".into()))
        );
    }

    #[test]
    fn next_times_follow_the_time_zone() {
        let s = Schedule::parse("*/15 * * * *", None).expect("parse");
        assert_eq!(s.next_after(at("2026-01-01T10:07:00Z")), Some(at("2026-01-01T10:15:00Z")));
        assert_eq!(s.next_after(at("2026-01-01T10:15:00Z")), Some(at("2026-01-01T10:30:00Z")));
        let ny = Schedule::parse("0 9 * * *", Some("America/New_York")).expect("parse");
        assert_eq!(ny.next_after(at("2026-01-01T00:00:00Z")), Some(at("2026-01-01T14:00:00Z")));
    }

    #[test]
    fn missed_times_are_counted_up_to_a_limit() {
        let s = Schedule::parse("* * * * *", None).expect("parse");
        let few = s.times_between(at("2026-01-01T10:00:00Z"), at("2026-01-01T10:03:30Z"), 100);
        assert_eq!(few, Missed { latest: Some(at("2026-01-01T10:03:00Z")), count: 3, too_many: false });
        let many = s.times_between(at("2026-01-01T10:00:00Z"), at("2026-01-02T10:00:30Z"), 100);
        assert!(many.too_many);
        assert_eq!(many.latest, Some(at("2026-01-02T10:00:00Z")));
        let none = s.times_between(at("2026-01-01T10:00:00Z"), at("2026-01-01T10:00:59Z"), 100);
        assert_eq!(none, Missed::default());
    }
}
