//! ServiceAccount admission for pods (upstream's `ServiceAccount` admission
//! plugin) and the per-namespace objects pods' tokens need.
//!
//! Owns: defaulting a new pod's `spec.serviceAccountName` to `default`;
//! refusing a pod whose ServiceAccount does not exist; unless
//! `automountServiceAccountToken: false` (pod first, then the
//! ServiceAccount), adding the projected volume `kube-api-access-<5>`
//! (a bound token, the `kube-root-ca.crt` ConfigMap's `ca.crt`, the
//! namespace) mounted read-only at [`MOUNT_PATH`] in every container that
//! does not mount something there already. Mirror pods are left alone.
//! [`admit_pod`] decides (pure); [`admit`] reads the ServiceAccount.
//!
//! A new namespace gets its `default` ServiceAccount and `kube-root-ca.crt`
//! ConfigMap written with it ([`ensure_namespace_defaults`]), so a pod
//! created right after its namespace is admitted (upstream leaves a window
//! until its controllers catch up). The controller
//! (`controllers::serviceaccounts`) keeps both present afterwards.

use serde_json::{json, Value};

use super::crud;
use super::objects::{meta_str, random_suffix, WriteOptions};
use super::registry::{by_kind, Kind};
use super::status::{ApiError, Result};
use super::ApiState;

/// The ServiceAccount every namespace has.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// The ConfigMap with the cluster CA in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// Its key.
pub const ROOT_CA_KEY: &str = "ca.crt";
/// Where the token volume is mounted.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Name prefix of the token volume.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// Lifetime the token volume asks for (upstream's 3607: the kubelet's cue).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// The annotation of mirror pods.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The projected token volume named `name`.
pub fn token_volume(name: &str) -> Value {
    json!({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": ROOT_CA_KEY, "path": ROOT_CA_KEY}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
    ]}})
}

/// Whether `pod` is a mirror pod (a node's static pod).
fn is_mirror(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations").and_then(|a| a.get(MIRROR_ANNOTATION)).is_some()
}

/// The ServiceAccount a pod runs as (`default` when unset).
pub fn service_account_of(pod: &Value) -> String {
    let name = pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or_default();
    let legacy = pod.pointer("/spec/serviceAccount").and_then(Value::as_str).unwrap_or_default();
    [name, legacy].into_iter().find(|n| !n.is_empty()).unwrap_or(DEFAULT_SERVICE_ACCOUNT).to_string()
}

/// Admits a new pod in JSON form: `service_account` is what the store holds
/// under its ServiceAccount's name, `suffix` the volume name's random part.
/// Refused (the message) when the ServiceAccount does not exist.
pub fn admit_pod(pod: &mut Value, service_account: Option<&Value>, suffix: &str) -> std::result::Result<(), String> {
    if is_mirror(pod) {
        return Ok(());
    }
    let name = service_account_of(pod);
    let ns = meta_str(pod, "namespace").unwrap_or("default").to_string();
    let Some(sa) = service_account else {
        return Err(format!("error looking up service account {ns}/{name}: serviceaccount \"{name}\" not found"));
    };
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
    spec.insert("serviceAccountName".into(), json!(name));
    spec.insert("serviceAccount".into(), json!(name));
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| sa.get("automountServiceAccountToken").and_then(Value::as_bool))
        .unwrap_or(true);
    if !automount {
        return Ok(());
    }
    let volume = format!("{VOLUME_PREFIX}{suffix}");
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        for container in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let mounts = container.as_object_mut().map(|c| c.entry("volumeMounts").or_insert_with(|| json!([])));
            let Some(mounts) = mounts.and_then(Value::as_array_mut) else { continue };
            if mounts.iter().any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH)) {
                continue;
            }
            mounts.push(json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH}));
            mounted = true;
        }
    }
    if mounted {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(volumes) = volumes.as_array_mut() {
            volumes.push(token_volume(&volume));
        }
    }
    Ok(())
}

/// ServiceAccount admission of a new pod (see [`admit_pod`]); 403 as upstream.
pub async fn admit(state: &ApiState, pod: &mut Value) -> Result<()> {
    if is_mirror(pod) {
        return Ok(());
    }
    let ns = meta_str(pod, "namespace").unwrap_or("default").to_string();
    let info = by_kind(Kind::ServiceAccount);
    let key = info.key(Some(&ns), &service_account_of(pod));
    let stored = state.store.get(&key).await.map_err(|e| ApiError::store("get", &key, e))?;
    let sa = stored.and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok());
    admit_pod(pod, sa.as_ref(), &random_suffix()).map_err(|reason| {
        let name = meta_str(pod, "name").or_else(|| meta_str(pod, "generateName")).unwrap_or_default();
        ApiError::Forbidden(format!("pods \"{name}\" is forbidden: {reason}"))
    })
}

/// The `default` ServiceAccount.
pub fn default_service_account() -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEFAULT_SERVICE_ACCOUNT}})
}

/// The `kube-root-ca.crt` ConfigMap holding `ca_pem`.
pub fn root_ca_configmap(ca_pem: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": ROOT_CA_CONFIGMAP,
            "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
        "data": {ROOT_CA_KEY: ca_pem}})
}

/// Writes namespace `ns`'s `default` ServiceAccount and `kube-root-ca.crt`
/// ConfigMap unless they exist.
pub async fn ensure_namespace_defaults(state: &ApiState, ns: &str) -> Result<()> {
    let mut objects = vec![(Kind::ServiceAccount, default_service_account())];
    if let Some(ca) = &state.root_ca_pem {
        objects.push((Kind::ConfigMap, root_ca_configmap(ca)));
    }
    for (kind, obj) in objects {
        match Box::pin(crud::create(state, by_kind(kind), Some(ns), obj, WriteOptions::default())).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) | Err(ApiError::NamespaceTerminating { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
