//! A container's environment, as upstream's kubelet builds it: `envFrom`
//! (ConfigMaps and Secrets, with a prefix; keys that are no valid variable
//! names are skipped and reported), then `env` in order (later entries win),
//! each `value` with `$(VAR)` expanded against the variables before it;
//! `valueFrom` the downward API (`fieldRef`, `resourceFieldRef`) or a
//! ConfigMap/Secret key, `optional` or not. [`expand`] is also applied to
//! command and args against the final environment. Service variables
//! (`enableServiceLinks`) come last and never replace the container's own.
//!
//! Must not: call the runtime or the API. ConfigMaps and Secrets the pod
//! references are fetched by the caller (see [`env_references`]) and passed in.

use std::collections::BTreeMap;

use bosun_proto::cri as api;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvFromSource, EnvVarSource, Pod, ResourceFieldSelector, Secret,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Why a container's environment cannot be built (the container waits
/// with `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A ConfigMap the container needs is missing.
    #[error("configmap {name:?} not found")]
    ConfigMapMissing {
        /// The ConfigMap name.
        name: String,
    },
    /// A Secret the container needs is missing.
    #[error("secret {name:?} not found")]
    SecretMissing {
        /// The Secret name.
        name: String,
    },
    /// A key is missing in a ConfigMap or Secret.
    #[error("couldn't find key {key} in {kind} {name:?}")]
    KeyMissing {
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
        /// Object name.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A `fieldRef` path the agent does not support.
    #[error("unsupported fieldRef {path:?} in env {env:?}")]
    UnsupportedField {
        /// The env variable.
        env: String,
        /// The field path.
        path: String,
    },
    /// A `resourceFieldRef` that names no container, an unknown resource or a bad quantity.
    #[error("env {env:?}: {detail}")]
    Resource {
        /// The env variable.
        env: String,
        /// What is wrong.
        detail: String,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a container's env may refer to beyond the pod itself.
#[derive(Debug, Clone, Default)]
pub struct EnvSources {
    /// The node IP (`status.hostIP`).
    pub host_ip: String,
    /// The pod IP once the sandbox has one.
    pub pod_ip: Option<String>,
    /// ConfigMaps of the pod's namespace, by name (only the referenced ones).
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets of the pod's namespace, by name (only the referenced ones).
    pub secrets: BTreeMap<String, Secret>,
    /// Node allocatable, the default of unset limits in `resourceFieldRef`
    /// (filled only when a container uses one).
    pub allocatable: Allocatable,
    /// Service variables (`crate::service_links`): usable in `$(VAR)`,
    /// added after the container's own unless it sets the same name.
    pub services: Vec<(String, String)>,
}

/// Node allocatable as `resourceFieldRef` needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocatable {
    /// CPU in millicores.
    pub cpu_milli: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
}

/// Names of the ConfigMaps and Secrets the pod's containers refer to in
/// `env` / `envFrom`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvReferences {
    /// ConfigMap names.
    pub config_maps: Vec<String>,
    /// Secret names.
    pub secrets: Vec<String>,
}

/// The ConfigMaps and Secrets referenced by any container's env/envFrom.
pub fn env_references(pod: &Pod) -> EnvReferences {
    let mut refs = EnvReferences::default();
    let containers = pod.spec.iter().flat_map(|s| s.init_containers.iter().flatten().chain(s.containers.iter()));
    for c in containers {
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                refs.config_maps.push(r.name.clone());
            }
            if let Some(r) = &from.secret_ref {
                refs.secrets.push(r.name.clone());
            }
        }
        for var in c.env.iter().flatten() {
            let Some(source) = &var.value_from else { continue };
            if let Some(r) = &source.config_map_key_ref {
                refs.config_maps.push(r.name.clone());
            }
            if let Some(r) = &source.secret_key_ref {
                refs.secrets.push(r.name.clone());
            }
        }
    }
    for list in [&mut refs.config_maps, &mut refs.secrets] {
        list.sort();
        list.dedup();
    }
    refs
}

/// Whether any container reads a `resourceFieldRef` (node allocatable is
/// then needed).
pub fn uses_resource_fields(pod: &Pod) -> bool {
    let containers = pod.spec.iter().flat_map(|s| s.init_containers.iter().flatten().chain(s.containers.iter()));
    containers
        .flat_map(|c| c.env.iter().flatten())
        .any(|e| e.value_from.as_ref().is_some_and(|v| v.resource_field_ref.is_some()))
}

/// The container's environment, in the order Kubernetes defines: `envFrom`
/// first, then `env` (later entries win, `$(VAR)` expanded against earlier).
pub fn resolve_env(pod: &Pod, container: &Container, sources: &EnvSources) -> Result<Vec<api::KeyValue>> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let set =
        |vars: &mut Vec<(String, String)>, key: String, value: String| match vars.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => vars.push((key, value)),
        };
    for from in container.env_from.iter().flatten() {
        for (key, value) in env_from_values(from, sources)? {
            if is_env_var_name(&key) {
                set(&mut vars, key, value);
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => {
                let services = sources.services.iter();
                let known: BTreeMap<&str, &str> =
                    services.chain(vars.iter()).map(|(k, v)| (k.as_str(), v.as_str())).collect();
                Some(expand(v, &known))
            }
            (None, Some(source)) => value_from(pod, &var.name, container, source, sources)?,
            (None, None) => Some(String::new()),
        };
        if let Some(value) = value {
            set(&mut vars, var.name.clone(), value);
        }
    }
    for (key, value) in &sources.services {
        if !vars.iter().any(|(k, _)| k == key) {
            vars.push((key.clone(), value.clone()));
        }
    }
    Ok(vars.into_iter().map(|(key, value)| api::KeyValue { key, value }).collect())
}

/// One `envFrom` source as `(prefixed key, value)`, invalid names included;
/// nothing when the source is missing and optional.
fn env_from_values(from: &EnvFromSource, sources: &EnvSources) -> Result<Vec<(String, String)>> {
    let prefix = from.prefix.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    if let Some(r) = &from.config_map_ref {
        match sources.config_maps.get(&r.name) {
            Some(cm) => out.extend(cm.data.iter().flatten().map(|(k, v)| (format!("{prefix}{k}"), v.clone()))),
            None if r.optional == Some(true) => {}
            None => return Err(Error::ConfigMapMissing { name: r.name.clone() }),
        }
    }
    if let Some(r) = &from.secret_ref {
        match sources.secrets.get(&r.name) {
            Some(secret) => out.extend(
                secret
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (format!("{prefix}{k}"), String::from_utf8_lossy(&v.0).into_owned())),
            ),
            None if r.optional == Some(true) => {}
            None => return Err(Error::SecretMissing { name: r.name.clone() }),
        }
    }
    Ok(out)
}

pub use bosun_resources::is_env_var_name;

/// The `envFrom` keys of `container` skipped as invalid variable names, one
/// upstream-worded Warning message per source (`InvalidEnvironmentVariableNames`).
pub fn invalid_env_from_keys(namespace: &str, container: &Container, sources: &EnvSources) -> Vec<String> {
    let mut out = Vec::new();
    for from in container.env_from.iter().flatten() {
        let Ok(values) = env_from_values(from, sources) else { continue };
        let mut bad: Vec<String> = values.into_iter().map(|(k, _)| k).filter(|k| !is_env_var_name(k)).collect();
        if bad.is_empty() {
            continue;
        }
        bad.sort();
        let (kind, name) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => ("configMap", r.name.as_str()),
            (None, Some(r)) => ("secret", r.name.as_str()),
            (None, None) => continue,
        };
        out.push(format!(
            "Keys [{}] from the EnvFrom {kind} {namespace}/{name} were skipped since they are considered invalid environment variable names.",
            bad.join(", ")
        ));
    }
    out
}

fn value_from(
    pod: &Pod,
    env: &str,
    container: &Container,
    source: &EnvVarSource,
    sources: &EnvSources,
) -> Result<Option<String>> {
    if let Some(field) = &source.field_ref {
        return field_value(pod, env, &field.field_path, sources).map(Some);
    }
    if let Some(selector) = &source.resource_field_ref {
        return resource_value(pod, container, env, selector, sources.allocatable).map(Some);
    }
    if let Some(r) = &source.config_map_key_ref {
        let optional = r.optional == Some(true);
        let Some(cm) = sources.config_maps.get(&r.name) else {
            return if optional { Ok(None) } else { Err(Error::ConfigMapMissing { name: r.name.clone() }) };
        };
        return match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(Error::KeyMissing { kind: "ConfigMap", name: r.name.clone(), key: r.key.clone() }),
        };
    }
    if let Some(r) = &source.secret_key_ref {
        let optional = r.optional == Some(true);
        let Some(secret) = sources.secrets.get(&r.name) else {
            return if optional { Ok(None) } else { Err(Error::SecretMissing { name: r.name.clone() }) };
        };
        return match secret.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(v) => Ok(Some(String::from_utf8_lossy(&v.0).into_owned())),
            None if optional => Ok(None),
            None => Err(Error::KeyMissing { kind: "Secret", name: r.name.clone(), key: r.key.clone() }),
        };
    }
    Ok(Some(String::new()))
}

fn field_value(pod: &Pod, env: &str, path: &str, sources: &EnvSources) -> Result<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let unsupported = || Error::UnsupportedField { env: env.to_string(), path: path.to_string() };
    let map_key =
        |prefix: &str| -> Option<String> { path.strip_prefix(prefix)?.strip_suffix("']").map(str::to_string) };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        // A host-network pod has the node's address.
        "status.podIP" | "status.podIPs" => match (&sources.pod_ip, spec.and_then(|s| s.host_network)) {
            (Some(ip), _) => ip.clone(),
            (None, Some(true)) => sources.host_ip.clone(),
            (None, _) => String::new(),
        },
        "status.hostIP" | "status.hostIPs" => sources.host_ip.clone(),
        _ => {
            if let Some(key) = map_key("metadata.labels['") {
                meta.labels.as_ref().and_then(|l| l.get(&key)).cloned().unwrap_or_default()
            } else if let Some(key) = map_key("metadata.annotations['") {
                meta.annotations.as_ref().and_then(|l| l.get(&key)).cloned().unwrap_or_default()
            } else {
                return Err(unsupported());
            }
        }
    };
    Ok(value)
}

/// `resourceFieldRef` as upstream: the named (or own) container's limit or
/// request divided by `divisor` (default 1) and rounded up; an unset limit
/// is node allocatable, an unset request is the limit when one is set.
fn resource_value(
    pod: &Pod,
    own: &Container,
    env: &str,
    selector: &ResourceFieldSelector,
    allocatable: Allocatable,
) -> Result<String> {
    let fail = |detail: String| Error::Resource { env: env.to_string(), detail };
    let container = match selector.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => own,
        Some(name) => pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(s.containers.iter()))
            .find(|c| c.name == name)
            .ok_or_else(|| fail(format!("container {name:?} not found")))?,
    };
    let (kind, resource) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| fail(format!("unsupported resource {:?}", selector.resource)))?;
    let cpu = resource == "cpu";
    let default_limit = match resource {
        "cpu" => allocatable.cpu_milli,
        "memory" => allocatable.memory,
        "ephemeral-storage" => allocatable.ephemeral_storage,
        _ => return Err(fail(format!("unsupported resource {:?}", selector.resource))),
    };
    let quantity = |map: Option<&BTreeMap<String, Quantity>>| -> Result<Option<i64>> {
        let Some(q) = map.and_then(|m| m.get(resource)) else { return Ok(None) };
        let parsed = if cpu { bosun_resources::milli_value(&q.0) } else { bosun_resources::plain_value(&q.0) };
        parsed.map(Some).map_err(|e| fail(e.to_string()))
    };
    let resources = container.resources.as_ref();
    let limit = quantity(resources.and_then(|r| r.limits.as_ref()))?;
    let value = match kind {
        "limits" => limit.unwrap_or(default_limit),
        "requests" => quantity(resources.and_then(|r| r.requests.as_ref()))?.or(limit).unwrap_or(0),
        _ => return Err(fail(format!("unsupported resource {:?}", selector.resource))),
    };
    let divisor = match selector.divisor.as_ref() {
        None => {
            if cpu {
                1000
            } else {
                1
            }
        }
        Some(q) if cpu => bosun_resources::milli_value(&q.0).map_err(|e| fail(e.to_string()))?,
        Some(q) => bosun_resources::plain_value(&q.0).map_err(|e| fail(e.to_string()))?,
    };
    if divisor <= 0 {
        return Err(fail(format!("divisor must be positive, got {divisor}")));
    }
    // Ceiling division without overflow (value >= 0 for valid specs).
    let quotient = value / divisor + i64::from(value % divisor > 0);
    Ok(quotient.to_string())
}

/// Expands `$(VAR)` references against `vars`; `$$` escapes a dollar;
/// unknown references stay as written (Kubernetes semantics).
pub fn expand(input: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos + 1..];
        if let Some(after) = tail.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(inner) = tail.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
