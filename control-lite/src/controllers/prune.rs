//! What the informers' stores drop from each object before keeping it.
//!
//! Owns: the pure choice of fields no controller and no scheduler plugin
//! reads, removed from every object as it arrives from the watch, so the
//! shared stores hold less. `managedFields` goes from every kind; a Pod
//! also loses its volumes and its containers' command, args, env,
//! mounts, probes, lifecycle and security context (names, images, ports and
//! resources stay: the scheduler and the EndpointSlice controller read
//! them). Must not: drop anything a component reads; the stores are never
//! written back (components patch named fields), so nothing pruned here can
//! reach the API.

use std::any::Any;

use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod};
use kube::Resource;

/// Removes from `object` what no component reads (see the module docs).
pub fn prune<K: Resource + Any>(object: &mut K) {
    object.meta_mut().managed_fields = None;
    if let Some(pod) = (object as &mut dyn Any).downcast_mut::<Pod>() {
        prune_pod(pod);
    }
}

fn prune_pod(pod: &mut Pod) {
    let Some(spec) = pod.spec.as_mut() else { return };
    // A `Volume` is ~2 KiB inline whatever its source, and no component reads them.
    spec.volumes = None;
    for container in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        prune_container(container);
    }
    for container in spec.ephemeral_containers.iter_mut().flatten() {
        prune_ephemeral(container);
    }
}

/// Clears what no component reads from a container of either type (they
/// share these fields but no trait).
macro_rules! prune_fields {
    ($c:expr) => {{
        let c = $c;
        c.command = None;
        c.args = None;
        c.env = None;
        c.env_from = None;
        c.volume_mounts = None;
        c.volume_devices = None;
        c.liveness_probe = None;
        c.readiness_probe = None;
        c.startup_probe = None;
        c.lifecycle = None;
        c.security_context = None;
    }};
}

fn prune_container(c: &mut Container) {
    prune_fields!(c);
}

fn prune_ephemeral(c: &mut EphemeralContainer) {
    prune_fields!(c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    #[test]
    fn a_pod_keeps_what_components_read_and_loses_the_rest() {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": {"app": "a"}, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}],
                "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {
                "nodeName": "n", "tolerations": [{"key": "k", "operator": "Exists"}],
                "volumes": [{"name": "v", "configMap": {"name": "cm"}}],
                "containers": [{"name": "c", "image": "i", "command": ["sh"], "args": ["-c"],
                    "env": [{"name": "A", "value": "1"}], "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "resources": {"requests": {"cpu": "10m"}},
                    "readinessProbe": {"tcpSocket": {"port": 8080}}}],
                "initContainers": [{"name": "i", "image": "j", "env": [{"name": "B", "value": "2"}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("pod");
        prune(&mut pod);
        let want: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": {"app": "a"}, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}]},
            "spec": {
                "nodeName": "n", "tolerations": [{"key": "k", "operator": "Exists"}],
                "containers": [{"name": "c", "image": "i", "ports": [{"name": "http", "containerPort": 8080}],
                    "resources": {"requests": {"cpu": "10m"}}}],
                "initContainers": [{"name": "i", "image": "j"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("want");
        assert_eq!(pod, want);
    }

    #[test]
    fn other_kinds_lose_only_managed_fields() {
        let mut map: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "m", "managedFields": [{"manager": "m", "operation": "Update"}]},
            "data": {"k": "v"}
        }))
        .expect("map");
        prune(&mut map);
        assert_eq!(map.metadata.managed_fields, None);
        assert_eq!(map.data.as_ref().and_then(|d| d.get("k")).map(String::as_str), Some("v"));
    }
}
