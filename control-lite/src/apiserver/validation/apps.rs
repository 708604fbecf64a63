//! DaemonSets and StatefulSets: selector matching the template, update
//! strategies and their bounds, StatefulSet policies, and the update rules
//! (selector immutable; a StatefulSet's spec changes only in the fields
//! upstream allows). `volumeClaimTemplates` are refused: control-lite has no
//! storage yet.

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetUpdateStrategy, StatefulSet, StatefulSetUpdateStrategy};
use serde_json::Value;

use super::update::immutable;
use super::workloads::{int_or_percent, validate_replicas, validate_selector_and_template};
use super::{at_least, forbidden, invalid_value, is_dns1123_label, one_of, Causes};
use crate::apiserver::registry::Kind;
use crate::apiserver::schema::typed;
use crate::apiserver::status::Cause;

const STRATEGIES: [&str; 2] = ["RollingUpdate", "OnDelete"];
const POD_MANAGEMENT: [&str; 2] = ["OrderedReady", "Parallel"];
/// StatefulSet spec fields an update may change (upstream's list).
const STS_MUTABLE: [&str; 7] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
    "revisionHistoryLimit",
];

/// A DaemonSet object.
pub fn validate_daemonset(obj: &Value, out: &mut Causes) {
    let Some(ds) = typed::<DaemonSet>(obj) else { return };
    let spec = ds.spec.unwrap_or_default();
    validate_selector_and_template(Some(&spec.selector), Some(&spec.template), out);
    common_counts(spec.min_ready_seconds, spec.revision_history_limit, out);
    if let Some(strategy) = &spec.update_strategy {
        validate_daemonset_strategy(strategy, out);
    }
}

fn validate_daemonset_strategy(strategy: &DaemonSetUpdateStrategy, out: &mut Causes) {
    let kind = strategy.type_.as_deref().unwrap_or("RollingUpdate");
    one_of("spec.updateStrategy.type", Some(kind), &STRATEGIES, out);
    let Some(ru) = strategy.rolling_update.as_ref().filter(|_| kind == "RollingUpdate") else { return };
    let field = "spec.updateStrategy.rollingUpdate";
    let unavailable =
        ru.max_unavailable.as_ref().map(|v| int_or_percent(v, &format!("{field}.maxUnavailable"), true, out));
    let surge = ru.max_surge.as_ref().map(|v| int_or_percent(v, &format!("{field}.maxSurge"), true, out));
    let zero = |v: Option<Option<i64>>| v.is_none_or(|n| n == Some(0));
    if zero(unavailable) && zero(surge) {
        out.push(Cause {
            reason: "FieldValueRequired",
            field: format!("{field}.maxUnavailable"),
            message: "Required value: cannot be 0 when maxSurge is 0".into(),
        });
    }
    if unavailable.flatten().is_some_and(|n| n > 0) && surge.flatten().is_some_and(|n| n > 0) {
        out.push(invalid_value(
            format!("{field}.maxSurge"),
            surge.flatten().unwrap_or_default(),
            "may not be set when maxUnavailable is non-zero",
        ));
    }
}

/// A StatefulSet object.
pub fn validate_statefulset(obj: &Value, out: &mut Causes) {
    let Some(sts) = typed::<StatefulSet>(obj) else { return };
    let spec = sts.spec.unwrap_or_default();
    validate_replicas(spec.replicas, out);
    validate_selector_and_template(Some(&spec.selector), Some(&spec.template), out);
    common_counts(spec.min_ready_seconds, spec.revision_history_limit, out);
    one_of("spec.podManagementPolicy", spec.pod_management_policy.as_deref(), &POD_MANAGEMENT, out);
    if let Some(service) = spec.service_name.as_deref().filter(|s| !s.is_empty()) {
        if !is_dns1123_label(service) {
            out.push(Cause::invalid("spec.serviceName", service, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"));
        }
    }
    if let Some(start) = spec.ordinals.as_ref().and_then(|o| o.start) {
        at_least("spec.ordinals.start", start.into(), 0, out);
    }
    if spec.volume_claim_templates.as_ref().is_some_and(|v| !v.is_empty()) {
        out.push(forbidden(
            "spec.volumeClaimTemplates",
            "volumeClaimTemplates are not supported by control-lite yet (it has no PersistentVolumeClaims or storage)",
        ));
    }
    if let Some(strategy) = &spec.update_strategy {
        validate_statefulset_strategy(strategy, out);
    }
}

fn validate_statefulset_strategy(strategy: &StatefulSetUpdateStrategy, out: &mut Causes) {
    let kind = strategy.type_.as_deref().unwrap_or("RollingUpdate");
    one_of("spec.updateStrategy.type", Some(kind), &STRATEGIES, out);
    let Some(ru) = &strategy.rolling_update else { return };
    let field = "spec.updateStrategy.rollingUpdate";
    if kind != "RollingUpdate" {
        out.push(forbidden(field, "only allowed for updateStrategy 'RollingUpdate'"));
        return;
    }
    if let Some(partition) = ru.partition {
        at_least(format!("{field}.partition"), partition.into(), 0, out);
    }
    if let Some(v) = &ru.max_unavailable {
        if int_or_percent(v, &format!("{field}.maxUnavailable"), true, out) == Some(0) {
            out.push(invalid_value(format!("{field}.maxUnavailable"), 0, "must be greater than 0"));
        }
    }
}

fn common_counts(min_ready: Option<i32>, history: Option<i32>, out: &mut Causes) {
    if let Some(s) = min_ready {
        at_least("spec.minReadySeconds", s.into(), 0, out);
    }
    if let Some(h) = history {
        at_least("spec.revisionHistoryLimit", h.into(), 0, out);
    }
}

/// A ControllerRevision object: a revision number >= 0.
pub fn validate_controller_revision(obj: &Value, out: &mut Causes) {
    if let Some(revision) = obj.get("revision").and_then(Value::as_i64) {
        at_least("revision", revision, 0, out);
    }
}

/// Update rules: a ControllerRevision's data never changes; the selector never changes; a StatefulSet's spec changes
/// only in [`STS_MUTABLE`].
pub fn validate_update(kind: Kind, old: &Value, new: &Value, out: &mut Causes) {
    if kind == Kind::ControllerRevision {
        if old.get("data") != new.get("data") {
            out.push(immutable("data"));
        }
        return;
    }
    if old.pointer("/spec/selector") != new.pointer("/spec/selector") {
        out.push(immutable("spec.selector"));
        return;
    }
    if kind != Kind::StatefulSet {
        return;
    }
    let masked = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(m) = spec.as_object_mut() {
            for field in STS_MUTABLE {
                m.remove(field);
            }
        }
        spec
    };
    if masked(old) != masked(new) {
        out.push(forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

#[cfg(test)]
#[path = "apps_tests.rs"]
mod tests;
