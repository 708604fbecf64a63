//! Label selectors of `aggregationRule.clusterRoleSelectors`.

use serde_json::Value;

/// Whether `labels` (a JSON object or null) match `selector` (`matchLabels`
/// and `matchExpressions` with In, NotIn, Exists, DoesNotExist). An empty
/// selector matches nothing, as upstream's aggregation does.
pub fn matches(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let exprs = selector.get("matchExpressions").and_then(Value::as_array);
    if match_labels.is_none_or(|m| m.is_empty()) && exprs.is_none_or(|e| e.is_empty()) {
        return false;
    }
    let labels_ok = match_labels.into_iter().flatten().all(|(k, v)| label(k) == v.as_str());
    let exprs_ok = exprs.into_iter().flatten().all(|e| {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> =
            e.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        match (e.get("operator").and_then(Value::as_str), label(key)) {
            (Some("In"), Some(v)) => values.contains(&v),
            (Some("NotIn"), v) => v.is_none_or(|v| !values.contains(&v)),
            (Some("Exists"), v) => v.is_some(),
            (Some("DoesNotExist"), v) => v.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}
