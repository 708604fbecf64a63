//! Rollout arithmetic: maxSurge/maxUnavailable resolution and how far to
//! scale the new and old ReplicaSets in one step (upstream
//! `NewRSNewReplicas`, `reconcileOldReplicaSets`, Recreate). Pure. Counts
//! are i32 in the API; sums and differences are taken in i64 and narrowed
//! with `clamp`, so no user-supplied number can overflow them.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// One ReplicaSet as the rollout math sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsCounts {
    /// Name (for reporting the result).
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.replicas` (pods that exist).
    pub actual: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// Longest percent string accepted ("2147483647%" fits); longer ones are malformed.
const MAX_PERCENT_LEN: usize = 12;

/// Narrows rollout arithmetic (done in i64, where sums of i32 counts
/// cannot overflow) back to a replica count.
pub fn clamp(value: i64) -> i32 {
    i32::try_from(value.max(0)).unwrap_or(i32::MAX)
}

/// Sum of `values` without overflow.
pub fn sum(values: impl IntoIterator<Item = i32>) -> i64 {
    values.into_iter().fold(0i64, |total, v| total.saturating_add(i64::from(v)))
}

/// Resolves an int-or-percent against `total`; percentages round up when
/// `round_up`, else down. Malformed values count as zero.
pub fn resolve(value: Option<&IntOrString>, default_percent: i32, total: i32, round_up: bool) -> i32 {
    let percent = match value {
        None => i64::from(default_percent),
        Some(IntOrString::Int(n)) => return (*n).max(0),
        Some(IntOrString::String(s)) if s.len() > MAX_PERCENT_LEN => return 0,
        Some(IntOrString::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) => p.max(0),
            None => return 0,
        },
    };
    let scaled = percent.saturating_mul(i64::from(total.max(0)));
    let value = if round_up { scaled.saturating_add(99) / 100 } else { scaled / 100 };
    clamp(value)
}

/// Upstream `ResolveFenceposts`: (maxSurge rounded up, maxUnavailable
/// rounded down); if both are zero, maxUnavailable becomes 1.
pub fn fenceposts(max_surge: Option<&IntOrString>, max_unavailable: Option<&IntOrString>, replicas: i32) -> (i32, i32) {
    let surge = resolve(max_surge, 25, replicas, true);
    let unavailable = resolve(max_unavailable, 25, replicas, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Target `spec.replicas` of the new ReplicaSet in a rolling update.
/// `total` is the sum of `spec.replicas` over all ReplicaSets.
pub fn new_rs_replicas(desired: i32, surge: i32, total: i64, new_current: i32) -> i32 {
    if new_current >= desired {
        return desired;
    }
    let max_total = i64::from(desired) + i64::from(surge);
    if total >= max_total {
        return new_current;
    }
    let grow = (max_total - total).min(i64::from(desired) - i64::from(new_current));
    clamp(i64::from(new_current) + grow)
}

/// New `spec.replicas` for old ReplicaSets in a rolling update (oldest
/// first in `old`); returns only those that change.
pub fn scale_down_old(desired: i32, unavailable: i32, new: &RsCounts, old: &[RsCounts]) -> Vec<(String, i32)> {
    let old_total = sum(old.iter().map(|r| r.replicas));
    if old_total == 0 {
        return Vec::new();
    }
    let all_total = old_total + i64::from(new.replicas);
    let min_available = i64::from(desired) - i64::from(unavailable);
    let new_unavailable = (i64::from(new.replicas) - i64::from(new.available)).max(0);
    let mut budget = all_total - min_available - new_unavailable;
    if budget <= 0 {
        return Vec::new();
    }
    let mut target: Vec<i64> = old.iter().map(|r| i64::from(r.replicas)).collect();
    // First drop pods that are not available anyway.
    for (rs, replicas) in old.iter().zip(target.iter_mut()) {
        if budget <= 0 {
            break;
        }
        let unhealthy = (*replicas - i64::from(rs.available)).max(0);
        let cut = unhealthy.min(budget);
        *replicas -= cut;
        budget -= cut;
    }
    // Then scale down the rest while keeping minAvailable available.
    let available = sum(old.iter().map(|r| r.available)) + i64::from(new.available);
    let mut allowed = (available - min_available).max(0);
    for replicas in &mut target {
        if allowed <= 0 {
            break;
        }
        let cut = (*replicas).min(allowed);
        *replicas -= cut;
        allowed -= cut;
    }
    old.iter()
        .zip(target)
        .map(|(rs, t)| (rs, clamp(t)))
        .filter(|(rs, t)| rs.replicas != *t)
        .map(|(rs, t)| (rs.name.clone(), t))
        .collect()
}

/// Recreate strategy step: `Err(old scale-downs)` while old ReplicaSets
/// still want or have pods, else `Ok(new replicas)`.
pub fn recreate(desired: i32, old: &[RsCounts]) -> Result<i32, Vec<(String, i32)>> {
    let scale_downs: Vec<(String, i32)> = old.iter().filter(|r| r.replicas > 0).map(|r| (r.name.clone(), 0)).collect();
    if !scale_downs.is_empty() || old.iter().any(|r| r.actual > 0) {
        return Err(scale_downs);
    }
    Ok(desired)
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
