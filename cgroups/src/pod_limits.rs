//! The limits of a pod's cgroup from its spec, as upstream's
//! `ResourceConfigForPod`: cpu shares from the pod's cpu request; CFS quota
//! and the memory limit only when every container declares that limit (or
//! the pod-level `spec.resources` does); BestEffort gets the minimum shares.
//! A pod's request or limit is upstream's `PodRequests`/`PodLimits`: the
//! larger of the app containers plus sidecars and the largest init container
//! (plus the sidecars started before it), plus `spec.overhead`. Pure.

use std::collections::BTreeMap;

use bosun_resources::{milli_value, plain_value, QuantityError};
use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::limits::{quota_from_millis, shares_from_millis, Limits, CPU_PERIOD_US, MIN_SHARES};
use crate::name::QosClass;

/// Node settings that shape every pod's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodLimitOptions {
    /// The kubelet's `podPidsLimit`; zero or negative leaves pids unlimited.
    pub pod_pids_limit: i64,
    /// The CFS period (the kubelet's `cpuCFSQuotaPeriod`).
    pub cpu_period_us: u64,
}

impl Default for PodLimitOptions {
    fn default() -> Self {
        Self { pod_pids_limit: -1, cpu_period_us: CPU_PERIOD_US }
    }
}

/// One resource summed over a pod: the amount and whether every container declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PodAmount {
    amount: i64,
    all_declared: bool,
}

type Pick = fn(&ResourceRequirements) -> Option<&BTreeMap<String, Quantity>>;

/// What to sum: requests (an unset one defaults to the limit, as the
/// apiserver's defaulting) or limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Requests,
    Limits,
}

impl Kind {
    fn pick(self) -> Pick {
        match self {
            Self::Requests => requests,
            Self::Limits => limits,
        }
    }
}

fn requests(r: &ResourceRequirements) -> Option<&BTreeMap<String, Quantity>> {
    r.requests.as_ref()
}

fn limits(r: &ResourceRequirements) -> Option<&BTreeMap<String, Quantity>> {
    r.limits.as_ref()
}

fn parse(resource: &str, q: &Quantity) -> Result<i64, QuantityError> {
    if resource == "cpu" {
        milli_value(&q.0)
    } else {
        plain_value(&q.0)
    }
}

fn container_amount(c: &Container, resource: &str, kind: Kind) -> Result<Option<i64>, QuantityError> {
    let resources = c.resources.as_ref();
    let mut q = resources.and_then(kind.pick()).and_then(|m| m.get(resource));
    if q.is_none() && kind == Kind::Requests {
        q = resources.and_then(|r| r.limits.as_ref()).and_then(|m| m.get(resource));
    }
    q.map(|q| parse(resource, q)).transpose()
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Upstream's aggregation of `resource` over the pod's containers.
fn pod_amount(spec: &PodSpec, resource: &str, kind: Kind) -> Result<PodAmount, QuantityError> {
    let mut all_declared = true;
    let mut apps: i64 = 0;
    for c in &spec.containers {
        match container_amount(c, resource, kind)? {
            Some(v) => apps = apps.saturating_add(v),
            None => all_declared = false,
        }
    }
    let mut sidecars: i64 = 0;
    let mut init_peak: i64 = 0;
    for c in spec.init_containers.iter().flatten() {
        let amount = container_amount(c, resource, kind)?;
        if amount.is_none() {
            all_declared = false;
        }
        let amount = amount.unwrap_or(0);
        if is_sidecar(c) {
            sidecars = sidecars.saturating_add(amount);
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(sidecars.saturating_add(amount));
        }
    }
    let mut amount = apps.saturating_add(sidecars).max(init_peak);
    if let Some(overhead) = spec.overhead.as_ref().and_then(|o| o.get(resource)) {
        amount = amount.saturating_add(parse(resource, overhead)?);
    }
    Ok(PodAmount { amount, all_declared })
}

/// The pod-level `spec.resources` amount of `resource`, if the pod sets it.
fn pod_level(spec: &PodSpec, resource: &str, pick: Pick) -> Result<Option<i64>, QuantityError> {
    spec.resources.as_ref().and_then(pick).and_then(|m| m.get(resource)).map(|q| parse(resource, q)).transpose()
}

/// The limits of the cgroup of a pod with `spec` in class `qos`.
pub fn pod_limits(spec: &PodSpec, qos: QosClass, options: PodLimitOptions) -> Result<Limits, QuantityError> {
    let period = options.cpu_period_us;
    let cpu_request = match pod_level(spec, "cpu", requests)?.or(pod_level(spec, "cpu", limits)?) {
        Some(v) => v,
        None => pod_amount(spec, "cpu", Kind::Requests)?.amount,
    };
    let limit_of = |resource: &str| -> Result<Option<i64>, QuantityError> {
        if let Some(v) = pod_level(spec, resource, limits)? {
            return Ok(Some(v));
        }
        let summed = pod_amount(spec, resource, Kind::Limits)?;
        Ok(summed.all_declared.then_some(summed.amount))
    };
    let cpu_limit = limit_of("cpu")?;
    let memory_limit = limit_of("memory")?;
    let mut out =
        Limits { pids_max: (options.pod_pids_limit > 0).then_some(options.pod_pids_limit), ..Limits::default() };
    match qos {
        QosClass::BestEffort => out.cpu_shares = Some(MIN_SHARES),
        QosClass::Guaranteed | QosClass::Burstable => {
            out.cpu_shares = Some(shares_from_millis(cpu_request));
            if let Some(milli) = cpu_limit {
                out.cpu_quota_us = Some(quota_from_millis(milli, period));
                out.cpu_period_us = Some(period);
            }
            out.memory_bytes = memory_limit.map(|m| m.max(0));
        }
    }
    Ok(out)
}

/// The cpu shares of the Burstable QoS cgroup: the sum of its pods' cpu
/// requests (upstream's `setCPUCgroupConfig`), given each pod's request in millicores.
pub fn burstable_shares(pod_cpu_requests_milli: impl IntoIterator<Item = i64>) -> u64 {
    let total = pod_cpu_requests_milli.into_iter().fold(0i64, |sum, m| sum.saturating_add(m.max(0)));
    shares_from_millis(total)
}

/// A pod's cpu request in millicores, as its cgroup's shares count it.
pub fn pod_cpu_request_milli(spec: &PodSpec) -> Result<i64, QuantityError> {
    match pod_level(spec, "cpu", requests)?.or(pod_level(spec, "cpu", limits)?) {
        Some(v) => Ok(v),
        None => Ok(pod_amount(spec, "cpu", Kind::Requests)?.amount),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> PodSpec {
        serde_json::from_value(value).expect("pod spec")
    }

    fn one(resources: serde_json::Value) -> PodSpec {
        spec(json!({"containers": [{"name": "c", "resources": resources}]}))
    }

    const MI: i64 = 1024 * 1024;

    #[test]
    fn limits_per_qos_class_as_upstream() {
        let opts = PodLimitOptions::default();
        let cases = [
            ("best effort", one(json!({})), QosClass::BestEffort, Limits { cpu_shares: Some(2), ..Limits::default() }),
            (
                "guaranteed",
                one(json!({"limits": {"cpu": "500m", "memory": "64Mi"}})),
                QosClass::Guaranteed,
                Limits {
                    cpu_shares: Some(512),
                    cpu_quota_us: Some(50_000),
                    cpu_period_us: Some(100_000),
                    memory_bytes: Some(64 * MI),
                    pids_max: None,
                },
            ),
            (
                "burstable with requests only",
                one(json!({"requests": {"cpu": "100m", "memory": "32Mi"}})),
                QosClass::Burstable,
                Limits { cpu_shares: Some(102), ..Limits::default() },
            ),
            (
                "burstable, memory limit declared everywhere, cpu limit not",
                spec(json!({"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "10Mi"}}},
                    {"name": "b", "resources": {"limits": {"memory": "20Mi"}}}
                ]})),
                QosClass::Burstable,
                Limits { cpu_shares: Some(102), memory_bytes: Some(30 * MI), ..Limits::default() },
            ),
            (
                "burstable, one container without a cpu limit: no quota",
                spec(json!({"containers": [
                    {"name": "a", "resources": {"limits": {"cpu": "1"}}},
                    {"name": "b"}
                ]})),
                QosClass::Burstable,
                Limits { cpu_shares: Some(1024), ..Limits::default() },
            ),
        ];
        for (what, spec, qos, want) in cases {
            assert_eq!(pod_limits(&spec, qos, opts).expect(what), want, "{what}");
        }
    }

    #[test]
    fn init_containers_and_sidecars_count_as_upstream() {
        // Apps 200m + sidecar 100m = 300m; the init container runs before
        // the sidecar starts, so it peaks at 500m alone; plus 10m overhead.
        let s = spec(json!({
            "initContainers": [
                {"name": "init", "resources": {"limits": {"cpu": "500m", "memory": "50Mi"}}},
                {"name": "side", "restartPolicy": "Always", "resources": {"limits": {"cpu": "100m", "memory": "10Mi"}}}
            ],
            "containers": [{"name": "app", "resources": {"limits": {"cpu": "200m", "memory": "20Mi"}}}],
            "overhead": {"cpu": "10m", "memory": "1Mi"}
        }));
        let got = pod_limits(&s, QosClass::Guaranteed, PodLimitOptions::default()).expect("limits");
        assert_eq!(got.cpu_shares, Some(shares_from_millis(510)));
        assert_eq!(got.cpu_quota_us, Some(51_000));
        assert_eq!(got.memory_bytes, Some(51 * MI));
    }

    #[test]
    fn pod_level_resources_set_the_pod_cgroup() {
        let s = spec(json!({
            "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "1"}},
            "containers": [{"name": "a"}, {"name": "b", "resources": {"requests": {"cpu": "100m"}}}]
        }));
        let got = pod_limits(&s, QosClass::Burstable, PodLimitOptions::default()).expect("limits");
        assert_eq!(got.cpu_shares, Some(1024));
        assert_eq!(got.cpu_quota_us, Some(200_000));
        assert_eq!(got.memory_bytes, Some(1024 * MI));
    }

    #[test]
    fn pids_limit_and_period_come_from_the_node() {
        let opts = PodLimitOptions { pod_pids_limit: 1024, cpu_period_us: 50_000 };
        let got = pod_limits(&one(json!({"limits": {"cpu": "1", "memory": "1Mi"}})), QosClass::Guaranteed, opts)
            .expect("limits");
        assert_eq!((got.pids_max, got.cpu_quota_us, got.cpu_period_us), (Some(1024), Some(50_000), Some(50_000)));
        let unlimited = PodLimitOptions { pod_pids_limit: -1, ..opts };
        assert_eq!(pod_limits(&one(json!({})), QosClass::BestEffort, unlimited).expect("limits").pids_max, None);
    }

    #[test]
    fn huge_quantities_saturate_and_bad_ones_are_errors() {
        let huge = one(json!({"limits": {"cpu": "9000000000", "memory": "9223372036854775807"}}));
        let got = pod_limits(&huge, QosClass::Guaranteed, PodLimitOptions::default()).expect("limits");
        assert_eq!(got.cpu_shares, Some(crate::limits::MAX_SHARES));
        assert_eq!(got.cpu_quota_us, Some(crate::limits::MAX_QUOTA_US));
        let bad = one(json!({"limits": {"cpu": "lots"}}));
        assert!(pod_limits(&bad, QosClass::Burstable, PodLimitOptions::default()).is_err());
    }

    #[test]
    fn burstable_shares_sum_the_requests() {
        assert_eq!(burstable_shares([]), 2);
        assert_eq!(burstable_shares([100, 400, -3]), 512);
        let s = one(json!({"requests": {"cpu": "250m"}}));
        assert_eq!(pod_cpu_request_milli(&s).expect("request"), 250);
    }
}
