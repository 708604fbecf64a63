//! Service specs: type enum, ExternalName rules, clusterIP syntax, ports
//! (numbers, protocols, names, uniqueness), nodePort range, target ports.
//!
//! The service CIDR and the type transitions are checked where addresses are
//! allocated (`clusterip::plan`), because they depend on the stored object and
//! the allocator's range.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::meta::{is_dns1123_label, is_dns1123_subdomain, is_iana_svc_name, validate_labels, DNS1123_LABEL_MSG};
use super::{forbidden, invalid_value, one_of, port_number, protocol, Causes};
use crate::apiserver::schema::typed;
use crate::apiserver::status::Cause;

/// Service types.
pub const TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

/// The nodePort range (upstream's default `--service-node-port-range`).
pub const NODE_PORTS: std::ops::RangeInclusive<i32> = 30000..=32767;

/// A Service object.
pub fn validate_service(obj: &Value, out: &mut Causes) {
    let Some(svc) = typed::<Service>(obj) else { return };
    let spec = svc.spec.unwrap_or_default();
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    one_of("spec.type", Some(kind), &TYPES, out);
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or_default();
    let cluster_ips = spec.cluster_ips.clone().unwrap_or_default();
    if kind == "ExternalName" {
        let name = spec.external_name.as_deref().unwrap_or_default();
        let bare = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() {
            out.push(Cause::required("spec.externalName"));
        } else if !is_dns1123_subdomain(&bare.to_ascii_lowercase()) {
            out.push(Cause::invalid("spec.externalName", name, super::meta::DNS1123_SUBDOMAIN_MSG));
        }
        if !cluster_ip.is_empty() || !cluster_ips.is_empty() {
            let shown = if cluster_ip.is_empty() { cluster_ips.join(",") } else { cluster_ip.to_string() };
            out.push(Cause::invalid("spec.clusterIP", &shown, "may not be set for ExternalName services"));
        }
    } else {
        if !cluster_ip.is_empty() && cluster_ip != "None" && cluster_ip.parse::<Ipv4Addr>().is_err() {
            out.push(Cause::invalid("spec.clusterIP", cluster_ip, "must be empty, 'None', or a valid IPv4 address"));
        }
        if cluster_ips.len() > 1 {
            out.push(invalid_value("spec.clusterIPs", cluster_ips.join(","), "only single-stack IPv4 is supported"));
        } else if let Some(first) = cluster_ips.first() {
            if !cluster_ip.is_empty() && first != cluster_ip {
                out.push(Cause::invalid("spec.clusterIPs[0]", first, "must match `clusterIP`"));
            }
        }
    }
    one_of("spec.sessionAffinity", spec.session_affinity.as_deref(), &["None", "ClientIP"], out);
    one_of("spec.internalTrafficPolicy", spec.internal_traffic_policy.as_deref(), &["Cluster", "Local"], out);
    if let Some(policy) = spec.external_traffic_policy.as_deref() {
        if matches!(kind, "NodePort" | "LoadBalancer") {
            one_of("spec.externalTrafficPolicy", Some(policy), &["Cluster", "Local"], out);
        } else {
            out.push(forbidden("spec.externalTrafficPolicy", "may only be set for NodePort and LoadBalancer services"));
        }
    }
    if let Some(selector) = &spec.selector {
        validate_labels(selector, "spec.selector", out);
    }
    let ports = spec.ports.unwrap_or_default();
    let headless = cluster_ip == "None";
    if ports.is_empty() && kind != "ExternalName" && !headless {
        out.push(Cause::required("spec.ports"));
    }
    let node_ports_allowed = matches!(kind, "NodePort" | "LoadBalancer");
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    let mut node_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        port_number(format!("{at}.port"), p.port, out);
        protocol(format!("{at}.protocol"), p.protocol.as_deref(), out);
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        let name = p.name.clone().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            out.push(Cause::required(format!("{at}.name")));
        } else if !name.is_empty() && !is_dns1123_label(&name) {
            out.push(Cause::invalid(format!("{at}.name"), &name, DNS1123_LABEL_MSG));
        } else if !name.is_empty() && !names.insert(name.clone()) {
            out.push(Cause::duplicate(format!("{at}.name"), &name));
        }
        if !keys.insert((p.port, proto.to_string())) {
            out.push(Cause::duplicate(at.clone(), &format!("{}/{proto}", p.port)));
        }
        match &p.target_port {
            None => {}
            Some(IntOrString::Int(n)) => port_number(format!("{at}.targetPort"), *n, out),
            Some(IntOrString::String(s)) if is_iana_svc_name(s) => {}
            Some(IntOrString::String(s)) => out.push(Cause::invalid(
                format!("{at}.targetPort"),
                s,
                "must contain at least one letter (a-z) and be no more than 15 characters",
            )),
        }
        if let Some(np) = p.node_port.filter(|n| *n != 0) {
            if !node_ports_allowed {
                out.push(forbidden(format!("{at}.nodePort"), &format!("may not be used when `type` is '{kind}'")));
            } else if !NODE_PORTS.contains(&np) {
                out.push(invalid_value(
                    format!("{at}.nodePort"),
                    np,
                    &format!(
                        "provided port is not in the valid range. The range of valid ports is {}-{}",
                        NODE_PORTS.start(),
                        NODE_PORTS.end()
                    ),
                ));
            } else if !node_ports.insert((np, proto.to_string())) {
                out.push(Cause::duplicate(format!("{at}.nodePort"), &np.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::{by_kind, Kind};
    use crate::apiserver::validation::validate;
    use serde_json::json;

    fn fields(spec: Value) -> Vec<String> {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec});
        validate(by_kind(Kind::Service), &svc).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn service_cases() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"ports": [{"port": 80}]}), vec![]),
            (json!({"ports": [{"port": 0}]}), vec!["spec.ports[0].port"]),
            (json!({"ports": [{"port": 80}, {"port": 81}]}), vec!["spec.ports[0].name", "spec.ports[1].name"]),
            (json!({"type": "Weird", "ports": [{"port": 80}]}), vec!["spec.type"]),
            (
                json!({"type": "ExternalName", "externalName": "example.com", "clusterIP": "1.1.1.1"}),
                vec!["spec.clusterIP"],
            ),
            (json!({"type": "ExternalName"}), vec!["spec.externalName"]),
            (json!({"type": "ExternalName", "externalName": "example.com."}), vec![]),
            (json!({"clusterIP": "None"}), vec![]),
            (json!({"clusterIP": "nope", "ports": [{"port": 80}]}), vec!["spec.clusterIP"]),
            (
                json!({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.6"], "ports": [{"port": 80}]}),
                vec!["spec.clusterIPs[0]"],
            ),
            (json!({"ports": [{"port": 80, "protocol": "ICMP"}]}), vec!["spec.ports[0].protocol"]),
            (json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}), vec!["spec.ports[1]"]),
            (json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80, "protocol": "UDP"}]}), vec![]),
            (json!({"ports": [{"port": 80, "targetPort": 0}]}), vec!["spec.ports[0].targetPort"]),
            (json!({"ports": [{"port": 80, "targetPort": "Not_A_Name"}]}), vec!["spec.ports[0].targetPort"]),
            (json!({"ports": [{"port": 80, "targetPort": "http"}]}), vec![]),
            (json!({"ports": [{"port": 80, "nodePort": 30080}]}), vec!["spec.ports[0].nodePort"]),
            (json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}), vec!["spec.ports[0].nodePort"]),
            (
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30080}]}),
                vec!["spec.ports[1].nodePort"],
            ),
            (json!({"ports": [{"port": 80}], "sessionAffinity": "Sticky"}), vec!["spec.sessionAffinity"]),
        ];
        for (spec, want) in cases {
            assert_eq!(fields(spec.clone()), want, "{spec}");
        }
    }
}
