//! The node → pod → Secret/ConfigMap/PVC graph the Node authorizer reads:
//! which pods are bound to which node, and what each pod references. Kept
//! current from pod events ([`NodeGraph::apply`]); a pure structure.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

/// The store prefix of pods.
pub const PODS_PREFIX: &str = "/registry/core/pods/";

/// What one bound pod references.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodRefs {
    /// The node the pod is bound to.
    pub node: String,
    /// The pod's namespace.
    pub namespace: String,
    /// Secret names (volumes, projected sources, env, envFrom, imagePullSecrets).
    pub secrets: BTreeSet<String>,
    /// ConfigMap names (volumes, projected sources, env, envFrom).
    pub configmaps: BTreeSet<String>,
    /// PersistentVolumeClaim names.
    pub pvcs: BTreeSet<String>,
    /// The ServiceAccount the pod runs as (`default` when unset).
    pub service_account: String,
}

/// Pods bound to nodes and their references.
#[derive(Debug, Default)]
pub struct NodeGraph {
    pods: HashMap<String, PodRefs>,
    by_node: HashMap<String, HashSet<String>>,
}

fn name_at(v: &Value, ptr: &str) -> Option<String> {
    v.pointer(ptr).and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from)
}

fn each<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// The references of a pod (`None` if it is not bound to a node).
pub fn pod_refs(pod: &Value) -> Option<PodRefs> {
    let node = name_at(pod, "/spec/nodeName")?;
    let mut refs = PodRefs {
        node,
        namespace: name_at(pod, "/metadata/namespace").unwrap_or_default(),
        service_account: name_at(pod, "/spec/serviceAccountName").unwrap_or_else(|| "default".into()),
        ..PodRefs::default()
    };
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    for volume in each(spec, "volumes") {
        refs.secrets.extend(name_at(volume, "/secret/secretName"));
        refs.configmaps.extend(name_at(volume, "/configMap/name"));
        refs.pvcs.extend(name_at(volume, "/persistentVolumeClaim/claimName"));
        for source in volume.pointer("/projected/sources").and_then(Value::as_array).into_iter().flatten() {
            refs.secrets.extend(name_at(source, "/secret/name"));
            refs.configmaps.extend(name_at(source, "/configMap/name"));
        }
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for container in each(spec, list) {
            for env in each(container, "env") {
                refs.secrets.extend(name_at(env, "/valueFrom/secretKeyRef/name"));
                refs.configmaps.extend(name_at(env, "/valueFrom/configMapKeyRef/name"));
            }
            for from in each(container, "envFrom") {
                refs.secrets.extend(name_at(from, "/secretRef/name"));
                refs.configmaps.extend(name_at(from, "/configMapRef/name"));
            }
        }
    }
    for pull in each(spec, "imagePullSecrets") {
        refs.secrets.extend(name_at(pull, "/name"));
    }
    Some(refs)
}

/// The kinds a pod may reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// core/v1 Secret.
    Secret,
    /// core/v1 ConfigMap.
    ConfigMap,
    /// core/v1 PersistentVolumeClaim.
    Pvc,
    /// core/v1 ServiceAccount (the one a pod runs as).
    ServiceAccount,
}

impl NodeGraph {
    /// Records the pod at store key `key` (`None`: deleted).
    pub fn apply(&mut self, key: &str, pod: Option<&Value>) {
        if let Some(old) = self.pods.remove(key) {
            if let Some(set) = self.by_node.get_mut(&old.node) {
                set.remove(key);
                if set.is_empty() {
                    self.by_node.remove(&old.node);
                }
            }
        }
        if let Some(refs) = pod.and_then(pod_refs) {
            self.by_node.entry(refs.node.clone()).or_default().insert(key.to_string());
            self.pods.insert(key.to_string(), refs);
        }
    }

    /// Forgets every pod (before a relist).
    pub fn clear(&mut self) {
        self.pods.clear();
        self.by_node.clear();
    }

    /// Whether pod `namespace/name` is bound to `node`.
    pub fn pod_on_node(&self, node: &str, namespace: &str, name: &str) -> bool {
        self.pod(namespace, name).is_some_and(|p| p.node == node)
    }

    /// The references of bound pod `namespace/name`.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodRefs> {
        self.pods.get(&format!("{PODS_PREFIX}{namespace}/{name}"))
    }

    /// Whether a pod bound to `node` references the object `namespace/name` of `kind`.
    pub fn node_references(&self, node: &str, kind: RefKind, namespace: &str, name: &str) -> bool {
        let Some(keys) = self.by_node.get(node) else { return false };
        keys.iter().filter_map(|k| self.pods.get(k)).any(|p| {
            p.namespace == namespace
                && match kind {
                    RefKind::Secret => p.secrets.contains(name),
                    RefKind::ConfigMap => p.configmaps.contains(name),
                    RefKind::Pvc => p.pvcs.contains(name),
                    RefKind::ServiceAccount => p.service_account == name,
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn graph_follows_binding_references_and_deletes() {
        let pod = json!({"metadata": {"namespace": "d", "name": "p"}, "spec": {"nodeName": "n1",
            "volumes": [{"name": "v", "secret": {"secretName": "s1"}},
                {"name": "w", "projected": {"sources": [{"configMap": {"name": "c2"}}]}},
                {"name": "x", "persistentVolumeClaim": {"claimName": "data"}}],
            "containers": [{"name": "c", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "c1"}}]}],
            "imagePullSecrets": [{"name": "pull"}]}});
        let mut g = NodeGraph::default();
        let key = format!("{PODS_PREFIX}d/p");
        g.apply(&key, Some(&pod));
        for (kind, name, want) in [
            (RefKind::Secret, "s1", true),
            (RefKind::Secret, "s2", true),
            (RefKind::Secret, "pull", true),
            (RefKind::Secret, "other", false),
            (RefKind::ConfigMap, "c1", true),
            (RefKind::ConfigMap, "c2", true),
            (RefKind::Pvc, "data", true),
        ] {
            assert_eq!(g.node_references("n1", kind, "d", name), want, "{kind:?} {name}");
        }
        assert!(!g.node_references("n2", RefKind::Secret, "d", "s1"));
        assert!(!g.node_references("n1", RefKind::Secret, "e", "s1"));
        assert!(g.pod_on_node("n1", "d", "p"));
        assert!(g.node_references("n1", RefKind::ServiceAccount, "d", "default"), "runs as default");
        assert!(!g.node_references("n1", RefKind::ServiceAccount, "d", "builder"));
        g.apply(&key, None);
        assert!(!g.node_references("n1", RefKind::Secret, "d", "s1"));
        let unbound = json!({"metadata": {"namespace": "d", "name": "p"}, "spec": {}});
        g.apply(&key, Some(&unbound));
        assert!(!g.pod_on_node("n1", "d", "p"));
    }
}
