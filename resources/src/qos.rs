//! The QoS class of a pod, as upstream `ComputePodQOS`: only cpu and memory
//! count, zero quantities count as unset, init containers count, requests and
//! limits are summed over containers and compared by value ("1" equals
//! "1000m", "1Gi" equals "1024Mi"). A missing request defaults to its limit,
//! as the apiserver's defaulting does before upstream computes the class.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::quantity::{milli_value, plain_value};

/// `"BestEffort"`, `"Burstable"` or `"Guaranteed"`.
pub fn pod_qos_class(spec: Option<&PodSpec>) -> &'static str {
    let containers: Vec<&Container> =
        spec.map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()).collect()).unwrap_or_default();
    // Sums in i128: a pod's container count is bounded by the request size,
    // so sums of i64 values cannot overflow, and comparisons stay exact.
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    for container in containers {
        let resources = container.resources.as_ref();
        let limit_of = |name: &str| resources.and_then(|r| r.limits.as_ref()).and_then(|l| l.get(name));
        let request_of = |name: &str| resources.and_then(|r| r.requests.as_ref()).and_then(|l| l.get(name));
        let mut limits_found = 0;
        for name in ["cpu", "memory"] {
            let amount = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
                let parsed = if name == "cpu" { milli_value(&q.0) } else { plain_value(&q.0) };
                parsed.unwrap_or(0)
            };
            let limit = limit_of(name).map(amount).filter(|v| *v > 0);
            let request = request_of(name).or(limit_of(name)).map(amount).filter(|v| *v > 0);
            if let Some(limit) = limit {
                limits_found += 1;
                *limits.entry(name).or_default() += i128::from(limit);
            }
            if let Some(request) = request {
                *requests.entry(name).or_default() += i128::from(request);
            }
        }
        if limits_found < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        "BestEffort"
    } else if guaranteed && requests == limits {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(containers: serde_json::Value, init: serde_json::Value) -> PodSpec {
        serde_json::from_value(serde_json::json!({"containers": containers, "initContainers": init})).unwrap()
    }

    fn one(resources: serde_json::Value) -> PodSpec {
        spec(serde_json::json!([{"name": "c", "resources": resources}]), serde_json::json!([]))
    }

    #[test]
    fn huge_requests_in_many_containers_do_not_overflow() {
        let huge = serde_json::json!({"limits": {"cpu": "9223372036854775807m", "memory": "9223372036854775807"}});
        let containers = serde_json::json!([
            {"name": "a", "resources": huge},
            {"name": "b", "resources": huge},
            {"name": "c", "resources": {"requests": {"cpu": "9223372036854775807m"}}},
        ]);
        assert_eq!(pod_qos_class(Some(&spec(containers, serde_json::json!([])))), "Burstable");
        let both = serde_json::json!([{"name": "a", "resources": huge}, {"name": "b", "resources": huge}]);
        assert_eq!(pod_qos_class(Some(&spec(both, serde_json::json!([])))), "Guaranteed");
    }

    #[test]
    fn qos_class_follows_upstream_rules() {
        let cases = [
            (serde_json::json!({}), "BestEffort"),
            (serde_json::json!({"requests": {"cpu": "0", "memory": "0"}}), "BestEffort"),
            (serde_json::json!({"requests": {"ephemeral-storage": "1Gi"}}), "BestEffort"),
            (serde_json::json!({"requests": {"cpu": "100m"}}), "Burstable"),
            (serde_json::json!({"limits": {"cpu": "1"}}), "Burstable"),
            (serde_json::json!({"limits": {"cpu": "1", "memory": "64Mi"}}), "Guaranteed"),
            (
                serde_json::json!({"requests": {"cpu": "1000m", "memory": "1024Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}),
                "Guaranteed",
            ),
            (serde_json::json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "64Mi"}}), "Burstable"),
        ];
        for (resources, want) in cases {
            assert_eq!(pod_qos_class(Some(&one(resources.clone()))), want, "{resources}");
        }
        assert_eq!(pod_qos_class(None), "BestEffort");
    }

    #[test]
    fn init_containers_count() {
        let guaranteed = serde_json::json!([{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]);
        let init_burstable = serde_json::json!([{"name": "i", "resources": {"requests": {"cpu": "1"}}}]);
        assert_eq!(pod_qos_class(Some(&spec(guaranteed.clone(), serde_json::json!([])))), "Guaranteed");
        assert_eq!(pod_qos_class(Some(&spec(guaranteed, init_burstable))), "Burstable");
    }
}
