//! Validation like the real apiserver: pure checks of an object (and of an
//! update against the stored object), returning upstream-shaped causes with
//! upstream field paths (`spec.containers[0].resources.requests[cpu]`).
//!
//! Layout: [`meta`] (names, labels, annotations, finalizers), [`quantities`]
//! (resource lists), [`pod`] (pod specs and templates), [`podrules`] (the
//! rest of upstream's pod spec rules: mounts, env references, security
//! contexts, sysctls, ephemeral containers), [`probes`]
//! (container ports, probes, lifecycle handlers), [`workloads`]
//! (Deployment, ReplicaSet), [`apps`] (DaemonSet, StatefulSet), [`job`] (Job, CronJob), [`policy`] (PodDisruptionBudget), [`service`] (Service spec), [`other`] (the
//! remaining kinds), [`update`] (immutable fields). Every check is bounded by
//! the size of the object; nothing here allocates or loops in proportion to a
//! number inside it.

pub mod apps;
pub mod job;
pub mod meta;
pub mod other;
pub mod pod;
pub mod podrules;
pub mod policy;
pub mod priority;
pub mod probes;
pub mod quantities;
pub mod rbac;
pub mod service;
pub mod update;
pub mod workloads;

use serde_json::Value;

use super::registry::{Kind, ResourceInfo};
use super::status::Cause;

pub use meta::{is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, NameRule};
pub use update::{validate_update, UpdateKind};

/// The causes collected by a check.
pub type Causes = Vec<Cause>;

/// How `metadata.name` of `kind` is checked (as upstream's per-kind name validators).
pub fn name_rule(kind: Kind) -> NameRule {
    match kind {
        Kind::Namespace => NameRule::Label,
        Kind::Service => NameRule::Label1035,
        Kind::Event | Kind::EventV1 | Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding => {
            NameRule::PathSegment
        }
        _ => NameRule::Subdomain,
    }
}

/// Validates `obj` (already typed-normalized and defaulted) as an object of `info`.
pub fn validate(info: &ResourceInfo, obj: &Value) -> Causes {
    let mut out = Vec::new();
    meta::validate_object_meta(obj, name_rule(info.kind), info.namespaced, &mut out);
    match info.kind {
        Kind::Pod => {
            pod::validate_pod(obj, &mut out);
            super::resize::validate_policies(obj, &mut out);
        }
        Kind::Deployment => workloads::validate_deployment(obj, &mut out),
        Kind::ReplicaSet => workloads::validate_replicaset(obj, &mut out),
        Kind::DaemonSet => apps::validate_daemonset(obj, &mut out),
        Kind::StatefulSet => apps::validate_statefulset(obj, &mut out),
        Kind::ControllerRevision => apps::validate_controller_revision(obj, &mut out),
        Kind::Job => job::validate_job(obj, &mut out),
        Kind::CronJob => job::validate_cronjob(obj, &mut out),
        Kind::PodDisruptionBudget => policy::validate_pdb(obj, &mut out),
        Kind::Service => service::validate_service(obj, &mut out),
        Kind::ConfigMap | Kind::Secret => other::validate_data_keys(obj, &mut out),
        Kind::Node | Kind::Namespace => other::validate_node_and_namespace(obj, &mut out),
        Kind::PriorityClass => priority::validate_priority_class(obj, &mut out),
        Kind::CertificateSigningRequest => super::certificates::validate(obj, &mut out),
        Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding => {
            rbac::validate_rbac(info.kind, obj, &mut out)
        }
        Kind::SelfSubjectAccessReview
        | Kind::SubjectAccessReview
        | Kind::LocalSubjectAccessReview
        | Kind::SelfSubjectRulesReview
        | Kind::TokenReview
        | Kind::SelfSubjectReview
        | Kind::Custom => {}
        Kind::CustomResourceDefinition => out.extend(super::crd::definition::validate(obj)),
        Kind::Endpoints | Kind::EndpointSlice | Kind::Event | Kind::EventV1 | Kind::Lease | Kind::ServiceAccount => {
            other::validate_simple(info.kind, obj, &mut out)
        }
    }
    out
}

/// An invalid value rendered as JSON (numbers unquoted, strings quoted).
pub(crate) fn invalid_value(field: impl Into<String>, value: impl Into<Value>, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field: field.into(),
        message: format!("Invalid value: {}: {detail}", value.into()),
    }
}

/// A missing value with an explanation (`Required value: <detail>`).
pub(crate) fn required_because(field: impl Into<String>, detail: &str) -> Cause {
    Cause { reason: "FieldValueRequired", field: field.into(), message: format!("Required value: {detail}") }
}

/// A value longer than `max` bytes.
pub(crate) fn too_long(field: impl Into<String>, max: usize) -> Cause {
    Cause {
        reason: "FieldValueTooLong",
        field: field.into(),
        message: format!("Too long: must have at most {max} bytes"),
    }
}

/// A forbidden field or change.
pub(crate) fn forbidden(field: impl Into<String>, detail: &str) -> Cause {
    Cause { reason: "FieldValueForbidden", field: field.into(), message: format!("Forbidden: {detail}") }
}

/// `value` at `field` must be at least `min`.
pub(crate) fn at_least(field: impl Into<String>, value: i64, min: i64, out: &mut Causes) {
    if value < min {
        let detail = if min == 0 {
            "must be greater than or equal to 0".to_string()
        } else {
            format!("must be greater than or equal to {min}")
        };
        out.push(invalid_value(field, value, &detail));
    }
}

/// A port number in 1..=65535.
pub(crate) fn port_number(field: impl Into<String>, port: i32, out: &mut Causes) {
    if !(1..=65535).contains(&port) {
        out.push(invalid_value(field, port, "must be between 1 and 65535, inclusive"));
    }
}

/// A protocol: `TCP`, `UDP` or `SCTP`.
pub(crate) fn protocol(field: impl Into<String>, protocol: Option<&str>, out: &mut Causes) {
    const ALLOWED: [&str; 3] = ["TCP", "UDP", "SCTP"];
    match protocol {
        None => {}
        Some(p) if ALLOWED.contains(&p) => {}
        Some(p) => out.push(Cause::not_supported(field, p, &ALLOWED)),
    }
}

/// An optional enum value.
pub(crate) fn one_of(field: impl Into<String>, value: Option<&str>, allowed: &[&str], out: &mut Causes) {
    if let Some(v) = value.filter(|v| !allowed.contains(v)) {
        out.push(Cause::not_supported(field, v, allowed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::defaults;
    use crate::apiserver::objects::{prepare, FieldValidation};
    use crate::apiserver::registry::RESOURCES;

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../../../examples/web.yaml");
        let mut seen = 0;
        for doc in serde_yaml_ng::Deserializer::from_str(text) {
            let value: Value = serde::Deserialize::deserialize(doc).expect("yaml document");
            let Some(kind) = value.get("kind").and_then(Value::as_str) else { continue };
            let info = RESOURCES.iter().find(|r| r.kind_name == kind).expect("served kind");
            let (mut obj, _) = prepare(info, value.clone(), FieldValidation::Strict).expect("typed");
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.entry("namespace").or_insert_with(|| Value::from("default"));
            }
            defaults::apply(info.kind, &mut obj);
            assert_eq!(validate(info, &obj), Vec::new(), "{kind}");
            seen += 1;
        }
        assert!(seen >= 2, "the example has a Deployment and a Service");
    }
}
