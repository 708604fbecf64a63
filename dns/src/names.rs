//! What a query name means in the cluster domain (Kubernetes' DNS schema).
//!
//! Pure: [`classify`] maps a name to a [`ClusterName`]; the answerer looks
//! the parts up in the zone. Names compare lowercased, without the root dot.

use std::net::Ipv4Addr;

/// A query name, relative to the cluster domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterName {
    /// Not in the cluster domain: forwarded upstream.
    Outside,
    /// The cluster domain itself.
    Apex,
    /// `svc.<domain>` or `pod.<domain>`: exists, holds no records.
    Structural,
    /// `<ns>.svc.<domain>` or `<ns>.pod.<domain>`.
    Namespace { namespace: String },
    /// `<svc>.<ns>.svc.<domain>`.
    Service { namespace: String, service: String },
    /// `<host>.<svc>.<ns>.svc.<domain>`: an endpoint of a headless Service,
    /// by its hostname or its dashed IP.
    Endpoint { namespace: String, service: String, host: String },
    /// `_<port>._<proto>.<svc>.<ns>.svc.<domain>`.
    Srv { namespace: String, service: String, port: String, protocol: String },
    /// `<a-b-c-d>.<ns>.pod.<domain>`.
    Pod { ip: Ipv4Addr },
    /// In the cluster domain but not of the schema: NXDOMAIN.
    Unknown,
}

/// Classifies `name` (any case, with or without the root dot) against the
/// cluster `domain` (lowercase, no root dot).
pub fn classify(name: &str, domain: &str) -> ClusterName {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let relative = if name == domain {
        ""
    } else {
        match name.strip_suffix(domain).and_then(|rest| rest.strip_suffix('.')) {
            Some(rest) if !rest.is_empty() => rest,
            _ => return ClusterName::Outside,
        }
    };
    if relative.is_empty() {
        return ClusterName::Apex;
    }
    let labels: Vec<&str> = relative.split('.').rev().collect();
    let owned = |s: &str| s.to_string();
    match labels.as_slice() {
        ["svc" | "pod"] => ClusterName::Structural,
        ["svc" | "pod", namespace] => ClusterName::Namespace { namespace: owned(namespace) },
        ["svc", namespace, service] => ClusterName::Service { namespace: owned(namespace), service: owned(service) },
        ["svc", namespace, service, host] if !host.starts_with('_') => {
            ClusterName::Endpoint { namespace: owned(namespace), service: owned(service), host: owned(host) }
        }
        ["svc", namespace, service, protocol, port] => match (port.strip_prefix('_'), protocol.strip_prefix('_')) {
            (Some(port), Some(protocol)) if !port.is_empty() && !protocol.is_empty() => ClusterName::Srv {
                namespace: owned(namespace),
                service: owned(service),
                port: owned(port),
                protocol: owned(protocol),
            },
            _ => ClusterName::Unknown,
        },
        ["pod", _, dashed] => match dashed.replace('-', ".").parse() {
            Ok(ip) => ClusterName::Pod { ip },
            Err(_) => ClusterName::Unknown,
        },
        _ => ClusterName::Unknown,
    }
}

/// `10.244.0.5` as a DNS label: `10-244-0-5`.
pub fn dashed(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        std::net::IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn classifies_the_kubernetes_dns_schema() {
        let d = "cluster.local";
        let cases = [
            ("example.com.", ClusterName::Outside),
            ("local.", ClusterName::Outside),
            ("xcluster.local", ClusterName::Outside),
            ("cluster.local.", ClusterName::Apex),
            ("svc.cluster.local.", ClusterName::Structural),
            ("default.svc.cluster.local.", ClusterName::Namespace { namespace: s("default") }),
            ("Web.Default.SVC.cluster.local.", ClusterName::Service { namespace: s("default"), service: s("web") }),
            (
                "web-0.db.prod.svc.cluster.local",
                ClusterName::Endpoint { namespace: s("prod"), service: s("db"), host: s("web-0") },
            ),
            (
                "_http._tcp.web.default.svc.cluster.local.",
                ClusterName::Srv { namespace: s("default"), service: s("web"), port: s("http"), protocol: s("tcp") },
            ),
            ("_http.web.default.svc.cluster.local.", ClusterName::Unknown),
            ("http.tcp.web.default.svc.cluster.local.", ClusterName::Unknown),
            ("10-244-0-5.default.pod.cluster.local.", ClusterName::Pod { ip: Ipv4Addr::new(10, 244, 0, 5) }),
            ("10-244-0.default.pod.cluster.local.", ClusterName::Unknown),
            ("a.b.c.d.e.svc.cluster.local.", ClusterName::Unknown),
            ("web.default.cluster.local.", ClusterName::Unknown),
        ];
        for (name, want) in cases {
            assert_eq!(classify(name, d), want, "{name}");
        }
    }

    #[test]
    fn dashes_addresses() {
        assert_eq!(dashed("10.244.0.5".parse().unwrap()), "10-244-0-5");
        assert_eq!(dashed("fd00::5".parse().unwrap()), "fd00--5");
    }
}
