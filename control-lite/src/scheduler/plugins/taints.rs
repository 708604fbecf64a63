//! NodeUnschedulable and TaintToleration (plus the readiness check the
//! node lifecycle's `not-ready` taint stands for upstream).
//!
//! Owns: `tolerated` (upstream `Toleration.ToleratesTaint`), the filter over
//! `NoSchedule`/`NoExecute` taints and cordoned nodes, and the score that
//! counts untolerated `PreferNoSchedule` taints. Pure.

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};

use super::{NodeInfo, Rejection};

/// Taint the scheduler treats like `spec.unschedulable`.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default()
}

fn node_taints(node: &Node) -> &[Taint] {
    node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default()
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// The filter: node ready, not cordoned (unless tolerated), and every
/// `NoSchedule`/`NoExecute` taint tolerated.
pub fn filter(pod: &Pod, info: &NodeInfo) -> Result<(), Rejection> {
    let node = info.node();
    if !is_ready(node) {
        return Err(Rejection::unresolvable("node(s) were not ready"));
    }
    let tolerations = tolerations(pod);
    if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        let taint =
            Taint { key: UNSCHEDULABLE_TAINT.to_string(), effect: "NoSchedule".to_string(), ..Taint::default() };
        if !tolerated(&taint, tolerations) {
            return Err(Rejection::unresolvable("node(s) were unschedulable"));
        }
    }
    match untolerated_blocking(node, tolerations) {
        Some(taint) => Err(Rejection::unresolvable(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or_default()
        ))),
        None => Ok(()),
    }
}

/// The first `NoSchedule`/`NoExecute` taint of `node` that `tolerations` do not tolerate.
pub fn untolerated_blocking<'a>(node: &'a Node, tolerations: &[Toleration]) -> Option<&'a Taint> {
    node_taints(node)
        .iter()
        .find(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute") && !tolerated(t, tolerations))
}

/// Raw score: the number of `PreferNoSchedule` taints the pod does not
/// tolerate (fewer is better; normalised in reverse).
pub fn score(pod: &Pod, info: &NodeInfo) -> i64 {
    let tolerations: Vec<Toleration> = tolerations(pod)
        .iter()
        .filter(|t| t.effect.as_deref().is_none_or(|e| e.is_empty() || e == "PreferNoSchedule"))
        .cloned()
        .collect();
    let count = node_taints(info.node())
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(t, &tolerations))
        .count();
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Upstream `Toleration.ToleratesTaint`.
pub fn tolerated(taint: &Taint, tolerations: &[Toleration]) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t.effect.as_deref().is_none_or(|e| e.is_empty() || e == taint.effect);
        let key = t.key.as_deref().unwrap_or_default();
        let operator = t.operator.as_deref().unwrap_or("Equal");
        let key_ok = if key.is_empty() { operator == "Exists" } else { key == taint.key };
        let value_ok = match operator {
            "Exists" => true,
            "Equal" | "" => t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default(),
            _ => false,
        };
        effect_ok && key_ok && value_ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::sync::Arc;

    fn node(taints: Value) -> NodeInfo {
        let node = serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
        .expect("node");
        NodeInfo::new(Arc::new(node), vec![])
    }

    fn pod(tolerations: Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": tolerations}}),
        )
        .expect("pod")
    }

    #[test]
    fn prefer_no_schedule_taints_lower_the_score() {
        let n = node(json!([
            {"key": "a", "effect": "PreferNoSchedule"},
            {"key": "b", "value": "x", "effect": "PreferNoSchedule"},
            {"key": "c", "effect": "NoSchedule"}
        ]));
        let cases = [
            (json!([]), 2),
            (json!([{"key": "a", "operator": "Exists"}]), 1),
            (json!([{"key": "b", "value": "x", "effect": "PreferNoSchedule"}]), 1),
            (json!([{"key": "b", "value": "x", "effect": "NoSchedule"}]), 2),
            (json!([{"operator": "Exists"}]), 0),
        ];
        for (tolerations, want) in cases {
            assert_eq!(score(&pod(tolerations.clone()), &n), want, "{tolerations}");
        }
        assert!(filter(&pod(json!([])), &n).is_err(), "NoSchedule c is not tolerated");
        assert!(filter(&pod(json!([{"key": "c", "operator": "Exists"}])), &n).is_ok());
    }
}
