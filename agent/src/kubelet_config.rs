//! The kubelet's command line and `KubeletConfiguration` file, so `bosun
//! agent` can stand in for a kubelet in setups that start one.
//!
//! Pure: [`parse_config_file`] reads a `kubelet.config.k8s.io/v1beta1`
//! `KubeletConfiguration` (YAML or JSON) into the fields the agent honours
//! ([`HONOURED_FIELDS`]) and the names of the others (reported once by the
//! caller, never silently dropped); [`parse_node_labels`] and
//! [`parse_taints`] read `--node-labels` and `--register-with-taints`;
//! [`resolve`] combines flags, file and defaults — flags win, as upstream.
//!
//! Must not: read files or the environment itself (the caller passes text).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Taint;

/// `apiVersion` of the file.
pub const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
/// `kind` of the file.
pub const KIND: &str = "KubeletConfiguration";
/// The file's fields the agent honours; every other field is reported.
pub const HONOURED_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "address",
    "port",
    "maxPods",
    "podCIDR",
    "clusterDNS",
    "clusterDomain",
    "resolvConf",
    "staticPodPath",
    "containerRuntimeEndpoint",
    "registerWithTaints",
    "containerLogMaxSize",
    "containerLogMaxFiles",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "imageMinimumGCAge",
];

/// Default CRI endpoint (containerd's).
pub const DEFAULT_RUNTIME_ENDPOINT: &str = "/run/containerd/containerd.sock";
/// Default kubelet API port.
pub const DEFAULT_PORT: u16 = 10250;
/// Default pod capacity.
pub const DEFAULT_MAX_PODS: u32 = 110;
/// Default state directory.
pub const DEFAULT_ROOT_DIR: &str = "/var/lib/bosun/agent";
/// Default pod range of the node.
pub const DEFAULT_POD_CIDR: &str = "10.244.0.0/24";
/// Upstream's default `resolvConf`.
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";
/// Upstream's default cluster domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Errors of reading the kubelet command line or configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("kubelet config file: {0}")]
    File(String),
    #[error("kubelet config file field {field}: {message}")]
    Field { field: String, message: String },
    #[error("--node-labels {entry:?}: {message}")]
    Label { entry: String, message: String },
    #[error("--register-with-taints {entry:?}: {message}")]
    Taint { entry: String, message: String },
    #[error("containerLogMaxSize {value:?}: not a size (e.g. 10Mi)")]
    LogMaxSize { value: String },
    #[error("--cluster-dns {entry:?}: not an IP address")]
    ClusterDns { entry: String },
    #[error(transparent)]
    Gc(#[from] crate::gc::config::Error),
    #[error(transparent)]
    Eviction(#[from] crate::eviction::Error),
    #[error(transparent)]
    ApiAccess(#[from] crate::kubelet_tls::config::Error),
}

/// Result with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a `KubeletConfiguration` file sets, of the honoured fields.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileSettings {
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
    pub max_pods: Option<u32>,
    pub pod_cidr: Option<String>,
    pub cluster_dns: Option<Vec<IpAddr>>,
    pub cluster_domain: Option<String>,
    pub resolv_conf: Option<String>,
    pub static_pod_path: Option<PathBuf>,
    pub runtime_endpoint: Option<PathBuf>,
    pub register_with_taints: Option<Vec<Taint>>,
    pub container_log_max_size: Option<String>,
    pub container_log_max_files: Option<u32>,
    /// Image GC fields.
    pub gc: crate::gc::config::FileFields,
    pub cgroups: crate::pod_cgroups::config::CgroupFileSettings,
    pub eviction: crate::eviction::config::FileEviction,
    /// The kubelet API's TLS and access fields.
    pub api_access: crate::kubelet_tls::config::FileApiAccess,
}

/// A parsed file: what it sets, and the fields the agent does not honour.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ConfigFile {
    pub settings: FileSettings,
    /// Top-level fields outside [`HONOURED_FIELDS`], sorted.
    pub ignored: Vec<String>,
}

fn field<T: serde::de::DeserializeOwned>(
    map: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<T>> {
    match map.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| Error::Field { field: name.to_string(), message: e.to_string() }),
    }
}

/// A CRI endpoint as a socket path: `unix:///run/x.sock` or `/run/x.sock`.
pub fn endpoint_path(endpoint: &str) -> PathBuf {
    PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint))
}

/// Reads a `KubeletConfiguration` (YAML, or JSON which is YAML).
pub fn parse_config_file(text: &str) -> Result<ConfigFile> {
    let value: serde_json::Value = serde_yaml_ng::from_str(text).map_err(|e| Error::File(e.to_string()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(Error::File("not a mapping".into()));
    };
    let api_version: Option<String> = field(&map, "apiVersion")?;
    let kind: Option<String> = field(&map, "kind")?;
    if api_version.as_deref() != Some(API_VERSION) || kind.as_deref() != Some(KIND) {
        return Err(Error::File(format!(
            "apiVersion {api_version:?} kind {kind:?}: want apiVersion {API_VERSION} kind {KIND}"
        )));
    }
    let port: Option<i64> = field(&map, "port")?;
    let port = port
        .map(|p| u16::try_from(p).ok().filter(|p| *p > 0))
        .map(|p| p.ok_or_else(|| Error::Field { field: "port".into(), message: "must be 1..65535".into() }))
        .transpose()?;
    let max_pods: Option<i64> = field(&map, "maxPods")?;
    let max_pods = max_pods
        .map(|n| u32::try_from(n).map_err(|_| Error::Field { field: "maxPods".into(), message: "must be >= 0".into() }))
        .transpose()?;
    let dns: Option<Vec<String>> = field(&map, "clusterDNS")?;
    let cluster_dns = dns
        .map(|list| {
            list.iter()
                .map(|s| {
                    s.parse().map_err(|_| Error::Field {
                        field: "clusterDNS".into(),
                        message: format!("{s:?} is not an IP"),
                    })
                })
                .collect::<Result<Vec<IpAddr>>>()
        })
        .transpose()?;
    let endpoint: Option<String> = field(&map, "containerRuntimeEndpoint")?;
    let settings = FileSettings {
        address: field(&map, "address")?,
        port,
        max_pods,
        pod_cidr: field(&map, "podCIDR")?,
        cluster_dns,
        cluster_domain: field(&map, "clusterDomain")?,
        resolv_conf: field(&map, "resolvConf")?,
        static_pod_path: field(&map, "staticPodPath")?,
        runtime_endpoint: endpoint.as_deref().map(endpoint_path),
        register_with_taints: field(&map, "registerWithTaints")?,
        container_log_max_size: field(&map, "containerLogMaxSize")?,
        container_log_max_files: field(&map, "containerLogMaxFiles")?,
        gc: crate::gc::config::FileFields {
            image_gc_high_threshold_percent: field(&map, "imageGCHighThresholdPercent")?,
            image_gc_low_threshold_percent: field(&map, "imageGCLowThresholdPercent")?,
            image_minimum_gc_age: field(&map, "imageMinimumGCAge")?,
        },
        cgroups: crate::pod_cgroups::config::parse_file(&map)?,
        eviction: crate::eviction::config::FileEviction::from_document(&map)
            .map_err(|message| Error::Field { field: "eviction".into(), message })?,
        api_access: crate::kubelet_tls::config::parse_file(&map)?,
    };
    let honoured = |k: &str| {
        HONOURED_FIELDS.contains(&k)
            || crate::pod_cgroups::config::FIELDS.contains(&k)
            || crate::eviction::config::FIELDS.contains(&k)
            || crate::kubelet_tls::config::FIELDS.contains(&k)
    };
    let mut ignored: Vec<String> = map.keys().filter(|k| !honoured(k)).cloned().collect();
    ignored.extend(settings.api_access.ignored.iter().cloned());
    ignored.sort();
    Ok(ConfigFile { settings, ignored })
}

/// `--node-labels key=value,key2=value2`.
pub fn parse_node_labels(text: &str) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| Error::Label { entry: entry.to_string(), message: "want key=value".into() })?;
        if key.is_empty() {
            return Err(Error::Label { entry: entry.to_string(), message: "empty key".into() });
        }
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(labels)
}

/// `--register-with-taints key=value:Effect,key:Effect`.
pub fn parse_taints(text: &str) -> Result<Vec<Taint>> {
    let mut taints = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |message: &str| Error::Taint { entry: entry.to_string(), message: message.to_string() };
        let (key_value, effect) = entry.rsplit_once(':').ok_or_else(|| bad("want key[=value]:Effect"))?;
        if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
            return Err(bad("effect must be NoSchedule, PreferNoSchedule or NoExecute"));
        }
        let (key, value) = match key_value.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (key_value, None),
        };
        if key.is_empty() {
            return Err(bad("empty key"));
        }
        taints.push(Taint { key: key.to_string(), value, effect: effect.to_string(), time_added: None });
    }
    Ok(taints)
}

/// The kubelet-style flags as given (`None`: not on the command line).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
    pub max_pods: Option<u32>,
    pub pod_cidr: Option<String>,
    pub cluster_dns: Option<String>,
    pub cluster_domain: Option<String>,
    pub resolv_conf: Option<String>,
    pub pod_manifest_path: Option<PathBuf>,
    pub runtime_endpoint: Option<String>,
    pub register_with_taints: Option<String>,
    pub node_labels: Option<String>,
    pub root_dir: Option<PathBuf>,
    pub container_log_max_size: Option<String>,
    pub container_log_max_files: Option<u32>,
    /// GC flags.
    pub gc: crate::gc::config::Flags,
    pub cgroups: crate::pod_cgroups::config::CgroupFlags,
    pub eviction: crate::eviction::config::EvictionFlags,
    pub api_access: crate::kubelet_tls::config::ApiAccessFlags,
}

/// Flags, file and defaults combined.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Bind address of the kubelet API (`None`: the node IP).
    pub address: Option<IpAddr>,
    pub port: u16,
    pub max_pods: u32,
    pub pod_cidr: String,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    /// The host's resolver file for pods and the cluster DNS's upstreams
    /// (`None`: `resolvConf: ""`, host DNS off for pods, as upstream).
    pub resolv_conf: Option<PathBuf>,
    /// Parsed only: static pods are not run yet.
    pub pod_manifest_path: Option<PathBuf>,
    pub runtime_endpoint: PathBuf,
    pub taints: Vec<Taint>,
    pub node_labels: BTreeMap<String, String>,
    pub root_dir: PathBuf,
    /// Container log rotation.
    pub log_limits: crate::log_rotation::Limits,
    /// Container and image GC.
    pub gc: crate::gc::GcSettings,
    /// The pod cgroup tree.
    pub cgroups: crate::pod_cgroups::config::CgroupSettings,
    /// Eviction thresholds (hard, soft) and the pressure transition period.
    pub eviction: crate::eviction::Thresholds,
    /// The kubelet API's serving certificate and client CA.
    pub api_access: crate::kubelet_tls::config::ApiAccess,
}

/// Combines `flags` and `file`: a flag wins over the file, the file over
/// the default.
pub fn resolve(flags: &Flags, file: &FileSettings) -> Result<Settings> {
    let cluster_dns = match &flags.cluster_dns {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| Error::ClusterDns { entry: s.to_string() }))
            .collect::<Result<Vec<_>>>()?,
        None => file.cluster_dns.clone().unwrap_or_default(),
    };
    let taints = match &flags.register_with_taints {
        Some(text) => parse_taints(text)?,
        None => file.register_with_taints.clone().unwrap_or_default(),
    };
    let defaults = crate::log_rotation::DEFAULT_LIMITS;
    let max_size = match flags.container_log_max_size.as_ref().or(file.container_log_max_size.as_ref()) {
        Some(text) => crate::log_rotation::parse_size(text).ok_or_else(|| Error::LogMaxSize { value: text.clone() })?,
        None => defaults.max_size,
    };
    let max_files = flags
        .container_log_max_files
        .or(file.container_log_max_files)
        .map_or(defaults.max_files, |n| usize::try_from(n).unwrap_or(usize::MAX));
    Ok(Settings {
        address: flags.address.or(file.address),
        port: flags.port.or(file.port).unwrap_or(DEFAULT_PORT),
        max_pods: flags.max_pods.or(file.max_pods).unwrap_or(DEFAULT_MAX_PODS),
        pod_cidr: flags.pod_cidr.clone().or_else(|| file.pod_cidr.clone()).unwrap_or_else(|| DEFAULT_POD_CIDR.into()),
        cluster_dns,
        cluster_domain: flags
            .cluster_domain
            .clone()
            .or_else(|| file.cluster_domain.clone())
            .unwrap_or_else(|| DEFAULT_CLUSTER_DOMAIN.into()),
        resolv_conf: match flags.resolv_conf.as_ref().or(file.resolv_conf.as_ref()) {
            Some(path) if path.is_empty() => None,
            Some(path) => Some(path.into()),
            None => Some(DEFAULT_RESOLV_CONF.into()),
        },
        pod_manifest_path: flags.pod_manifest_path.clone().or_else(|| file.static_pod_path.clone()),
        runtime_endpoint: flags
            .runtime_endpoint
            .as_deref()
            .map(endpoint_path)
            .or_else(|| file.runtime_endpoint.clone())
            .unwrap_or_else(|| DEFAULT_RUNTIME_ENDPOINT.into()),
        taints,
        node_labels: flags.node_labels.as_deref().map(parse_node_labels).transpose()?.unwrap_or_default(),
        root_dir: flags.root_dir.clone().unwrap_or_else(|| DEFAULT_ROOT_DIR.into()),
        log_limits: crate::log_rotation::Limits { max_size, max_files },
        gc: crate::gc::config::resolve(&flags.gc, &file.gc)?,
        cgroups: crate::pod_cgroups::config::resolve(&flags.cgroups, &file.cgroups)?,
        eviction: crate::eviction::config::resolve(&flags.eviction, &file.eviction)?,
        api_access: crate::kubelet_tls::config::resolve(&flags.api_access, &file.api_access),
    })
}

#[cfg(test)]
#[path = "kubelet_config_tests.rs"]
mod tests;
