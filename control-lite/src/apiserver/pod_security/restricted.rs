//! The `restricted` checks of the Pod Security Standards, evaluated on top
//! of the baseline ones (replacing the baseline capabilities, hostPath and
//! seccomp checks with their stricter forms).

use serde_json::Value;

use super::baseline::{added_beyond, Check};
use super::view::{containers_phrase, plural, quoted, str_at, PodView};
use super::Violation;

/// The volume types a restricted pod may use.
const ALLOWED_VOLUME_TYPES: &[&str] =
    &["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];

/// The one capability a restricted container may add.
const ALLOWED_CAPABILITIES: &[&str] = &["NET_BIND_SERVICE"];

/// The restricted checks, in the order their reasons are reported.
pub const CHECKS: &[Check] =
    &[allow_privilege_escalation, capabilities, volume_types, run_as_non_root, run_as_user, seccomp];

/// Only the allowed volume types.
pub fn volume_types(pod: &PodView<'_>) -> Option<Violation> {
    let mut names = Vec::new();
    let mut types: Vec<&str> = Vec::new();
    for v in pod.volumes() {
        let Some(obj) = v.as_object() else { continue };
        let bad = obj.keys().map(String::as_str).find(|k| *k != "name" && !ALLOWED_VOLUME_TYPES.contains(k));
        if let Some(t) = bad {
            names.push(str_at(v.get("name")).unwrap_or_default());
            if !types.contains(&t) {
                types.push(t);
            }
        }
    }
    (!names.is_empty()).then(|| Violation {
        reason: "restricted volume types",
        detail: format!(
            "{} {} {} {}",
            if names.len() == 1 { "volume" } else { "volumes" },
            quoted(&names),
            plural(names.len(), "uses restricted volume type", "use restricted volume types"),
            quoted(&types)
        ),
    })
}

/// `allowPrivilegeEscalation` explicitly false in every container.
pub fn allow_privilege_escalation(pod: &PodView<'_>) -> Option<Violation> {
    let bad: Vec<&str> = pod
        .containers()
        .filter(|c| c.sc("/allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false))
        .map(|c| c.name)
        .collect();
    (!bad.is_empty()).then(|| Violation {
        reason: "allowPrivilegeEscalation != false",
        detail: format!("{} must set securityContext.allowPrivilegeEscalation=false", containers_phrase(&bad)),
    })
}

/// Every container drops ALL and adds at most NET_BIND_SERVICE.
pub fn capabilities(pod: &PodView<'_>) -> Option<Violation> {
    let drops_all = |c: &Value| {
        c.pointer("/securityContext/capabilities/drop")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|cap| cap.as_str() == Some("ALL")))
    };
    let no_drop: Vec<&str> = pod.containers().filter(|c| !drops_all(c.value)).map(|c| c.name).collect();
    let mut parts = Vec::new();
    if !no_drop.is_empty() {
        parts.push(format!("{} must set securityContext.capabilities.drop=[\"ALL\"]", containers_phrase(&no_drop)));
    }
    for c in pod.containers() {
        let extra = added_beyond(c.value, ALLOWED_CAPABILITIES);
        if !extra.is_empty() {
            parts.push(format!(
                "container {:?} must not include {} in securityContext.capabilities.add",
                c.name,
                quoted(&extra)
            ));
        }
    }
    (!parts.is_empty()).then(|| Violation { reason: "unrestricted capabilities", detail: parts.join("; ") })
}

/// `runAsNonRoot` true at pod or container level (a non-zero `runAsUser`
/// also satisfies it), and never explicitly false.
pub fn run_as_non_root(pod: &PodView<'_>) -> Option<Violation> {
    let non_zero_user = |v: Option<&Value>| v.and_then(Value::as_i64).is_some_and(|u| u != 0);
    let pod_value = pod.sc("/runAsNonRoot").and_then(Value::as_bool);
    let pod_ok = pod_value == Some(true) || non_zero_user(pod.sc("/runAsUser"));
    let mut explicit_false = Vec::new();
    let mut unset = Vec::new();
    for c in pod.containers() {
        match c.sc("/runAsNonRoot").and_then(Value::as_bool) {
            Some(false) => explicit_false.push(c.name),
            Some(true) => {}
            None if pod_ok || non_zero_user(c.sc("/runAsUser")) => {}
            None => unset.push(c.name),
        }
    }
    let mut parts = Vec::new();
    if pod_value == Some(false) {
        parts.push("pod must not set securityContext.runAsNonRoot=false".to_string());
    }
    if !explicit_false.is_empty() {
        parts.push(format!("{} must not set securityContext.runAsNonRoot=false", containers_phrase(&explicit_false)));
    }
    if !unset.is_empty() {
        parts.push(format!("pod or {} must set securityContext.runAsNonRoot=true", containers_phrase(&unset)));
    }
    (!parts.is_empty()).then(|| Violation { reason: "runAsNonRoot != true", detail: parts.join("; ") })
}

/// `runAsUser` never 0, at pod or container level.
pub fn run_as_user(pod: &PodView<'_>) -> Option<Violation> {
    let root = |v: Option<&Value>| v.and_then(Value::as_i64) == Some(0);
    let mut parts = Vec::new();
    if root(pod.sc("/runAsUser")) {
        parts.push("pod must not set runAsUser=0".to_string());
    }
    let bad: Vec<&str> = pod.containers().filter(|c| root(c.sc("/runAsUser"))).map(|c| c.name).collect();
    if !bad.is_empty() {
        parts.push(format!("{} must not set runAsUser=0", containers_phrase(&bad)));
    }
    (!parts.is_empty()).then(|| Violation { reason: "runAsUser=0", detail: parts.join("; ") })
}

/// Seccomp `RuntimeDefault` or `Localhost` for every container, set on the
/// container or inherited from the pod.
pub fn seccomp(pod: &PodView<'_>) -> Option<Violation> {
    let allowed = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    let pod_type = str_at(pod.sc("/seccompProfile/type"));
    let mut parts = Vec::new();
    if let Some(t) = pod_type.filter(|t| !allowed(t)) {
        parts.push(format!("pod must not set securityContext.seccompProfile.type to {t:?}"));
    }
    let mut bad_type = Vec::new();
    let mut unset = Vec::new();
    for c in pod.containers() {
        match str_at(c.sc("/seccompProfile/type")) {
            Some(t) if !allowed(t) => bad_type.push((c.name, t)),
            Some(_) => {}
            None if pod_type.is_some_and(allowed) => {}
            None => unset.push(c.name),
        }
    }
    for (name, t) in bad_type {
        parts.push(format!("container {name:?} must not set securityContext.seccompProfile.type to {t:?}"));
    }
    if !unset.is_empty() {
        let who = if pod_type.is_none() {
            format!("pod or {}", containers_phrase(&unset))
        } else {
            containers_phrase(&unset)
        };
        parts
            .push(format!("{who} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\""));
    }
    (!parts.is_empty()).then(|| Violation { reason: "seccompProfile", detail: parts.join("; ") })
}
