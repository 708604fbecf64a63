//! NodeResourcesFit (filter, least-allocated score) and
//! NodeResourcesBalancedAllocation (score).
//!
//! Owns: summing the requests of a node's pods and comparing them with its
//! allocatable. Usage of placed pods saturates (a node cannot be fuller than
//! full); the new pod's request is added with a check, so nothing overflows.

use k8s_openapi::api::core::v1::Pod;

use super::super::resources::{self, Allocatable, Resources};
use super::{NodeInfo, Rejection, MAX_SCORE};

/// What the live pods on one node request, summed as they are placed
/// (kept in [`NodeInfo`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    used: Resources,
    /// Usage counting "no request" as upstream's non-zero defaults (for scores).
    used_for_score: Resources,
    count: i64,
}

impl Used {
    /// Adds a live pod's requests.
    pub fn add(&mut self, pod: &Pod) {
        // A placed pod with unparsable requests counts as zero, as it already
        // passed validation once; it must not block the whole node.
        let r = resources::pod_requests(pod).unwrap_or_default();
        self.used = self.used.saturating_plus(r);
        self.used_for_score = self.used_for_score.saturating_plus(r.non_zero());
        self.count = self.count.saturating_add(1);
    }
}

/// The request of the pod being placed, parsed once per decision.
#[derive(Debug, Clone)]
pub struct Request(Result<Resources, String>);

impl Request {
    /// `pod`'s effective request (or why it cannot be read).
    pub fn of(pod: &Pod) -> Request {
        Request(resources::pod_requests(pod).map_err(|e| e.to_string()))
    }
}

/// What a node has and what its live pods already use.
struct Usage {
    alloc: Allocatable,
    request: Resources,
    used: Resources,
    /// Usage counting "no request" as upstream's non-zero defaults (for scores).
    used_for_score: Resources,
    count: i64,
}

fn usage(request: &Request, info: &NodeInfo) -> Result<Usage, Rejection> {
    let alloc =
        *info.allocatable().map_err(|e| Rejection::unresolvable(format!("node(s) had invalid resources: {e}")))?;
    let request =
        *request.0.as_ref().map_err(|e| Rejection::unresolvable(format!("pod has invalid resources: {e}")))?;
    let Used { used, used_for_score, count } = *info.used();
    Ok(Usage { alloc, request, used, used_for_score, count })
}

/// The filter: pod count, cpu and memory all fit (each failure is
/// resolvable by evicting pods).
pub fn filter(request: &Request, info: &NodeInfo) -> Result<(), Rejection> {
    let u = usage(request, info)?;
    let mut reasons = Vec::new();
    if u.count.saturating_add(1) > u.alloc.pods {
        reasons.push("Too many pods".to_string());
    }
    let exceeds = |used: i64, request: i64, total: i64| used.checked_add(request).is_none_or(|sum| sum > total);
    if u.request.milli_cpu > 0 && exceeds(u.used.milli_cpu, u.request.milli_cpu, u.alloc.resources.milli_cpu) {
        reasons.push("Insufficient cpu".to_string());
    }
    if u.request.memory > 0 && exceeds(u.used.memory, u.request.memory, u.alloc.resources.memory) {
        reasons.push("Insufficient memory".to_string());
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Rejection { reasons, resolvable: true })
    }
}

/// Least-allocated score (0..=100): the mean free share of cpu and memory
/// after placing the pod.
pub fn least_allocated(request: &Request, info: &NodeInfo) -> i64 {
    let Ok(u) = usage(request, info) else { return 0 };
    let after = u.used_for_score.saturating_plus(u.request.non_zero());
    (free_share(after.milli_cpu, u.alloc.resources.milli_cpu) + free_share(after.memory, u.alloc.resources.memory)) / 2
}

/// Balanced-allocation score (0..=100): high when cpu and memory would be
/// used in the same proportion (upstream: `(1 - std) * 100` over the two
/// fractions, whose standard deviation is half their difference).
pub fn balanced(request: &Request, info: &NodeInfo) -> i64 {
    let Ok(u) = usage(request, info) else { return 0 };
    let after = u.used_for_score.saturating_plus(u.request);
    let used_cpu = MAX_SCORE - free_share(after.milli_cpu, u.alloc.resources.milli_cpu);
    let used_memory = MAX_SCORE - free_share(after.memory, u.alloc.resources.memory);
    MAX_SCORE - (used_cpu - used_memory).abs() / 2
}

/// Percent of `total` left free after `used` (0..=100), in i128 so huge
/// allocatable values cannot overflow the multiplication.
fn free_share(used: i64, total: i64) -> i64 {
    if total <= 0 || used > total {
        return 0;
    }
    let share = (i128::from(total) - i128::from(used)) * 100 / i128::from(total);
    i64::try_from(share).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn pod(cpu: &str, memory: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
            "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}))
        .expect("pod")
    }

    fn req(cpu: &str, memory: &str) -> Request {
        Request::of(&pod(cpu, memory))
    }

    fn node(pods: Vec<Pod>) -> NodeInfo {
        let node = serde_json::from_value(
            json!({"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "10"}}}),
        )
        .expect("node");
        NodeInfo::new(Arc::new(node), pods.into_iter().map(Arc::new).collect())
    }

    #[test]
    fn scores_prefer_free_and_balanced_nodes() {
        let empty = node(vec![]);
        // 2 of 4 cpus, 1 of 4 GiB: 50% and 75% free.
        assert_eq!(least_allocated(&req("2", "1Gi"), &empty), 62);
        // Used 50% cpu, 25% memory: difference 25, std 12.
        assert_eq!(balanced(&req("2", "1Gi"), &empty), 88);
        assert_eq!(balanced(&req("2", "2Gi"), &empty), 100);
        let full = node(vec![pod("3", "3Gi")]);
        assert!(least_allocated(&req("500m", "512Mi"), &full) < least_allocated(&req("500m", "512Mi"), &empty));
        let err = filter(&req("2", "2Gi"), &full).expect_err("does not fit");
        assert_eq!(err.reasons, ["Insufficient cpu", "Insufficient memory"]);
        assert!(err.resolvable);
    }

    #[test]
    fn pods_added_one_by_one_count_like_pods_given_at_once_and_terminal_ones_not() {
        let mut done = pod("3", "3Gi");
        done.status =
            Some(k8s_openapi::api::core::v1::PodStatus { phase: Some("Succeeded".to_string()), ..Default::default() });
        let mut grown = node(vec![]);
        for p in [pod("1", "1Gi"), done.clone(), pod("1", "1Gi")] {
            grown.add_pod(Arc::new(p));
        }
        let at_once = node(vec![pod("1", "1Gi"), done, pod("1", "1Gi")]);
        assert_eq!(grown.used(), at_once.used());
        assert_eq!(grown.pods().len(), 3);
        // 2 of 4 cpus used by the live pods: 2 more fit, 3 do not.
        assert!(filter(&req("2", "1Gi"), &grown).is_ok());
        assert!(filter(&req("3", "1Gi"), &grown).is_err());
    }
}
