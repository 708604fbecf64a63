//! Approving kubelet serving certificates, only with `bosun control
//! --approve-kubelet-serving-certificates` (upstream approves none of these
//! automatically: a serving certificate vouches for names, and only the
//! Node object says which names are the node's). A request is approved when
//! it is undecided, for `kubernetes.io/kubelet-serving`, made by the node
//! itself (requester = CN `system:node:<name>`, in `system:nodes`), O
//! exactly `system:nodes`, usages `server auth` with at most `digital
//! signature` and `key encipherment`, and every SAN (at least one; DNS and
//! IP only) is one of the addresses of Node `<name>` (`Hostname`,
//! `InternalDNS`, `ExternalDNS`; `InternalIP`, `ExternalIP`). A node writes
//! its own addresses, so they are not trusted alone ([`names_are_safe`]):
//! wildcards, names that are not DNS-1123 subdomains, `localhost`, the
//! apiserver's and in-cluster names (`kubernetes…`, `…svc…`,
//! `…cluster.local`), loopback, unspecified, link-local and multicast IPs,
//! and any name or IP another Node reports or a Service's ClusterIP are
//! never approved. Anything else stays pending for a
//! human.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::Value;

use super::approve::{usages, NODES_GROUP};
use super::sign::KUBELET_SERVING_SIGNER;
use crate::apiserver::certificates::{has_condition, request_bytes, APPROVED, DENIED, FAILED};
use crate::auth::csr::{self, Request};
use crate::auth::node::NODE_USER_PREFIX;

/// The Approved condition's message.
pub const MESSAGE: &str = "Auto approving kubelet serving certificate: its names are the node's own addresses.";

const SERVING_USAGES: &[&str] = &["server auth", "digital signature", "key encipherment"];

/// The node an undecided serving request `obj` is for, with the parsed
/// request, when it is one the node made for itself in the right shape.
pub fn candidate(obj: &Value) -> Option<(String, Request)> {
    if has_condition(obj, APPROVED) || has_condition(obj, DENIED) || has_condition(obj, FAILED) {
        return None;
    }
    if obj.pointer("/spec/signerName").and_then(Value::as_str) != Some(KUBELET_SERVING_SIGNER) {
        return None;
    }
    let req = request_bytes(obj).and_then(|b| csr::parse_pem(&b).ok())?;
    let node = req.common_name.strip_prefix(NODE_USER_PREFIX).filter(|n| !n.is_empty())?.to_string();
    let requester = obj.pointer("/spec/username").and_then(Value::as_str).unwrap_or_default();
    let in_nodes = obj
        .pointer("/spec/groups")
        .and_then(Value::as_array)
        .is_some_and(|groups| groups.iter().any(|g| g.as_str() == Some(NODES_GROUP)));
    let usages = usages(obj);
    let shaped = requester == req.common_name
        && in_nodes
        && req.organizations == [NODES_GROUP]
        && usages.contains(&"server auth")
        && usages.iter().all(|u| SERVING_USAGES.contains(u))
        && (!req.dns_names.is_empty() || !req.ips.is_empty())
        && req.other_sans == 0;
    shaped.then_some((node, req))
}

/// Whether every SAN of `req` is one of `node` addresses (`status.addresses`).
pub fn names_are_the_nodes(req: &Request, node: &Value) -> Result<(), String> {
    let addresses: Vec<(&str, &str)> = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| Some((a.get("type")?.as_str()?, a.get("address")?.as_str()?)))
        .collect();
    let dns_ok = |name: &str| {
        addresses.iter().any(|(t, a)| matches!(*t, "Hostname" | "InternalDNS" | "ExternalDNS") && *a == name)
    };
    let ip_ok = |ip: &IpAddr| {
        addresses
            .iter()
            .any(|(t, a)| matches!(*t, "InternalIP" | "ExternalIP") && a.parse::<IpAddr>().ok().as_ref() == Some(ip))
    };
    if let Some(name) = req.dns_names.iter().find(|n| !dns_ok(n)) {
        return Err(format!("DNS name {name:?} is not an address of the node"));
    }
    if let Some(ip) = req.ips.iter().find(|ip| !ip_ok(ip)) {
        return Err(format!("IP {ip} is not an address of the node"));
    }
    Ok(())
}

/// Whether no SAN of `req` is a name or IP no node may have in a serving
/// certificate (see the module docs): `taken_ips` and `taken_names` are
/// other Nodes' names and addresses and Service ClusterIPs.
pub fn names_are_safe(req: &Request, taken_ips: &HashSet<IpAddr>, taken_names: &HashSet<String>) -> Result<(), String> {
    for name in &req.dns_names {
        let lower = name.to_ascii_lowercase();
        let first = lower.split('.').next().unwrap_or_default();
        let in_cluster = lower.split('.').any(|label| label == "svc") || lower.ends_with("cluster.local");
        if !dns_subdomain(name) || lower == "localhost" || first.starts_with("kubernetes") || in_cluster {
            return Err(format!("DNS name {name:?} is never a node's"));
        }
        if taken_names.contains(&lower) {
            return Err(format!("DNS name {name:?} is another node's"));
        }
    }
    for ip in &req.ips {
        let local = match ip {
            IpAddr::V4(v4) => v4.is_link_local() || v4.is_broadcast(),
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        };
        if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || local {
            return Err(format!("IP {ip} is never a node's"));
        }
        if taken_ips.contains(ip) {
            return Err(format!("IP {ip} belongs to another node or a Service"));
        }
    }
    Ok(())
}

/// A lowercase RFC 1123 subdomain (no wildcard), at most 253 bytes.
fn dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    fn obj(cn: &str, orgs: &[&str], sans: &[&str], usages: &[&str], username: &str, groups: &[&str]) -> Value {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
        let mut dn = rcgen::DistinguishedName::new();
        for o in orgs {
            dn.push(rcgen::DnType::OrganizationName, *o);
        }
        dn.push(rcgen::DnType::CommonName, cn);
        params.distinguished_name = dn;
        let pem = params.serialize_request(&key).expect("csr").pem().expect("pem");
        json!({"spec": {"request": base64::engine::general_purpose::STANDARD.encode(pem),
            "signerName": KUBELET_SERVING_SIGNER, "usages": usages, "username": username, "groups": groups}})
    }

    #[test]
    fn only_a_nodes_own_serving_request_is_a_candidate() {
        let n1 = "system:node:n1";
        let nodes: &[&str] = &[NODES_GROUP];
        let serving: &[&str] = &["server auth", "digital signature", "key encipherment"];
        let sans: &[&str] = &["n1", "10.0.0.1"];
        let cases: Vec<(&str, Value, bool)> = vec![
            ("own", obj(n1, nodes, sans, serving, n1, nodes), true),
            ("someone else's", obj(n1, nodes, sans, serving, "system:node:n2", nodes), false),
            ("an admin for it", obj(n1, nodes, sans, serving, "admin", &["system:masters"]), false),
            ("requester not in system:nodes", obj(n1, nodes, sans, serving, n1, &[]), false),
            ("extra org", obj(n1, &[NODES_GROUP, "x"], sans, serving, n1, nodes), false),
            ("client auth", obj(n1, nodes, sans, &["server auth", "client auth"], n1, nodes), false),
            ("no SANs", obj(n1, nodes, &[], serving, n1, nodes), false),
            ("not a node", obj("bob", nodes, sans, serving, "bob", nodes), false),
        ];
        for (what, o, want) in cases {
            assert_eq!(candidate(&o).is_some(), want, "{what}");
        }
        let mut decided = obj(n1, nodes, sans, serving, n1, nodes);
        decided["status"] = json!({"conditions": [{"type": DENIED, "status": "True"}]});
        assert!(candidate(&decided).is_none(), "decided");
        let mut other = obj(n1, nodes, sans, serving, n1, nodes);
        other["spec"]["signerName"] = json!("kubernetes.io/kube-apiserver-client");
        assert!(candidate(&other).is_none(), "another signer");
        assert_eq!(candidate(&obj(n1, nodes, sans, serving, n1, nodes)).map(|(n, _)| n), Some("n1".to_string()));
    }

    /// A parsed request of node n1 for `dns` and `ips`.
    fn req(dns: &[&str], ips: &[&str]) -> Request {
        Request {
            common_name: "system:node:n1".into(),
            organizations: vec![NODES_GROUP.into()],
            dns_names: dns.iter().map(|d| d.to_string()).collect(),
            ips: ips.iter().map(|i| i.parse().expect("ip")).collect(),
            other_sans: 0,
            spki_der: Vec::new(),
        }
    }

    #[test]
    fn every_name_must_be_an_address_of_the_node() {
        let node = json!({"status": {"addresses": [
            {"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}]}});
        assert_eq!(names_are_the_nodes(&req(&["n1"], &["10.0.0.1"]), &node), Ok(()));
        assert!(names_are_the_nodes(&req(&["n1", "evil.example"], &[]), &node).is_err());
        assert!(names_are_the_nodes(&req(&[], &["10.0.0.2"]), &node).is_err());
        assert!(names_are_the_nodes(&req(&["10.0.0.1"], &[]), &node).is_err(), "an IP is no Hostname");
        assert!(names_are_the_nodes(&req(&["n1"], &[]), &json!({})).is_err(), "a node without addresses");
    }

    #[test]
    fn names_no_node_may_have_are_refused_whatever_its_node_says() {
        let taken_ips: HashSet<IpAddr> = ["10.0.0.2".parse().expect("ip"), "10.96.0.1".parse().expect("ip")].into();
        let taken_names: HashSet<String> = ["n2".to_string()].into();
        let safe = |r: Request| names_are_safe(&r, &taken_ips, &taken_names);
        assert_eq!(safe(req(&["n1", "n1.example.com"], &["10.0.0.1", "fd00::1"])), Ok(()));
        for dns in [
            "*.default.svc",
            "kubernetes",
            "kubernetes.default.svc",
            "web.default.svc.cluster.local",
            "localhost",
            "N1",
            "n2",
            "a_b",
        ] {
            assert!(safe(req(&[dns], &[])).is_err(), "{dns}");
        }
        for ip in ["127.0.0.1", "0.0.0.0", "169.254.1.1", "::1", "fe80::1", "224.0.0.1", "10.0.0.2", "10.96.0.1"] {
            assert!(safe(req(&[], &[ip])).is_err(), "{ip}");
        }
    }
}
