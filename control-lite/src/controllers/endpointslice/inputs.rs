//! What the EndpointSlice controller indexes and remembers about its
//! inputs, so every event and resync costs O(what changed). Pure.
//!
//! - Pods are indexed under every label (`LabelKey`), Services under the
//!   first pair of their selector: a Service selecting a pod has that pair
//!   among the pod's labels, so "the Services selecting these labels" is a
//!   lookup per label plus a check of the rest of each selector.
//! - `PodView` is the part of a pod a slice depends on; a pod update that
//!   leaves it unchanged (most status writes) queues nothing.
//! - `fingerprint` summarises a reconcile's inputs by resourceVersion; a
//!   reconcile seeing the fingerprint of its last no-op returns at once.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::render;
use crate::controllers::selector;

/// One label `key=value` of an object in `namespace`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelKey {
    /// Namespace of the labelled object.
    pub namespace: String,
    /// Label key.
    pub key: String,
    /// Label value.
    pub value: String,
}

fn label_key(namespace: &str, key: &str, value: &str) -> LabelKey {
    LabelKey { namespace: namespace.to_string(), key: key.to_string(), value: value.to_string() }
}

/// Index keys of a pod: each of its labels.
pub fn pod_keys(pod: &Pod) -> Vec<LabelKey> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    pod.metadata.labels.iter().flatten().map(|(k, v)| label_key(namespace, k, v)).collect()
}

/// Index key of a Service with managed endpoints: the first pair of its
/// selector (none for Services without a selector).
pub fn service_keys(svc: &Service) -> Vec<LabelKey> {
    let namespace = svc.metadata.namespace.as_deref().unwrap_or_default();
    render::service_selector(svc).and_then(|s| selector_key(namespace, s)).into_iter().collect()
}

/// The key to look up the pods a selector can match (its first pair).
pub fn selector_key(namespace: &str, selector: &BTreeMap<String, String>) -> Option<LabelKey> {
    selector.iter().next().map(|(k, v)| label_key(namespace, k, v))
}

/// The labels (of one namespace) that `keys` were computed from.
pub fn labels_of(keys: &[LabelKey]) -> BTreeMap<String, String> {
    keys.iter().map(|k| (k.key.clone(), k.value.clone())).collect()
}

/// True if every pair of `wanted` is among `labels` (a Service selector).
pub fn selects(wanted: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The part of a pod its Services' slices depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    labels: BTreeMap<String, String>,
    uid: Option<String>,
    ip: Option<String>,
    ready: bool,
    terminal: bool,
    terminating: bool,
    node: Option<String>,
    ports: Vec<(String, i32)>,
}

impl PodView {
    /// What `pod` contributes to slices.
    pub fn of(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        let ports = spec
            .into_iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| p.name.clone().map(|name| (name, p.container_port)))
            .collect();
        PodView {
            labels: selector::labels(&pod.metadata),
            uid: pod.metadata.uid.clone(),
            ip: pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
            ready: selector::is_ready(pod),
            terminal: matches!(selector::phase(pod), "Succeeded" | "Failed"),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            node: spec.and_then(|s| s.node_name.clone()),
            ports,
        }
    }
}

fn hash_meta(meta: &ObjectMeta, hasher: &mut DefaultHasher) {
    meta.name.hash(hasher);
    meta.uid.hash(hasher);
    meta.resource_version.hash(hasher);
}

/// A summary of one reconcile's inputs: the Service, the pods its selector
/// matches and its slices, each by name, uid and resourceVersion.
pub fn fingerprint(
    svc: Option<&Service>,
    pods: &[std::sync::Arc<Pod>],
    slices: &[std::sync::Arc<EndpointSlice>],
) -> u64 {
    let mut hasher = DefaultHasher::new();
    svc.map(|s| &s.metadata).hash_with(&mut hasher);
    pods.len().hash(&mut hasher);
    for pod in pods {
        hash_meta(&pod.metadata, &mut hasher);
    }
    slices.len().hash(&mut hasher);
    for slice in slices {
        hash_meta(&slice.metadata, &mut hasher);
    }
    hasher.finish()
}

trait HashWith {
    fn hash_with(self, hasher: &mut DefaultHasher);
}

impl HashWith for Option<&ObjectMeta> {
    fn hash_with(self, hasher: &mut DefaultHasher) {
        self.is_some().hash(hasher);
        if let Some(meta) = self {
            hash_meta(meta, hasher);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("pod")
    }

    fn web_pod(rv: &str, ready: &str) -> Pod {
        pod(json!({
            "metadata": {"name": "web-1", "namespace": "default", "uid": "u1", "resourceVersion": rv,
                         "labels": {"app": "web", "tier": "front"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 80}]}]},
            "status": {"podIP": "10.0.0.5", "conditions": [{"type": "Ready", "status": ready}]}
        }))
    }

    #[test]
    fn pods_are_keyed_by_every_label_and_services_by_their_first_selector_pair() {
        let keys = pod_keys(&web_pod("1", "True"));
        assert_eq!(keys, [label_key("default", "app", "web"), label_key("default", "tier", "front")]);
        assert_eq!(labels_of(&keys), selector::labels(&web_pod("1", "True").metadata));
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "s", "namespace": "default"},
            "spec": {"selector": {"tier": "front", "app": "web"}}
        }))
        .expect("svc");
        assert_eq!(service_keys(&svc), [label_key("default", "app", "web")]);
        let headless: Service =
            serde_json::from_value(json!({"metadata": {"name": "x", "namespace": "default"}, "spec": {}}))
                .expect("svc");
        assert!(service_keys(&headless).is_empty(), "no selector, no key");
    }

    #[test]
    fn selects_needs_every_pair() {
        let labels = selector::labels(&web_pod("1", "True").metadata);
        let wanted = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let cases = [
            (wanted(&[("app", "web")]), true),
            (wanted(&[("app", "web"), ("tier", "front")]), true),
            (wanted(&[("app", "web"), ("tier", "back")]), false),
            (wanted(&[("zone", "a")]), false),
        ];
        for (selector, want) in cases {
            assert_eq!(selects(&selector, &labels), want, "{selector:?}");
        }
    }

    #[test]
    fn pod_view_ignores_what_slices_do_not_show() {
        let base = PodView::of(&web_pod("1", "True"));
        assert_eq!(base, PodView::of(&web_pod("2", "True")), "a new resourceVersion alone");
        let mut annotated = web_pod("3", "True");
        annotated.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
        assert_eq!(base, PodView::of(&annotated), "annotations");
        assert_ne!(base, PodView::of(&web_pod("4", "False")), "readiness");
        let mut moved = web_pod("5", "True");
        moved.status.as_mut().expect("status").pod_ip = Some("10.0.0.6".into());
        assert_ne!(base, PodView::of(&moved), "pod IP");
        let mut relabelled = web_pod("6", "True");
        relabelled.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
        assert_ne!(base, PodView::of(&relabelled), "labels");
    }

    #[test]
    fn fingerprint_follows_resource_versions() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "s", "namespace": "default", "uid": "s1", "resourceVersion": "7"}
        }))
        .expect("svc");
        let pods = [Arc::new(web_pod("1", "True"))];
        let base = fingerprint(Some(&svc), &pods, &[]);
        assert_eq!(base, fingerprint(Some(&svc), &pods, &[]), "stable");
        assert_ne!(base, fingerprint(Some(&svc), &[Arc::new(web_pod("2", "True"))], &[]), "pod changed");
        assert_ne!(base, fingerprint(None, &pods, &[]), "service gone");
        assert_ne!(base, fingerprint(Some(&svc), &[], &[]), "pod gone");
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "s-abc", "namespace": "default", "resourceVersion": "9"},
            "addressType": "IPv4", "endpoints": []
        }))
        .expect("slice");
        assert_ne!(base, fingerprint(Some(&svc), &pods, &[Arc::new(slice)]), "slice appeared");
    }
}
