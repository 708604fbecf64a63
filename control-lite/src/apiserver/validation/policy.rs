//! PodDisruptionBudgets (upstream `ValidatePodDisruptionBudget`): exactly
//! one of `minAvailable` and `maxUnavailable`, each a non-negative int or a
//! percentage of at most 100%, a well-formed selector, a known unhealthy
//! pod eviction policy, and non-negative status counts.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::Value;

use super::workloads::{int_or_percent, validate_label_selector};
use super::{at_least, one_of, Causes};
use crate::apiserver::schema::typed;
use crate::apiserver::status::Cause;

/// The values of `spec.unhealthyPodEvictionPolicy`.
pub const EVICTION_POLICIES: [&str; 2] = ["IfHealthyBudget", "AlwaysAllow"];

/// A PodDisruptionBudget object.
pub fn validate_pdb(obj: &Value, out: &mut Causes) {
    let Some(pdb) = typed::<PodDisruptionBudget>(obj) else { return };
    let spec = pdb.spec.unwrap_or_default();
    match (&spec.min_available, &spec.max_unavailable) {
        (Some(_), Some(_)) => out.push(Cause {
            reason: "FieldValueInvalid",
            field: "spec".into(),
            message: "Invalid value: \"object\": minAvailable and maxUnavailable cannot be both set".into(),
        }),
        (None, None) => out.push(Cause {
            reason: "FieldValueRequired",
            field: "spec.minAvailable".into(),
            message: "Required value: one of minAvailable or maxUnavailable must be set".into(),
        }),
        _ => {}
    }
    if let Some(v) = &spec.min_available {
        int_or_percent(v, "spec.minAvailable", true, out);
    }
    if let Some(v) = &spec.max_unavailable {
        int_or_percent(v, "spec.maxUnavailable", true, out);
    }
    if let Some(selector) = &spec.selector {
        validate_label_selector(selector, "spec.selector", out);
    }
    if let Some(policy) = spec.unhealthy_pod_eviction_policy.as_deref() {
        one_of("spec.unhealthyPodEvictionPolicy", Some(policy), &EVICTION_POLICIES, out);
    }
    if let Some(status) = &pdb.status {
        at_least("status.disruptionsAllowed", status.disruptions_allowed.into(), 0, out);
        at_least("status.currentHealthy", status.current_healthy.into(), 0, out);
        at_least("status.desiredHealthy", status.desired_healthy.into(), 0, out);
        at_least("status.expectedPods", status.expected_pods.into(), 0, out);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::apiserver::registry::{by_kind, Kind};
    use crate::apiserver::validation::validate;

    fn fields(spec: Value, status: Value) -> Vec<String> {
        let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"}, "spec": spec, "status": status});
        validate(by_kind(Kind::PodDisruptionBudget), &pdb).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn pdb_validation_cases() {
        let web = json!({"matchLabels": {"app": "web"}});
        let cases: Vec<(Value, Value, Vec<&str>)> = vec![
            (json!({"minAvailable": 2, "selector": web}), json!({}), vec![]),
            (json!({"maxUnavailable": "50%", "selector": web}), json!({}), vec![]),
            (json!({"minAvailable": 0, "selector": {}}), json!({}), vec![]),
            (json!({"minAvailable": 1, "maxUnavailable": 1, "selector": web}), json!({}), vec!["spec"]),
            (json!({"selector": web}), json!({}), vec!["spec.minAvailable"]),
            (json!({"minAvailable": -1, "selector": web}), json!({}), vec!["spec.minAvailable"]),
            (json!({"minAvailable": "101%", "selector": web}), json!({}), vec!["spec.minAvailable"]),
            (json!({"maxUnavailable": "x%", "selector": web}), json!({}), vec!["spec.maxUnavailable"]),
            (
                json!({"minAvailable": 1, "selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}),
                json!({}),
                vec!["spec.selector.matchExpressions[0].values"],
            ),
            (
                json!({"minAvailable": 1, "selector": {"matchLabels": {"a": "b c"}}}),
                json!({}),
                vec!["spec.selector.matchLabels[a]"],
            ),
            (
                json!({"minAvailable": 1, "selector": web, "unhealthyPodEvictionPolicy": "Never"}),
                json!({}),
                vec!["spec.unhealthyPodEvictionPolicy"],
            ),
            (
                json!({"minAvailable": 1, "selector": web}),
                json!({"disruptionsAllowed": -1, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}),
                vec!["status.disruptionsAllowed"],
            ),
        ];
        for (spec, status, want) in cases {
            assert_eq!(fields(spec.clone(), status), want, "{spec}");
        }
    }
}
