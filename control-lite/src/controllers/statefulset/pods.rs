//! The pods of a StatefulSet: `<name>-<ordinal>` with a stable hostname,
//! `subdomain` = `serviceName`, the pod-name/pod-index labels, and the
//! revision label naming the template they were made from. Pure.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::controllers::deployment::hash::pod_template_hash;
use crate::controllers::selector;

/// Label with the pod's own name (a Service can select one member).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label with the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Label with the revision (`<set>-<template hash>`) the pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The revision name of the set's current template: `<name>-<hash>`.
pub fn update_revision(sts: &StatefulSet) -> String {
    let spec = sts.spec.clone().unwrap_or_default();
    let collisions = sts.status.as_ref().and_then(|s| s.collision_count);
    format!("{}-{}", sts.metadata.name.as_deref().unwrap_or_default(), pod_template_hash(&spec.template, collisions))
}

/// The ordinal of a pod of set `set`, if its name is `<set>-<ordinal>`.
pub fn ordinal_of(set: &str, pod: &Pod) -> Option<i32> {
    let digits = pod.metadata.name.as_deref()?.strip_prefix(set)?.strip_prefix('-')?;
    // No sign, no leading zeros (except "0"), bounded length: what we create.
    let canonical = !digits.is_empty()
        && digits.len() <= 10
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse::<i32>().ok()).flatten()
}

/// The revision a pod carries.
pub fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.as_ref()?.get(REVISION_LABEL).map(String::as_str)
}

/// The pod with `ordinal` from the set's current template, at `revision`.
pub fn stateful_pod(sts: &StatefulSet, ordinal: i32, revision: &str) -> Pod {
    let template = sts.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    stateful_pod_from(sts, template, ordinal, revision)
}

/// The pod with `ordinal` from `template` (the set's, or an older revision's), at `revision`.
pub fn stateful_pod_from(sts: &StatefulSet, template: PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let set = sts.metadata.name.clone().unwrap_or_default();
    let spec = sts.spec.clone().unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let name = format!("{set}-{ordinal}");
    let mut labels = template_meta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let mut pod_spec = template.spec.unwrap_or_default();
    pod_spec.hostname = Some(name.clone());
    if let Some(service) = spec.service_name.filter(|s| !s.is_empty()) {
        pod_spec.subdomain = Some(service);
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: sts.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![selector::controller_ref(
                "apps/v1",
                "StatefulSet",
                &set,
                sts.metadata.uid.as_deref().unwrap_or_default(),
            )]),
            ..ObjectMeta::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}
