//! The sandbox's resolv.conf as CRI `DNSConfig`. bosun runs no cluster DNS,
//! so `ClusterFirst` and `ClusterFirstWithHostNet` fall back to `Default`
//! (the runtime copies the node's resolv.conf), as upstream's kubelet does
//! without `--cluster-dns`; `None` uses exactly `spec.dnsConfig`. A
//! `dnsConfig` with another policy is refused by [`crate::admission`].

use bosun_proto::cri as api;
use k8s_openapi::api::core::v1::PodSpec;

/// `Some` when the pod sets its own resolv.conf (`dnsPolicy: None`).
pub fn dns_config(spec: &PodSpec) -> Option<api::DnsConfig> {
    if spec.dns_policy.as_deref() != Some("None") {
        return None;
    }
    let config = spec.dns_config.clone().unwrap_or_default();
    let options = config.options.iter().flatten().map(|o| match o.value.as_deref() {
        Some(value) => format!("{}:{value}", o.name.as_deref().unwrap_or_default()),
        None => o.name.clone().unwrap_or_default(),
    });
    Some(api::DnsConfig {
        servers: config.nameservers.unwrap_or_default(),
        searches: config.searches.unwrap_or_default(),
        options: options.filter(|o| !o.is_empty()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_policy_none_sets_resolv_conf() {
        let spec = |v| -> PodSpec { serde_json::from_value(v).expect("spec") };
        assert_eq!(dns_config(&spec(json!({"containers": [], "dnsPolicy": "ClusterFirst"}))), None);
        let got = dns_config(&spec(json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["a.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}})));
        assert_eq!(
            got,
            Some(api::DnsConfig {
                servers: vec!["1.1.1.1".into()],
                searches: vec!["a.example".into()],
                options: vec!["ndots:2".into(), "edns0".into()],
            })
        );
    }
}
