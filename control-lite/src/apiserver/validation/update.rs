//! Update validation: what may change between the stored object and the
//! requested one (upstream's `ValidateXUpdate`). Identity metadata never
//! changes; a pod's spec only where upstream allows (images, a shorter
//! active deadline, added tolerations; `nodeName` only through a binding);
//! workload selectors never. Service addresses are planned in `clusterip`.

use serde_json::Value;

use super::{forbidden, Causes};
use crate::apiserver::defaults;
use crate::apiserver::registry::{Kind, ResourceInfo};
use crate::apiserver::status::Cause;

const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Which write path an update comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// PUT or PATCH of the main resource.
    Main,
    /// `/status`: the spec is taken from the stored object.
    Status,
    /// `pods/binding`: may set `spec.nodeName` once.
    Binding,
    /// `pods/resize`: containers' cpu/memory resources only ([`crate::apiserver::resize`]).
    Resize,
    /// `certificatesigningrequests/approval`: the conditions only.
    Approval,
}

/// Causes for updating `old` (as stored) to `new` (defaulted).
pub fn validate_update(info: &ResourceInfo, old: &Value, new: &Value, how: UpdateKind) -> Causes {
    let mut out = Vec::new();
    for field in ["name", "namespace", "uid", "creationTimestamp"] {
        if old.pointer(&format!("/metadata/{field}")) != new.pointer(&format!("/metadata/{field}")) {
            out.push(immutable(format!("metadata.{field}")));
        }
    }
    if info.kind == Kind::CertificateSigningRequest {
        crate::apiserver::certificates::validate_update(old, new, &mut out);
    }
    if matches!(how, UpdateKind::Status | UpdateKind::Approval) {
        return out;
    }
    // Stored objects may predate a default added since: compare like with like.
    let mut old = old.clone();
    defaults::apply(info.kind, &mut old);
    match info.kind {
        Kind::Pod if how == UpdateKind::Resize => out.extend(crate::apiserver::resize::validate(&old, new)),
        Kind::Pod => validate_pod_update(&old, new, how, &mut out),
        Kind::PriorityClass if old.get("value") != new.get("value") => out.push(Cause {
            reason: "FieldValueForbidden",
            field: "value".into(),
            message: "Forbidden: may not be changed in an update.".into(),
        }),
        Kind::Job => super::job::validate_job_update(&old, new, &mut out),
        Kind::Deployment | Kind::ReplicaSet if old.pointer("/spec/selector") != new.pointer("/spec/selector") => {
            out.push(immutable("spec.selector"));
        }
        Kind::DaemonSet | Kind::StatefulSet | Kind::ControllerRevision => {
            super::apps::validate_update(info.kind, &old, new, &mut out)
        }
        _ => {}
    }
    out
}

/// `field is immutable`.
pub fn immutable(field: impl Into<String>) -> Cause {
    Cause { reason: "FieldValueInvalid", field: field.into(), message: "field is immutable".into() }
}

fn validate_pod_update(old: &Value, new: &Value, how: UpdateKind, out: &mut Causes) {
    let (Some(old_spec), Some(new_spec)) = (old.get("spec"), new.get("spec")) else { return };
    let mut masked = new_spec.clone();
    // Images may change, container by container (same count, same names).
    for list in ["containers", "initContainers"] {
        let old_list = old_spec.get(list).and_then(Value::as_array);
        let new_list = masked.get_mut(list).and_then(Value::as_array_mut);
        if let (Some(old_list), Some(new_list)) = (old_list, new_list) {
            for (o, n) in old_list.iter().zip(new_list.iter_mut()) {
                if let (Some(image), Some(slot)) = (o.get("image"), n.as_object_mut()) {
                    slot.insert("image".into(), image.clone());
                }
            }
        }
    }
    // activeDeadlineSeconds may be set or shortened, never lengthened or removed.
    let old_deadline = old_spec.get("activeDeadlineSeconds").and_then(Value::as_i64);
    let new_deadline = new_spec.get("activeDeadlineSeconds").and_then(Value::as_i64);
    match (old_deadline, new_deadline) {
        (Some(o), Some(n)) if n > o => out.push(super::invalid_value(
            "spec.activeDeadlineSeconds",
            n,
            "must be less than or equal to previous value",
        )),
        (Some(_), None) => out.push(super::invalid_value(
            "spec.activeDeadlineSeconds",
            Value::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    copy_field(old_spec, &mut masked, "activeDeadlineSeconds");
    // Tolerations: only additions.
    let old_tol = old_spec.get("tolerations").and_then(Value::as_array).cloned().unwrap_or_default();
    let new_tol = new_spec.get("tolerations").and_then(Value::as_array).cloned().unwrap_or_default();
    if old_tol.iter().all(|t| new_tol.contains(t)) {
        copy_field(old_spec, &mut masked, "tolerations");
    }
    // A negative grace period may be raised to 1.
    let old_grace = old_spec.get("terminationGracePeriodSeconds").and_then(Value::as_i64);
    let new_grace = new_spec.get("terminationGracePeriodSeconds").and_then(Value::as_i64);
    if old_grace.is_some_and(|g| g < 0) && new_grace == Some(1) {
        copy_field(old_spec, &mut masked, "terminationGracePeriodSeconds");
    }
    // nodeName: set once, by the binding subresource only.
    let old_node = old_spec.get("nodeName").and_then(Value::as_str).unwrap_or_default();
    let new_node = new_spec.get("nodeName").and_then(Value::as_str).unwrap_or_default();
    if old_node != new_node {
        if how == UpdateKind::Binding && old_node.is_empty() {
            copy_field(old_spec, &mut masked, "nodeName");
        } else if old_node.is_empty() {
            out.push(forbidden("spec.nodeName", "may only be set through the binding subresource"));
            copy_field(old_spec, &mut masked, "nodeName");
        }
    }
    if &masked != old_spec {
        out.push(forbidden("spec", POD_UPDATE_MSG));
    }
}

fn copy_field(from: &Value, to: &mut Value, field: &str) {
    let Some(to) = to.as_object_mut() else { return };
    match from.get(field) {
        Some(v) => {
            to.insert(field.into(), v.clone());
        }
        None => {
            to.remove(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::by_kind;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "n", "uid": "u"}, "spec": spec});
        defaults::apply(Kind::Pod, &mut p);
        p
    }

    fn fields(old: &Value, new: &Value, how: UpdateKind) -> Vec<String> {
        validate_update(by_kind(Kind::Pod), old, new, how).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn pod_update_rules() {
        let base = json!({"containers": [{"name": "c", "image": "a:1"}], "activeDeadlineSeconds": 100,
            "tolerations": [{"key": "k", "operator": "Exists"}]});
        let old = pod(base.clone());
        let with = |patch: Value| {
            let mut s = base.clone();
            json_patch::merge(&mut s, &patch);
            pod(s)
        };
        let cases: Vec<(Value, UpdateKind, Vec<&str>)> = vec![
            (json!({"containers": [{"name": "c", "image": "a:2"}]}), UpdateKind::Main, vec![]),
            (json!({"activeDeadlineSeconds": 50}), UpdateKind::Main, vec![]),
            (json!({"activeDeadlineSeconds": 500}), UpdateKind::Main, vec!["spec.activeDeadlineSeconds"]),
            (
                json!({"tolerations": [{"key": "k", "operator": "Exists"}, {"key": "x", "operator": "Exists"}]}),
                UpdateKind::Main,
                vec![],
            ),
            (json!({"tolerations": []}), UpdateKind::Main, vec!["spec"]),
            (json!({"restartPolicy": "Never"}), UpdateKind::Main, vec!["spec"]),
            (json!({"containers": [{"name": "c", "image": "a:1", "command": ["sh"]}]}), UpdateKind::Main, vec!["spec"]),
            (json!({"nodeName": "n1"}), UpdateKind::Main, vec!["spec.nodeName"]),
            (json!({"nodeName": "n1"}), UpdateKind::Binding, vec![]),
            (json!({"restartPolicy": "Never"}), UpdateKind::Status, vec![]),
        ];
        for (patch, how, want) in cases {
            assert_eq!(fields(&old, &with(patch.clone()), how), want, "{patch}");
        }
        let bound = with(json!({"nodeName": "n1"}));
        assert_eq!(fields(&bound, &with(json!({"nodeName": "n2"})), UpdateKind::Binding), vec!["spec"]);
    }

    #[test]
    fn workload_selectors_and_identity_are_immutable() {
        let d = |sel: &str, uid: &str| json!({"metadata": {"name": "d", "namespace": "n", "uid": uid}, "spec": {"selector": {"matchLabels": {"app": sel}}}});
        let info = by_kind(Kind::Deployment);
        let got: Vec<String> =
            validate_update(info, &d("a", "u"), &d("b", "v"), UpdateKind::Main).into_iter().map(|c| c.field).collect();
        assert_eq!(got, vec!["metadata.uid", "spec.selector"]);
        assert!(validate_update(info, &d("a", "u"), &d("a", "u"), UpdateKind::Main).is_empty());
    }
}
