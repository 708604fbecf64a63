//! Pure translation of a Pod into CRI configs: `PodSandboxConfig` and
//! `ContainerConfig` (metadata, labels, log paths, ports, env (resolved in
//! [`crate::env`]), command and args expanded, resources).
//!
//! Must not: call the runtime or the API. ConfigMaps and Secrets the pod
//! references are fetched by the caller (see [`env_references`]) and passed in.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bosun_proto::cri as api;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};

pub use crate::env::{env_references, expand, resolve_env, EnvReferences, EnvSources};

use crate::labels;

/// Why a container config could not be built (reported as
/// `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The environment could not be resolved.
    #[error(transparent)]
    Env(#[from] crate::env::Error),
    /// A resource quantity does not parse.
    #[error("container {container:?}: {source}")]
    Quantity {
        /// The container.
        container: String,
        /// The parse error.
        source: bosun_resources::QuantityError,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Directory of a pod's logs: `<root>/pods/<ns>_<name>_<uid>`.
pub fn pod_log_dir(root_dir: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    root_dir.join("pods").join(format!("{namespace}_{name}_{uid}"))
}

/// The log directories of pod `uid` below `<root>/pods` (the name part of
/// `<ns>_<name>_<uid>` may be unknown to the caller, the uid never is).
pub fn pod_log_dirs_of(root_dir: &Path, uid: &str, entries: &[String]) -> Vec<PathBuf> {
    let suffix = format!("_{uid}");
    entries.iter().filter(|name| name.ends_with(&suffix)).map(|name| root_dir.join("pods").join(name)).collect()
}

/// Log path of one container attempt, relative to the pod log directory.
pub fn container_log_path(container: &str, attempt: u32) -> String {
    format!("{container}/{attempt}.log")
}

fn meta_of(pod: &Pod) -> (&str, &str, &str) {
    let m = &pod.metadata;
    (
        m.namespace.as_deref().unwrap_or("default"),
        m.name.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default(),
    )
}

/// Labels every CRI object of the pod carries.
pub fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let (namespace, name, uid) = meta_of(pod);
    HashMap::from([
        (labels::POD_NAME.to_string(), name.to_string()),
        (labels::POD_NAMESPACE.to_string(), namespace.to_string()),
        (labels::POD_UID.to_string(), uid.to_string()),
        (labels::MANAGED_BY.to_string(), "true".to_string()),
    ])
}

/// The sandbox config of `pod` for sandbox attempt `attempt`.
pub fn sandbox_config(
    pod: &Pod,
    attempt: u32,
    root_dir: &Path,
    dns: &crate::dns::PodDnsSettings,
) -> api::PodSandboxConfig {
    let (namespace, name, uid) = meta_of(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    labels.extend(pod_labels(pod));
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let hostname = match (&spec.hostname, host_network) {
        (_, true) => String::new(),
        (Some(h), false) => h.clone(),
        (None, false) => name.to_string(),
    };
    let port_mappings = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| api::PortMapping {
            protocol: protocol(p.protocol.as_deref()) as i32,
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.to_string(),
            uid: uid.to_string(),
            namespace: namespace.to_string(),
            attempt,
        }),
        hostname,
        log_directory: pod_log_dir(root_dir, namespace, name, uid).display().to_string(),
        dns_config: Some(crate::dns::dns_config(pod, dns)),
        port_mappings,
        labels: labels.into_iter().collect(),
        annotations: annotations.into_iter().collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(crate::security::namespace_options(&spec)),
                privileged: crate::security::has_privileged_container(&spec),
                ..Default::default()
            }),
            sysctls: crate::security::sysctls(&spec),
            ..Default::default()
        }),
        windows: None,
    }
}

fn protocol(name: Option<&str>) -> api::Protocol {
    match name {
        Some("UDP") => api::Protocol::Udp,
        Some("SCTP") => api::Protocol::Sctp,
        _ => api::Protocol::Tcp,
    }
}

/// The container config of `container` (attempt `attempt`) in `pod`.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    attempt: u32,
    sources: &EnvSources,
) -> Result<api::ContainerConfig> {
    let envs = resolve_env(pod, container, sources)?;
    let lookup: BTreeMap<&str, &str> = envs.iter().map(|kv| (kv.key.as_str(), kv.value.as_str())).collect();
    let expand_all =
        |items: &Option<Vec<String>>| -> Vec<String> { items.iter().flatten().map(|s| expand(s, &lookup)).collect() };
    let mut labels = pod_labels(pod);
    labels.insert(labels::CONTAINER_NAME.to_string(), container.name.clone());
    let resources = linux_resources(container.resources.as_ref())
        .map_err(|source| Error::Quantity { container: container.name.clone(), source })?;
    let image = container.image.clone().unwrap_or_default();
    Ok(api::ContainerConfig {
        metadata: Some(api::ContainerMetadata { name: container.name.clone(), attempt }),
        image: Some(api::ImageSpec { image: image.clone(), user_specified_image: image, ..Default::default() }),
        command: expand_all(&container.command),
        args: expand_all(&container.args),
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs,
        labels,
        annotations: HashMap::from([("io.kubernetes.container.restartCount".to_string(), attempt.to_string())]),
        log_path: container_log_path(&container.name, attempt),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(resources),
            security_context: Some(crate::security::container_security(
                pod.spec.as_ref().unwrap_or(&PodSpec::default()),
                container,
            )),
        }),
        ..Default::default()
    })
}

/// CRI resources from requests/limits: cpu shares from the cpu request
/// (`milli * 1024 / 1000`, within [`MIN_SHARES`, `MAX_SHARES`]), quota/period
/// from the cpu limit (period 100000 us, quota at least 1000 us and at most
/// [`MAX_QUOTA_US`]), memory limit in bytes (a negative one reads as none).
/// Every product saturates: the numbers come from users. `oom_score_adj` is
/// left to the runtime.
pub fn linux_resources(
    resources: Option<&ResourceRequirements>,
) -> std::result::Result<api::LinuxContainerResources, bosun_resources::QuantityError> {
    let get = |map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>, key: &str| {
        map.and_then(|m| m.get(key)).map(|q| q.0.clone())
    };
    let requests = resources.and_then(|r| r.requests.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());
    // An unset cpu request defaults to the limit (as the API server does).
    let cpu_request = get(requests, "cpu").or_else(|| get(limits, "cpu"));
    let mut out = api::LinuxContainerResources { cpu_shares: MIN_SHARES, ..Default::default() };
    if let Some(cpu) = cpu_request {
        out.cpu_shares = cpu_shares(bosun_resources::milli_value(&cpu)?);
    }
    if let Some(cpu) = get(limits, "cpu") {
        out.cpu_period = CPU_PERIOD_US;
        out.cpu_quota = cpu_quota(bosun_resources::milli_value(&cpu)?);
    }
    if let Some(memory) = get(limits, "memory") {
        out.memory_limit_in_bytes = bosun_resources::plain_value(&memory)?.max(0);
    }
    Ok(out)
}

/// The CFS period the agent uses (upstream's default).
pub const CPU_PERIOD_US: i64 = 100_000;
/// The kernel's smallest cpu shares value.
pub const MIN_SHARES: i64 = 2;
/// The kernel's largest cpu shares value.
pub const MAX_SHARES: i64 = 262_144;
/// The kernel's smallest CFS quota (1 ms).
pub const MIN_QUOTA_US: i64 = 1_000;
/// The kernel's largest CFS quota (`max_cfs_runtime`, about 2^44 ns).
pub const MAX_QUOTA_US: i64 = (1 << 44) / 1_000;

/// Cpu shares of a request in millicores, clamped to what the kernel accepts.
pub fn cpu_shares(milli: i64) -> i64 {
    (milli.saturating_mul(1024) / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// CFS quota of a limit in millicores for [`CPU_PERIOD_US`], clamped to what the kernel accepts.
pub fn cpu_quota(milli: i64) -> i64 {
    (milli.saturating_mul(CPU_PERIOD_US) / 1000).clamp(MIN_QUOTA_US, MAX_QUOTA_US)
}

#[cfg(test)]
#[path = "runtime_spec_tests.rs"]
mod tests;
