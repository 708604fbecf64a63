//! Table tests of the rollout arithmetic.

use super::*;

fn int(n: i32) -> IntOrString {
    IntOrString::Int(n)
}

fn pct(s: &str) -> IntOrString {
    IntOrString::String(s.to_string())
}

fn rs(name: &str, replicas: i32, actual: i32, available: i32) -> RsCounts {
    RsCounts { name: name.to_string(), replicas, actual, available }
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let cases = [
        // (maxSurge, maxUnavailable, replicas) -> (surge, unavailable)
        ((None, None, 10), (3, 2)),
        ((None, None, 3), (1, 0)),
        ((None, None, 1), (1, 0)),
        ((Some(int(0)), Some(int(0)), 5), (0, 1)),
        ((Some(pct("0%")), Some(pct("0%")), 5), (0, 1)),
        ((Some(pct("50%")), Some(pct("50%")), 3), (2, 1)),
        ((Some(int(2)), Some(pct("10%")), 5), (2, 0)),
        ((Some(pct("bogus")), Some(int(1)), 5), (0, 1)),
        ((Some(int(i32::MAX)), Some(int(i32::MAX)), 2), (i32::MAX, i32::MAX)),
        ((Some(pct("2147483647%")), Some(pct("100%")), i32::MAX), (i32::MAX, i32::MAX)),
        ((Some(pct("99999999999999999999%")), Some(pct("-5%")), 5), (0, 1)),
        ((Some(int(-3)), None, i32::MAX), (0, 536_870_911)),
    ];
    for ((surge, unavailable, replicas), want) in cases {
        assert_eq!(
            fenceposts(surge.as_ref(), unavailable.as_ref(), replicas),
            want,
            "{surge:?} {unavailable:?} {replicas}"
        );
    }
}

#[test]
fn new_replicaset_grows_within_surge() {
    let cases = [
        // (desired, surge, total, new_current) -> target
        ((3, 1, 3, 0), 1),                           // start of a rollout: one surge pod
        ((3, 1, 4, 1), 1),                           // at max total: wait for old to shrink
        ((3, 1, 3, 1), 2),                           // old shrank by one: grow by one
        ((3, 0, 3, 0), 0),                           // no surge: wait for old to shrink
        ((5, 0, 0, 0), 5),                           // fresh deployment, nothing exists
        ((5, 1, 2, 2), 5),                           // plain scale up
        ((2, 1, 5, 5), 2),                           // scale down of the new RS is immediate
        ((2, i32::MAX, 0, 0), 2),                    // huge surge: no overflow
        ((i32::MAX, i32::MAX, 4_294_967_294, 0), 0), // at a huge max total
        ((i32::MAX, i32::MAX, 1, 1), i32::MAX),
    ];
    for ((desired, surge, total, current), want) in cases {
        assert_eq!(new_rs_replicas(desired, surge, total, current), want, "{desired} {surge} {total} {current}");
    }
}

#[test]
fn old_replicasets_shrink_while_keeping_min_available() {
    struct Case {
        name: &'static str,
        desired: i32,
        unavailable: i32,
        new: RsCounts,
        old: Vec<RsCounts>,
        want: Vec<(&'static str, i32)>,
    }
    let cases = vec![
        Case {
            name: "new pod not yet available: keep old",
            desired: 3,
            unavailable: 0,
            new: rs("new", 1, 1, 0),
            old: vec![rs("old", 3, 3, 3)],
            want: vec![],
        },
        Case {
            name: "new pod available: drop one old",
            desired: 3,
            unavailable: 0,
            new: rs("new", 1, 1, 1),
            old: vec![rs("old", 3, 3, 3)],
            want: vec![("old", 2)],
        },
        Case {
            name: "maxUnavailable lets old shrink before new is up",
            desired: 4,
            unavailable: 1,
            new: rs("new", 1, 1, 0),
            old: vec![rs("old", 4, 4, 4)],
            want: vec![("old", 3)],
        },
        Case {
            name: "unhealthy old pods go first, oldest set first",
            desired: 3,
            unavailable: 0,
            new: rs("new", 1, 1, 1),
            old: vec![rs("older", 1, 1, 0), rs("old", 3, 3, 3)],
            want: vec![("older", 0), ("old", 2)],
        },
        Case {
            name: "huge counts and maxUnavailable do not overflow",
            desired: i32::MAX,
            unavailable: i32::MAX,
            new: rs("new", i32::MAX, i32::MAX, 0),
            old: vec![rs("a", i32::MAX, i32::MAX, i32::MAX), rs("b", i32::MAX, 0, 0)],
            want: vec![("a", 0), ("b", 0)],
        },
        Case {
            name: "nothing old left",
            desired: 3,
            unavailable: 1,
            new: rs("new", 3, 3, 3),
            old: vec![rs("old", 0, 0, 0)],
            want: vec![],
        },
    ];
    for case in cases {
        let got = scale_down_old(case.desired, case.unavailable, &case.new, &case.old);
        let want: Vec<(String, i32)> = case.want.iter().map(|(n, r)| (n.to_string(), *r)).collect();
        assert_eq!(got, want, "{}", case.name);
    }
}

#[test]
fn recreate_waits_for_old_pods_to_go() {
    assert_eq!(recreate(3, &[rs("old", 2, 2, 2)]), Err(vec![("old".to_string(), 0)]));
    assert_eq!(recreate(3, &[rs("old", 0, 1, 0)]), Err(vec![]));
    assert_eq!(recreate(3, &[rs("old", 0, 0, 0)]), Ok(3));
    assert_eq!(recreate(3, &[]), Ok(3));
}
