//! The admission decisions of Pod Security, on objects already read: the
//! namespace of the write, the new object and (on update) the stored one.
//! Pure, so `crud` does the reads and these decide.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::config::PodSecurityConfig;
use super::{describe, evaluate, Level, LevelVersion, Mode, PodView, Policy, LABEL_PREFIX};
use crate::apiserver::registry::{Kind, ResourceInfo};
use crate::apiserver::status::{ApiError, Cause};

/// Most existing pods evaluated when a namespace's enforce level changes
/// (upstream's cap), so a label change does bounded work.
pub const MAX_PODS_CHECKED: usize = 3000;

/// The pod template of a workload kind, or the pod itself.
fn pod_view<'a>(kind: Kind, obj: &'a Value) -> Option<PodView<'a>> {
    let template = match kind {
        Kind::Pod => return PodView::of(obj),
        Kind::Deployment | Kind::ReplicaSet | Kind::DaemonSet | Kind::StatefulSet | Kind::Job => "/spec/template",
        Kind::CronJob => "/spec/jobTemplate/spec/template",
        _ => return None,
    };
    PodView::of(obj.pointer(template)?)
}

/// Whether a write of `obj` (`old`: the stored object on update) is
/// evaluated at all: pods and the workloads with a pod template; a pod
/// update only if it is significant. Lets the caller skip reading the
/// namespace.
pub fn evaluated(kind: Kind, obj: &Value, old: Option<&Value>) -> bool {
    if kind == Kind::Pod && old.is_some_and(|old| !significant_pod_update(old, obj)) {
        return false;
    }
    matches!(
        kind,
        Kind::Pod
            | Kind::Deployment
            | Kind::ReplicaSet
            | Kind::DaemonSet
            | Kind::StatefulSet
            | Kind::Job
            | Kind::CronJob
    )
}

/// A pod update that can change the outcome: the spec changed. The
/// metadata-only updates (labels, finalizers, graceful deletion) are
/// skipped, as upstream (whose only mutable spec fields that matter are the
/// images, which count).
fn significant_pod_update(old: &Value, new: &Value) -> bool {
    old.get("spec") != new.get("spec")
}

/// Admits a create (`old` = `None`) or update of `obj` in `namespace` by
/// `user`: 403 if a pod violates the enforce level; otherwise the `warn`
/// warnings (workloads only ever get warnings). `audit` violations are
/// logged. Exempt writes (`config`) are not evaluated.
pub fn admit(
    config: &PodSecurityConfig,
    user: Option<&str>,
    info: &ResourceInfo,
    namespace: &Value,
    obj: &Value,
    old: Option<&Value>,
) -> Result<Vec<String>, ApiError> {
    let Some(pod) = pod_view(info.kind, obj).filter(|_| evaluated(info.kind, obj, old)) else {
        return Ok(Vec::new());
    };
    let ns_name = namespace.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let runtime_class = pod.spec.get("runtimeClassName").and_then(Value::as_str);
    if config.exempt(user, ns_name, runtime_class) {
        return Ok(Vec::new());
    }
    let (policy, errors) = Policy::from_labels_or(labels(namespace), &config.defaults);
    if errors.is_empty() && policy.fully_privileged() {
        return Ok(Vec::new());
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    if info.kind == Kind::Pod {
        let violations = evaluate(policy.enforce.level, &pod);
        if !violations.is_empty() {
            return Err(ApiError::Forbidden(format!(
                "{} \"{name}\" is forbidden: violates {}",
                info.plural,
                describe(&policy.enforce, &violations)
            )));
        }
    }
    if policy.audit.level != Level::Privileged {
        let violations = evaluate(policy.audit.level, &pod);
        if !violations.is_empty() {
            let ns = namespace.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            let violation = describe(&policy.audit, &violations);
            tracing::info!(namespace = ns, name, resource = info.plural, "audit: would violate {violation}");
        }
    }
    let warn_needed =
        policy.warn.level != Level::Privileged && !(info.kind == Kind::Pod && policy.warn == policy.enforce);
    if !warn_needed {
        return Ok(Vec::new());
    }
    let violations = evaluate(policy.warn.level, &pod);
    Ok(if violations.is_empty() {
        Vec::new()
    } else {
        vec![format!("would violate {}", describe(&policy.warn, &violations))]
    })
}

/// A namespace's labels.
fn labels(namespace: &Value) -> Option<&Map<String, Value>> {
    namespace.pointer("/metadata/labels").and_then(Value::as_object)
}

/// The Pod Security labels of a namespace.
fn pod_security_labels(namespace: &Value) -> Vec<(&String, &Value)> {
    labels(namespace).into_iter().flatten().filter(|(k, _)| k.starts_with(LABEL_PREFIX)).collect()
}

/// Invalid Pod Security labels of a namespace create, or of an update that
/// changed them (422, as upstream; a namespace stored with invalid labels
/// stays usable, its pods enforced at `restricted`).
pub fn validate_namespace(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    if old.is_some_and(|old| pod_security_labels(old) == pod_security_labels(obj)) {
        return Vec::new();
    }
    Policy::from_labels(labels(obj))
        .1
        .into_iter()
        .map(|e| Cause::invalid(format!("metadata.labels[{}]", e.label), &e.value, e.expected))
        .collect()
}

/// The new enforce level of a namespace update, if existing pods must be
/// evaluated against it: it changed, checks something and is not a mere
/// relaxation at the same version (upstream's rules); never for an exempt
/// namespace.
pub fn changed_enforce(config: &PodSecurityConfig, old: &Value, new: &Value) -> Option<LevelVersion> {
    let name = new.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    if config.exemptions.namespaces.contains(name) {
        return None;
    }
    let (before, _) = Policy::from_labels_or(labels(old), &config.defaults);
    let (after, _) = Policy::from_labels_or(labels(new), &config.defaults);
    let (b, a) = (before.enforce, after.enforce);
    let relaxed = a.version == b.version && a.level <= b.level;
    (a != b && a.level != Level::Privileged && !relaxed).then_some(a)
}

/// Warnings for the existing `pods` (the first [`MAX_PODS_CHECKED`] of
/// `total`) that violate the new enforce level of namespace `ns`, in
/// upstream's shape: how many were checked if not all, a heading, then one
/// line per distinct list of reasons naming its first pod and how many
/// others share it, sorted.
pub fn existing_pod_warnings(ns: &str, enforce: &LevelVersion, pods: &[Value], total: usize) -> Vec<String> {
    // reasons -> (lexically first pod name, number of pods)
    let mut groups: BTreeMap<String, (&str, usize)> = BTreeMap::new();
    let checked = pods.len().min(MAX_PODS_CHECKED);
    for pod in &pods[..checked] {
        let Some(view) = PodView::of(pod) else { continue };
        let violations = evaluate(enforce.level, &view);
        if violations.is_empty() {
            continue;
        }
        let reasons: Vec<&str> = violations.iter().map(|v| v.reason).collect();
        let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let entry = groups.entry(reasons.join(", ")).or_insert((name, 0));
        if name < entry.0 {
            entry.0 = name;
        }
        entry.1 = entry.1.saturating_add(1);
    }
    let mut warnings = Vec::new();
    if checked < total {
        warnings.push(format!(
            "new PodSecurity enforce level only checked against the first {checked} of {total} existing pods"
        ));
    }
    if !groups.is_empty() {
        warnings.push(format!(
            "existing pods in namespace \"{ns}\" violate the new PodSecurity {} level \"{enforce}\"",
            Mode::Enforce.as_str()
        ));
    }
    let mut lines: Vec<String> = groups
        .into_iter()
        .map(|(reasons, (name, count))| match count {
            1 => format!("{name}: {reasons}"),
            2 => format!("{name} (and 1 other pod): {reasons}"),
            n => format!("{name} (and {} other pods): {reasons}", n - 1),
        })
        .collect();
    lines.sort();
    warnings.extend(lines);
    warnings
}
