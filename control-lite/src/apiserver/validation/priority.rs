//! PriorityClass rules (upstream `ValidatePriorityClass`): the value range,
//! the reserved `system-` names, and `preemptionPolicy`.

use serde_json::Value;

use super::Causes;
use crate::apiserver::status::Cause;

/// The highest value a user-defined class may have (upstream `HighestUserDefinablePriority`).
pub const HIGHEST_USER_DEFINABLE: i64 = 1_000_000_000;

/// The built-in classes: (name, value, description).
pub const SYSTEM_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// The values `preemptionPolicy` may take.
pub const PREEMPTION_POLICIES: &[&str] = &["PreemptLowerPriority", "Never"];

/// Validates a PriorityClass object.
pub fn validate_priority_class(obj: &Value, out: &mut Causes) {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let value = obj.get("value").and_then(Value::as_i64).unwrap_or(0);
    if name.starts_with("system-") {
        if !SYSTEM_CLASSES.iter().any(|(n, v, _)| *n == name && *v == value) {
            out.push(Cause {
                reason: "FieldValueForbidden",
                field: "metadata.name".into(),
                message: "Forbidden: priority class names with 'system-' prefix are reserved".into(),
            });
        }
    } else if value > HIGHEST_USER_DEFINABLE {
        out.push(super::invalid_value(
            "value",
            value,
            &format!("maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE}"),
        ));
    }
    if let Some(policy) = obj.get("preemptionPolicy").and_then(Value::as_str) {
        if !PREEMPTION_POLICIES.contains(&policy) {
            out.push(Cause::not_supported("preemptionPolicy", policy, PREEMPTION_POLICIES));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn priority_class_rules() {
        let cases = [
            (json!({"metadata": {"name": "high"}, "value": 1000}), vec![]),
            (json!({"metadata": {"name": "high"}, "value": -5}), vec![]),
            (json!({"metadata": {"name": "huge"}, "value": 1_000_000_001}), vec!["value"]),
            (json!({"metadata": {"name": "system-mine"}, "value": 5}), vec!["metadata.name"]),
            (json!({"metadata": {"name": "system-node-critical"}, "value": 2_000_001_000}), vec![]),
            (json!({"metadata": {"name": "system-node-critical"}, "value": 7}), vec!["metadata.name"]),
            (json!({"metadata": {"name": "p"}, "value": 1, "preemptionPolicy": "Sometimes"}), vec!["preemptionPolicy"]),
            (json!({"metadata": {"name": "p"}, "value": 1, "preemptionPolicy": "Never"}), vec![]),
        ];
        for (obj, want) in cases {
            let mut out = Vec::new();
            validate_priority_class(&obj, &mut out);
            let fields: Vec<&str> = out.iter().map(|c| c.field.as_str()).collect();
            assert_eq!(fields, want, "{obj}");
        }
    }
}
