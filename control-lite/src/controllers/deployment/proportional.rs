//! Scaling a Deployment that is paused or mid-rollout (upstream `scale`):
//! one active ReplicaSet takes the whole size; otherwise the replica
//! difference is spread over the active sets in proportion to their share
//! of the Deployment's previous size (the `max-replicas` annotation each
//! set carries). Pure. Counts are i32 in the API; the arithmetic is done
//! in i64/i128 and narrowed with `rollout::clamp`, so no user-supplied
//! number can overflow it.

use super::rollout;

/// One ReplicaSet as proportional scaling sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleSet {
    /// Name (for reporting the result).
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// Its `deployment.kubernetes.io/max-replicas` annotation (the
    /// Deployment's desired + maxSurge when the set was last scaled).
    pub max_replicas: Option<i32>,
}

/// The Deployment side of a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// `spec.replicas`.
    pub desired: i32,
    /// Resolved maxSurge (0 for Recreate).
    pub surge: i32,
    /// `status.replicas`: the previous size when a set lacks the annotation.
    pub previous: i32,
    /// The new ReplicaSet (the last in `sets`) already runs `desired`
    /// available replicas and was scaled for this size.
    pub new_saturated: bool,
}

/// New sizes for `sets` (oldest first, the new ReplicaSet, if any, last):
/// the sets to write (size and scale annotations), oldest first. Every
/// active set (replicas > 0) is listed when several are active, so their
/// annotations follow the new size even where the count stays.
pub fn proportional_scale(target: Target, sets: &[ScaleSet]) -> Vec<(String, i32)> {
    let active: Vec<usize> = (0..sets.len()).filter(|&i| sets[i].replicas > 0).collect();
    match active.as_slice() {
        // None active: the newest set takes the whole size.
        [] => return sets.last().map(|s| vec![(s.name.clone(), target.desired)]).unwrap_or_default(),
        [only] => return vec![(sets[*only].name.clone(), target.desired)],
        _ => {}
    }
    if target.new_saturated {
        let new = sets.len() - 1;
        return active.iter().filter(|&&i| i != new).map(|&i| (sets[i].name.clone(), 0)).collect();
    }
    let max_total = i64::from(target.desired.max(0)) + i64::from(target.surge.max(0));
    let allowed = if target.desired > 0 { max_total } else { 0 };
    let current = rollout::sum(active.iter().map(|&i| sets[i].replicas));
    let delta = allowed - current;
    // Largest first; ties go newest first when growing, oldest first when
    // shrinking.
    let mut order = active.clone();
    order.sort_by(|&a, &b| {
        let by_size = sets[b].replicas.cmp(&sets[a].replicas);
        by_size.then(if delta > 0 { b.cmp(&a) } else { a.cmp(&b) })
    });
    let mut sizes: Vec<(usize, i64)> = Vec::with_capacity(order.len());
    let mut added = 0i64;
    for &i in &order {
        let share = if delta == 0 { 0 } else { proportion(&sets[i], target, max_total, delta, added) };
        added += share;
        sizes.push((i, i64::from(sets[i].replicas) + share));
    }
    // Rounding leftovers go to the largest set.
    if let Some((_, size)) = sizes.first_mut() {
        *size = (*size + delta - added).max(0);
    }
    sizes.sort_by_key(|(i, _)| *i);
    sizes.into_iter().map(|(i, size)| (sets[i].name.clone(), rollout::clamp(size))).collect()
}

/// Upstream `GetProportion`: this set's share of `delta`, bounded by what
/// is left of it after `added`.
fn proportion(set: &ScaleSet, target: Target, max_total: i64, delta: i64, added: i64) -> i64 {
    if set.replicas <= 0 || delta == added {
        return 0;
    }
    let replicas = i64::from(set.replicas);
    let fraction = if target.desired <= 0 {
        -replicas
    } else {
        let before = set.max_replicas.filter(|m| *m > 0).unwrap_or(target.previous);
        if before <= 0 {
            0
        } else {
            rounded_ratio(replicas, max_total, i64::from(before)) - replicas
        }
    };
    let left = delta - added;
    if delta > 0 {
        fraction.min(left)
    } else {
        fraction.max(left)
    }
}

/// `a * b / c` rounded half away from zero, for non-negative `a`, `b` and
/// positive `c` (i128, so the product cannot overflow).
fn rounded_ratio(a: i64, b: i64, c: i64) -> i64 {
    let (a, b, c) = (i128::from(a.max(0)), i128::from(b.max(0)), i128::from(c.max(1)));
    let value = (2 * a * b + c) / (2 * c);
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "proportional_tests.rs"]
mod tests;
