//! Pod readiness gates (`spec.readinessGates`) and the conditions others
//! own. A pod is Ready only when its containers are ready and every gate's
//! condition (written by a controller, e.g. `kubectl patch
//! --subresource=status`) is `True`, as upstream's
//! `generatePodReadyCondition`. The agent writes only the conditions the
//! kubelet owns and carries every other one over unchanged, after its own
//! (the order the API keeps after a strategic merge appends new types).
//!
//! Must not: talk to the API; compute container readiness (`status` does).

use k8s_openapi::api::core::v1::{Pod, PodCondition};

/// Reason of `Ready=False` when the containers are ready but a gate is not.
pub const GATES_NOT_READY: &str = "ReadinessGatesNotReady";

/// Condition types the kubelet writes (upstream `PodConditionByKubelet`)
/// or shares (`DisruptionTarget`); every other type belongs to someone
/// else and is carried over.
const KUBELET_CONDITIONS: [&str; 6] =
    ["PodScheduled", "Ready", "Initialized", "ContainersReady", "PodReadyToStartContainers", "DisruptionTarget"];

/// Whether the kubelet owns condition type `type_`.
pub fn is_kubelet_condition(type_: &str) -> bool {
    KUBELET_CONDITIONS.contains(&type_)
}

/// The conditions of `previous` that others own, in their order.
pub fn foreign_conditions(previous: &[PodCondition]) -> impl Iterator<Item = &PodCondition> {
    previous.iter().filter(|c| !is_kubelet_condition(&c.type_))
}

/// Why the gates keep the pod unready (upstream's message), or `None` when
/// every gate's condition in `conditions` is `True`.
pub fn unmet(pod: &Pod, conditions: &[PodCondition]) -> Option<String> {
    let gates = pod.spec.as_ref().and_then(|s| s.readiness_gates.as_ref())?;
    let messages: Vec<String> = gates
        .iter()
        .filter_map(|gate| {
            let type_ = &gate.condition_type;
            match conditions.iter().find(|c| &c.type_ == type_) {
                None => Some(format!("corresponding condition of pod readiness gate {type_:?} does not exist.")),
                Some(c) if c.status != "True" => {
                    Some(format!("the status of pod readiness gate {type_:?} is not \"True\", but {}", c.status))
                }
                Some(_) => None,
            }
        })
        .collect();
    (!messages.is_empty()).then(|| messages.join(", "))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodReadinessGate, PodSpec};

    use super::*;

    fn pod(gates: &[&str]) -> Pod {
        let readiness_gates = gates.iter().map(|g| PodReadinessGate { condition_type: g.to_string() }).collect();
        Pod {
            spec: Some(PodSpec { readiness_gates: Some(readiness_gates), ..Default::default() }),
            ..Default::default()
        }
    }

    fn cond(type_: &str, status: &str) -> PodCondition {
        PodCondition { type_: type_.into(), status: status.into(), ..Default::default() }
    }

    #[test]
    fn gates_are_met_only_when_every_condition_is_true() {
        let cases: [(&[&str], Vec<PodCondition>, Option<&str>); 5] = [
            (&[], vec![], None),
            (&["a"], vec![cond("a", "True")], None),
            (&["a"], vec![], Some("corresponding condition of pod readiness gate \"a\" does not exist.")),
            (
                &["a", "b"],
                vec![cond("a", "False"), cond("b", "True")],
                Some("the status of pod readiness gate \"a\" is not \"True\", but False"),
            ),
            (
                &["a", "b"],
                vec![cond("b", "Unknown")],
                Some(
                    "corresponding condition of pod readiness gate \"a\" does not exist., \
                     the status of pod readiness gate \"b\" is not \"True\", but Unknown",
                ),
            ),
        ];
        for (i, (gates, conditions, want)) in cases.iter().enumerate() {
            assert_eq!(unmet(&pod(gates), conditions).as_deref(), *want, "case {i}");
        }
        assert_eq!(unmet(&Pod::default(), &[]), None);
    }

    #[test]
    fn keeps_only_conditions_others_own() {
        let previous =
            [cond("Ready", "True"), cond("example.com/lb", "True"), cond("PodScheduled", "True"), cond("x", "False")];
        let kept: Vec<&str> = foreign_conditions(&previous).map(|c| c.type_.as_str()).collect();
        assert_eq!(kept, ["example.com/lb", "x"]);
    }
}
