//! The node's pressure conditions as the eviction manager sees them
//! (pure): a condition under pressure is `True` with upstream's reason and
//! message; the others stay as the heartbeat wrote them.

use k8s_openapi::api::core::v1::NodeStatus;

use super::manager::Pressure;

/// Upstream's reason and message of a condition under pressure.
fn under_pressure(type_: &str) -> Option<(&'static str, &'static str)> {
    match type_ {
        "MemoryPressure" => Some(("KubeletHasInsufficientMemory", "kubelet has insufficient memory available")),
        "DiskPressure" => Some(("KubeletHasDiskPressure", "kubelet has disk pressure")),
        "PIDPressure" => Some(("KubeletHasInsufficientPID", "kubelet has insufficient PID available")),
        _ => None,
    }
}

/// Sets the conditions in `pressure` to `True` in `status`; keeps the
/// transition time when the previous status (`previous`) already said so.
pub fn apply(status: &mut NodeStatus, previous: Option<&NodeStatus>, pressure: &Pressure) {
    for c in status.conditions.iter_mut().flatten() {
        let Some((reason, message)) = under_pressure(&c.type_).filter(|_| pressure.contains(c.type_.as_str())) else {
            continue;
        };
        let before = previous.and_then(|p| p.conditions.as_ref()?.iter().find(|o| o.type_ == c.type_).cloned());
        if let Some(b) = before.filter(|b| b.status == "True") {
            c.last_transition_time = b.last_transition_time;
        } else {
            c.last_transition_time = c.last_heartbeat_time.clone();
        }
        c.status = "True".into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::NodeCondition;

    use super::*;

    #[test]
    fn pressure_sets_the_condition_true_with_upstreams_words() {
        let cond = |t: &str| NodeCondition { type_: t.into(), status: "False".into(), ..Default::default() };
        let mut status = NodeStatus {
            conditions: Some(vec![cond("MemoryPressure"), cond("DiskPressure"), cond("Ready")]),
            ..Default::default()
        };
        apply(&mut status, None, &Pressure::from(["MemoryPressure"]));
        let c = status.conditions.expect("conditions");
        assert_eq!((c[0].status.as_str(), c[0].reason.as_deref()), ("True", Some("KubeletHasInsufficientMemory")));
        assert_eq!(c[1].status, "False");
        assert_eq!(c[2].status, "False");
    }
}
