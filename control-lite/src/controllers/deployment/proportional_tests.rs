//! Table tests of proportional scaling. Sets are listed oldest first, the
//! new ReplicaSet last: (name, replicas, max-replicas annotation).

use super::*;

const MAX: i32 = i32::MAX;

struct Case {
    name: &'static str,
    /// (desired, maxSurge, status.replicas, new set saturated)
    target: (i32, i32, i32, bool),
    sets: &'static [(&'static str, i32, Option<i32>)],
    want: &'static [(&'static str, i32)],
}

const CASES: &[Case] = &[
    Case {
        // The documented example: 10 replicas, maxSurge 3, a stuck rollout
        // at 8 old + 5 new, scaled to 15: 3 more old, 2 more new.
        name: "docs example scale up mid-rollout",
        target: (15, 3, 13, false),
        sets: &[("old", 8, Some(13)), ("new", 5, Some(13))],
        want: &[("old", 11), ("new", 7)],
    },
    Case {
        name: "scale down mid-rollout",
        target: (5, 3, 18, false),
        sets: &[("old", 11, Some(18)), ("new", 7, Some(18))],
        want: &[("old", 5), ("new", 3)],
    },
    Case {
        name: "paused without a new set, no surge",
        target: (9, 0, 6, false),
        sets: &[("a", 4, Some(6)), ("b", 2, Some(6))],
        want: &[("a", 6), ("b", 3)],
    },
    Case {
        name: "scale to zero empties every active set",
        target: (0, 3, 13, false),
        sets: &[("old", 8, Some(13)), ("new", 5, Some(13))],
        want: &[("old", 0), ("new", 0)],
    },
    Case {
        name: "rounding leftover up goes to the newest of the largest",
        target: (4, 0, 3, false),
        sets: &[("a", 1, Some(3)), ("b", 1, Some(3)), ("c", 1, Some(3))],
        want: &[("a", 1), ("b", 1), ("c", 2)],
    },
    Case {
        name: "rounding leftover down comes from the oldest of the largest",
        target: (2, 0, 3, false),
        sets: &[("a", 1, Some(3)), ("b", 1, Some(3)), ("c", 1, Some(3))],
        want: &[("a", 0), ("b", 1), ("c", 1)],
    },
    Case {
        name: "inactive sets are left alone",
        target: (15, 3, 13, false),
        sets: &[("gone", 0, Some(13)), ("old", 8, Some(13)), ("new", 5, Some(13))],
        want: &[("old", 11), ("new", 7)],
    },
    Case {
        name: "one active set takes the whole size",
        target: (5, 1, 3, false),
        sets: &[("old", 0, Some(4)), ("new", 3, Some(4))],
        want: &[("new", 5)],
    },
    Case {
        name: "no active set: the newest takes the whole size",
        target: (4, 1, 0, false),
        sets: &[("old", 0, Some(2)), ("new", 0, Some(2))],
        want: &[("new", 4)],
    },
    Case { name: "no sets", target: (4, 1, 0, false), sets: &[], want: &[] },
    Case {
        name: "saturated new set: old ones go to zero",
        target: (5, 1, 7, true),
        sets: &[("old", 2, Some(6)), ("new", 5, Some(6))],
        want: &[("old", 0)],
    },
    Case {
        name: "missing annotation falls back to status.replicas",
        target: (15, 3, 13, false),
        sets: &[("old", 8, None), ("new", 5, Some(0))],
        want: &[("old", 11), ("new", 7)],
    },
    Case {
        name: "already at the allowed size: sizes stay, annotations follow",
        target: (10, 3, 13, false),
        sets: &[("old", 8, Some(13)), ("new", 5, Some(13))],
        want: &[("old", 8), ("new", 5)],
    },
    Case {
        name: "huge sizes at the allowed total do not overflow",
        target: (MAX, MAX, MAX, false),
        sets: &[("old", MAX, Some(MAX)), ("new", MAX, Some(MAX))],
        want: &[("old", MAX), ("new", MAX)],
    },
    Case {
        name: "huge scale up is split and capped at i32::MAX",
        target: (MAX, 0, 2, false),
        sets: &[("old", 1, Some(2)), ("new", 1, Some(2))],
        want: &[("old", 1_073_741_823), ("new", 1_073_741_824)],
    },
    Case {
        name: "huge scale up beyond i32 saturates",
        target: (MAX, MAX, 2, false),
        sets: &[("old", 1, Some(1)), ("new", 1, Some(1))],
        want: &[("old", 1), ("new", MAX)],
    },
    Case {
        name: "huge scale down",
        target: (1, 0, MAX, false),
        sets: &[("old", MAX, Some(MAX)), ("new", MAX, Some(MAX))],
        want: &[("old", 0), ("new", 1)],
    },
];

#[test]
fn proportional_scale_cases() {
    for case in CASES {
        let (desired, surge, previous, new_saturated) = case.target;
        let target = Target { desired, surge, previous, new_saturated };
        let sets: Vec<ScaleSet> = case
            .sets
            .iter()
            .map(|(name, replicas, max_replicas)| ScaleSet {
                name: name.to_string(),
                replicas: *replicas,
                max_replicas: *max_replicas,
            })
            .collect();
        let got = proportional_scale(target, &sets);
        let want: Vec<(String, i32)> = case.want.iter().map(|(n, r)| (n.to_string(), *r)).collect();
        assert_eq!(got, want, "{}", case.name);
    }
}

#[test]
fn rounding_is_half_away_from_zero() {
    assert_eq!(rounded_ratio(1, 3, 2), 2);
    assert_eq!(rounded_ratio(1, 1, 3), 0);
    assert_eq!(rounded_ratio(i64::from(MAX), i64::from(MAX) * 2, 1), i64::from(MAX) * i64::from(MAX) * 2);
}
