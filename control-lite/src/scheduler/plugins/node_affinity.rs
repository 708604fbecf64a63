//! NodeAffinity: `nodeSelector` and `affinity.nodeAffinity` (required
//! filter, preferred score), as upstream's `NodeAffinity` plugin.
//!
//! Owns: matching node selector terms (`matchExpressions` on labels,
//! `matchFields` on `metadata.name`) against a node. Pure.

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, Pod};

use super::{NodeInfo, Rejection};

/// Upstream's reason for a node that fails the pod's selector or required affinity.
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

/// True if `node` satisfies the pod's `nodeSelector` and required node
/// affinity (the terms are ORed, a term's requirements ANDed).
pub fn matches_required(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return true };
    let labels = node.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    let selector_ok = spec.node_selector.iter().flatten().all(|(k, v)| label(k) == Some(v.as_str()));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref());
    let affinity_ok = required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, node)));
    selector_ok && affinity_ok
}

/// The filter: fails (unresolvably) when the node does not match.
pub fn filter(pod: &Pod, info: &NodeInfo) -> Result<(), Rejection> {
    if matches_required(pod, info.node()) {
        Ok(())
    } else {
        Err(Rejection::unresolvable(REASON))
    }
}

/// Raw score: the sum of the weights of the preferred terms the node matches.
pub fn score(pod: &Pod, info: &NodeInfo) -> i64 {
    let preferred = pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default();
    preferred
        .iter()
        .filter(|p| p.weight > 0 && term_matches(&p.preference, info.node()))
        .map(|p| i64::from(p.weight))
        .sum()
}

/// A term with no requirements at all matches no node (as upstream).
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    let name = node.metadata.name.as_deref().unwrap_or_default();
    expressions.iter().all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name"
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && requirement_matches(r, Some(name))
        })
}

/// One requirement against the value of its key (`None`: the key is absent).
/// `Gt`/`Lt` compare integers; a value that is not one never matches.
fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (value.and_then(number), values.first().and_then(|b| number(b))) else {
                return false;
            };
            if r.operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::sync::Arc;

    fn node(name: &str, labels: Value) -> NodeInfo {
        let node = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("node");
        NodeInfo::new(Arc::new(node), vec![])
    }

    fn pod(spec: Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([]);
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
    }

    fn required(terms: Value) -> Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
    }

    #[test]
    fn required_affinity_operators() {
        let n = node("n1", json!({"zone": "a", "cores": "8"}));
        let expr = |key: &str, op: &str, values: Value| {
            required(json!([{"matchExpressions": [{"key": key, "operator": op, "values": values}]}]))
        };
        let cases: Vec<(&str, Value, bool)> = vec![
            ("no constraints", json!({}), true),
            ("nodeSelector matches", json!({"nodeSelector": {"zone": "a"}}), true),
            ("nodeSelector differs", json!({"nodeSelector": {"zone": "b"}}), false),
            ("In", expr("zone", "In", json!(["b", "a"])), true),
            ("In misses", expr("zone", "In", json!(["b"])), false),
            ("NotIn", expr("zone", "NotIn", json!(["b"])), true),
            ("NotIn on a missing key", expr("rack", "NotIn", json!(["b"])), true),
            ("Exists", expr("zone", "Exists", json!([])), true),
            ("DoesNotExist", expr("zone", "DoesNotExist", json!([])), false),
            ("Gt", expr("cores", "Gt", json!(["4"])), true),
            ("Lt", expr("cores", "Lt", json!(["4"])), false),
            ("Gt on a non-number", expr("zone", "Gt", json!(["4"])), false),
            ("unknown operator", expr("zone", "Like", json!(["a"])), false),
            ("empty term matches nothing", required(json!([{}])), false),
            (
                "terms are ORed",
                required(json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]},
                                               {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}])),
                true,
            ),
            (
                "requirements are ANDed",
                required(json!([{"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]}, {"key": "cores", "operator": "Lt", "values": ["2"]}]}])),
                false,
            ),
            (
                "matchFields on the name",
                required(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}])),
                true,
            ),
            (
                "matchFields on another name",
                required(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}])),
                false,
            ),
            (
                "matchFields on an unknown field",
                required(json!([{"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["n1"]}]}])),
                false,
            ),
        ];
        for (name, spec, want) in cases {
            assert_eq!(filter(&pod(spec), &n).is_ok(), want, "{name}");
        }
        let err = filter(&pod(json!({"nodeSelector": {"zone": "b"}})), &n).expect_err("mismatch");
        assert_eq!(err, Rejection::unresolvable(REASON));
    }

    #[test]
    fn preferred_affinity_sums_matching_weights() {
        let spec = json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            {"weight": 5, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}},
            {"weight": 7, "preference": {}}
        ]}}});
        let p = pod(spec);
        let cases = [
            (json!({"zone": "a", "disk": "ssd"}), 15),
            (json!({"zone": "a"}), 10),
            (json!({"disk": "hdd"}), 5),
            (json!({}), 0),
        ];
        for (labels, want) in cases {
            assert_eq!(score(&p, &node("n", labels.clone())), want, "{labels}");
        }
    }
}
