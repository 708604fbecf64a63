//! The pod a DaemonSet runs on one node, and whether a node should run it.
//!
//! Eligibility uses the scheduler's own predicates (node affinity and
//! `nodeSelector`, taints and tolerations); the pod carries upstream's
//! automatic tolerations and a required node affinity on `metadata.name`,
//! so the scheduler places it on exactly that node. Pure.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::controllers::selector;
use crate::scheduler::plugins::{node_affinity, taints};

/// Label carrying the hash of the template a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The node field the daemon pod's affinity pins.
const NODE_NAME_FIELD: &str = "metadata.name";

/// Tolerations every daemon pod gets (upstream `AddOrUpdateDaemonPodTolerations`):
/// (key, effect); all with operator `Exists`.
const AUTO_TOLERATIONS: [(&str, &str); 6] = [
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    (taints::UNSCHEDULABLE_TAINT, "NoSchedule"),
];
/// Added for `hostNetwork` pods only.
const NETWORK_UNAVAILABLE: (&str, &str) = ("node.kubernetes.io/network-unavailable", "NoSchedule");

/// Whether a node should run the daemon pod, and whether one already there may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eligibility {
    /// Matches the selector/affinity and tolerates every NoSchedule/NoExecute taint.
    pub should_run: bool,
    /// Matches the selector/affinity and tolerates every NoExecute taint.
    pub may_stay: bool,
}

/// The node a daemon pod is bound or pinned to.
pub fn node_of(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(node);
    }
    let required =
        spec.affinity.as_ref()?.node_affinity.as_ref()?.required_during_scheduling_ignored_during_execution.as_ref()?;
    required
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == NODE_NAME_FIELD && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().map(String::as_str))
}

/// Whether `node` should run (and may keep) the pod `template_pod` describes.
pub fn eligibility(template_pod: &Pod, node: &Node) -> Eligibility {
    if !node_affinity::matches_required(template_pod, node) {
        return Eligibility { should_run: false, may_stay: false };
    }
    let tolerations = template_pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
    let node_taints: &[Taint] = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    let untolerated = |effects: &[&str]| {
        node_taints.iter().any(|t| effects.contains(&t.effect.as_str()) && !taints::tolerated(t, tolerations))
    };
    let unschedulable = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) && {
        let taint = Taint { key: taints::UNSCHEDULABLE_TAINT.into(), effect: "NoSchedule".into(), ..Taint::default() };
        !taints::tolerated(&taint, tolerations)
    };
    Eligibility {
        should_run: !untolerated(&["NoSchedule", "NoExecute"]) && !unschedulable,
        may_stay: !untolerated(&["NoExecute"]),
    }
}

/// The template as a pod (with the automatic tolerations), for eligibility checks.
pub fn template_pod(ds: &DaemonSet) -> Pod {
    let template = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    let extra = host_network.then_some(NETWORK_UNAVAILABLE);
    for (key, effect) in AUTO_TOLERATIONS.into_iter().chain(extra) {
        let present = tolerations.iter().any(|t| {
            t.key.as_deref() == Some(key)
                && t.effect.as_deref() == Some(effect)
                && t.operator.as_deref() == Some("Exists")
        });
        if !present {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                ..Toleration::default()
            });
        }
    }
    Pod { metadata: template.metadata.unwrap_or_default(), spec: Some(spec), status: None }
}

/// The daemon pod for `node`: the template with the automatic tolerations,
/// pinned to `node` by a required node affinity on `metadata.name`
/// (replacing the template's required terms, which eligibility already
/// checked), labelled with the template `hash`, owned by `ds`.
pub fn daemon_pod(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let mut pod = template_pod(ds);
    let name = ds.metadata.name.clone().unwrap_or_default();
    let mut labels = pod.metadata.labels.take().unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), hash.into());
    pod.metadata = ObjectMeta {
        generate_name: Some(format!("{name}-")),
        namespace: ds.metadata.namespace.clone(),
        labels: Some(labels),
        annotations: pod.metadata.annotations.take(),
        finalizers: pod.metadata.finalizers.take(),
        owner_references: Some(vec![selector::controller_ref(
            "apps/v1",
            "DaemonSet",
            &name,
            ds.metadata.uid.as_deref().unwrap_or_default(),
        )]),
        ..ObjectMeta::default()
    };
    let spec = pod.spec.get_or_insert_with(Default::default);
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: NODE_NAME_FIELD.into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
            match_expressions: None,
        }],
    });
    pod
}

/// The template hash a pod carries.
pub fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.as_ref()?.get(REVISION_LABEL).map(String::as_str)
}
