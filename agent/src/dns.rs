//! The sandbox's resolv.conf as CRI `DNSConfig`, decided as upstream's
//! kubelet does (`GetPodDNS`):
//!
//! - `ClusterFirst` (not host network) and `ClusterFirstWithHostNet`: the
//!   cluster DNS servers only, searches `<ns>.svc.<domain> svc.<domain>
//!   <domain>` then the host's, `options ndots:5`. Without cluster DNS
//!   servers this falls back to `Default`, as upstream.
//! - `Default` (and `ClusterFirst` on the host network): the host's
//!   resolv.conf (`--resolv-conf`); with `--resolv-conf ""`, `127.0.0.1`
//!   and search `.` (lookups effectively off), as upstream.
//! - `None`: nothing but `spec.dnsConfig`.
//!
//! `spec.dnsConfig` is then merged in for every policy (servers and searches
//! appended without duplicates, options by name, the pod's value winning),
//! and the result is cut to the resolver's limits: 3 nameservers, 32 search
//! domains, 2048 characters of search line.

use std::net::IpAddr;

use bosun_dns::ResolvConf;
use bosun_proto::cri as api;
use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

/// Nameservers a resolver uses at most (glibc's MAXNS).
pub const MAX_NAMESERVERS: usize = 3;
/// Search domains at most (upstream's MaxDNSSearchPaths).
pub const MAX_SEARCHES: usize = 32;
/// Characters of the search line at most (upstream's MaxDNSSearchListChars).
pub const MAX_SEARCH_CHARS: usize = 2048;
/// Options of a cluster-first pod (upstream's defaultDNSOptions).
pub const CLUSTER_OPTIONS: &[&str] = &["ndots:5"];

/// What the node knows about DNS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDnsSettings {
    /// `--cluster-dns` (or the in-agent server's address).
    pub cluster_dns: Vec<IpAddr>,
    /// `--cluster-domain`.
    pub cluster_domain: String,
    /// The host's resolv.conf; `None` for `--resolv-conf ""`.
    pub host: Option<ResolvConf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cluster,
    Host,
    None,
}

fn kind(pod: &Pod) -> Kind {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    match spec.and_then(|s| s.dns_policy.as_deref()) {
        Some("None") => Kind::None,
        Some("ClusterFirstWithHostNet") => Kind::Cluster,
        Some("Default") => Kind::Host,
        // ClusterFirst is the default policy.
        _ if host_network => Kind::Host,
        _ => Kind::Cluster,
    }
}

/// The resolv.conf of `pod`'s sandbox.
pub fn dns_config(pod: &Pod, settings: &PodDnsSettings) -> api::DnsConfig {
    let host = settings.host.clone().unwrap_or_default();
    let mut config = api::DnsConfig { servers: ips(&host.nameservers), searches: host.searches, options: host.options };
    match kind(pod) {
        Kind::None => config = api::DnsConfig::default(),
        Kind::Cluster if !settings.cluster_dns.is_empty() => {
            config.servers = ips(&settings.cluster_dns);
            config.searches = cluster_searches(pod, &settings.cluster_domain, config.searches);
            config.options = CLUSTER_OPTIONS.iter().map(|o| o.to_string()).collect();
        }
        Kind::Cluster | Kind::Host if settings.host.is_none() => {
            config.servers = vec!["127.0.0.1".into()];
            config.searches = vec![".".into()];
        }
        Kind::Cluster | Kind::Host => {}
    }
    if let Some(pod_config) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
        config = merge(config, pod_config);
    }
    fit_limits(config)
}

fn ips(list: &[IpAddr]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

fn cluster_searches(pod: &Pod, domain: &str, host: Vec<String>) -> Vec<String> {
    if domain.is_empty() {
        return host;
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut searches = vec![format!("{namespace}.svc.{domain}"), format!("svc.{domain}"), domain.to_string()];
    searches.extend(host);
    dedup(searches)
}

fn dedup(list: Vec<String>) -> Vec<String> {
    let mut seen = Vec::with_capacity(list.len());
    for item in list {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen
}

/// upstream's appendDNSConfig: servers and searches appended, options
/// merged by name (the pod's value wins), first-seen order kept.
fn merge(mut config: api::DnsConfig, pod: &PodDNSConfig) -> api::DnsConfig {
    config.servers.extend(pod.nameservers.iter().flatten().cloned());
    config.servers = dedup(config.servers);
    config.searches.extend(pod.searches.iter().flatten().cloned());
    config.searches = dedup(config.searches);
    let mut options: Vec<(String, Option<String>)> = config
        .options
        .iter()
        .map(|o| match o.split_once(':') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (o.clone(), None),
        })
        .collect();
    for option in pod.options.iter().flatten() {
        let Some(name) = option.name.clone().filter(|n| !n.is_empty()) else { continue };
        let value = option.value.clone().filter(|v| !v.is_empty());
        match options.iter_mut().find(|(n, _)| *n == name) {
            Some(existing) => existing.1 = value,
            None => options.push((name, value)),
        }
    }
    config.options = options
        .into_iter()
        .map(|(name, value)| match value {
            Some(value) => format!("{name}:{value}"),
            None => name,
        })
        .collect();
    config
}

fn fit_limits(mut config: api::DnsConfig) -> api::DnsConfig {
    config.servers.truncate(MAX_NAMESERVERS);
    let mut chars = 0usize;
    let mut kept = Vec::new();
    for search in config.searches {
        // Each domain costs its length plus a separating space.
        chars = chars.saturating_add(search.len()).saturating_add(usize::from(!kept.is_empty()));
        if kept.len() == MAX_SEARCHES || chars > MAX_SEARCH_CHARS {
            break;
        }
        kept.push(search);
    }
    config.searches = kept;
    config
}

#[cfg(test)]
mod tests;
