//! The taint eviction decision for one pod on one node, as upstream's
//! taint manager makes it: only `NoExecute` taints count; a pod that does
//! not tolerate one of them goes at once; a pod that tolerates them all
//! goes when the shortest `tolerationSeconds` of the tolerations it uses
//! runs out (counted from the taint's `timeAdded`, so a restarted
//! controller keeps the same deadline); tolerations without seconds keep
//! it forever. Pure: the clock is an argument.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::scheduler::plugins::taints::tolerated;

/// What to do with one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No `NoExecute` taint, or every one tolerated forever.
    Keep,
    /// An untolerated `NoExecute` taint, or a toleration that ran out.
    EvictNow,
    /// Tolerated until then.
    EvictAt(Timestamp),
}

/// The taint effect this decision is about.
pub const NO_EXECUTE: &str = "NoExecute";

/// The shortest `tolerationSeconds` of the tolerations matching `taint`
/// (`None`: one of them tolerates it forever; negative counts as zero).
fn tolerated_for(taint: &Taint, tolerations: &[Toleration]) -> Option<i64> {
    let matching = tolerations.iter().filter(|t| tolerated(taint, std::slice::from_ref(*t)));
    let mut shortest: Option<i64> = None;
    for toleration in matching {
        // One toleration without a limit is enough to stay forever
        // (upstream takes the minimum, with "forever" as the largest).
        let seconds = toleration.toleration_seconds?.max(0);
        shortest = Some(shortest.map_or(seconds, |s| s.min(seconds)));
    }
    shortest
}

/// The verdict for a pod with `tolerations` on a node with `taints` at `now`.
pub fn verdict(taints: &[Taint], tolerations: &[Toleration], now: Timestamp) -> Verdict {
    let mut deadline: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == NO_EXECUTE) {
        if !tolerated(taint, tolerations) {
            return Verdict::EvictNow;
        }
        let Some(seconds) = tolerated_for(taint, tolerations) else { continue };
        let added = taint.time_added.as_ref().map_or(now, |t| t.0);
        // A deadline beyond what a timestamp holds is no deadline.
        let Some(until) = added.checked_add(SignedDuration::from_secs(seconds)).ok() else { continue };
        deadline = Some(deadline.map_or(until, |d| d.min(until)));
    }
    match deadline {
        None => Verdict::Keep,
        Some(at) if at <= now => Verdict::EvictNow,
        Some(at) => Verdict::EvictAt(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::{json, Value};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("time")
    }

    fn taint(key: &str, effect: &str, added: Option<i64>) -> Taint {
        Taint { key: key.into(), effect: effect.into(), value: None, time_added: added.map(|s| Time(at(s))) }
    }

    fn tolerations(value: Value) -> Vec<Toleration> {
        serde_json::from_value(value).expect("tolerations")
    }

    #[test]
    fn decides_as_upstreams_taint_manager() {
        let unreachable = taint("node.kubernetes.io/unreachable", NO_EXECUTE, Some(0));
        let not_ready = taint("node.kubernetes.io/not-ready", NO_EXECUTE, Some(10));
        let soft = taint("dedicated", "NoSchedule", Some(0));
        let unreachable_for = |s: i64| json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": s});
        let cases: Vec<(&str, Vec<Taint>, Value, i64, Verdict)> = vec![
            ("no taints", vec![], json!([]), 5, Verdict::Keep),
            ("NoSchedule only", vec![soft.clone()], json!([]), 5, Verdict::Keep),
            ("untolerated NoExecute", vec![unreachable.clone()], json!([]), 5, Verdict::EvictNow),
            (
                "tolerated for 300 s",
                vec![unreachable.clone()],
                json!([unreachable_for(300)]),
                5,
                Verdict::EvictAt(at(300)),
            ),
            ("ran out", vec![unreachable.clone()], json!([unreachable_for(300)]), 300, Verdict::EvictNow),
            (
                "negative seconds mean now",
                vec![unreachable.clone()],
                json!([unreachable_for(-5)]),
                1,
                Verdict::EvictNow,
            ),
            (
                "forever",
                vec![unreachable.clone()],
                json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]),
                1_000_000,
                Verdict::Keep,
            ),
            (
                "one forever toleration wins over a limited one",
                vec![unreachable.clone()],
                json!([unreachable_for(3), {"operator": "Exists"}]),
                10,
                Verdict::Keep,
            ),
            (
                "one of two taints untolerated",
                vec![unreachable.clone(), not_ready.clone()],
                json!([unreachable_for(300)]),
                5,
                Verdict::EvictNow,
            ),
            (
                "the earliest of two deadlines",
                vec![unreachable.clone(), not_ready.clone()],
                json!([unreachable_for(300), {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 20}]),
                5,
                Verdict::EvictAt(at(30)),
            ),
            (
                "no timeAdded counts from now",
                vec![taint("node.kubernetes.io/unreachable", NO_EXECUTE, None)],
                json!([unreachable_for(7)]),
                5,
                Verdict::EvictAt(at(12)),
            ),
            (
                "a huge tolerationSeconds is forever, not an overflow",
                vec![unreachable.clone()],
                json!([unreachable_for(i64::MAX)]),
                5,
                Verdict::Keep,
            ),
        ];
        for (name, taints, tols, now, want) in cases {
            assert_eq!(verdict(&taints, &tolerations(tols), at(now)), want, "{name}");
        }
    }
}
