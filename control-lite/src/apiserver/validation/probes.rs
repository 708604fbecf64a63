//! Container ports, probes and lifecycle handlers: numbers, names and
//! exactly one handler each.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::is_iana_svc_name;
use super::{at_least, forbidden, invalid_value, one_of, port_number, protocol, required_because, Causes};
use crate::apiserver::status::Cause;

pub(super) fn handler_count(field: String, count: usize) -> Cause {
    if count == 0 {
        required_because(field, "must specify a handler type")
    } else {
        forbidden(field, "may not specify more than 1 handler type")
    }
}

pub(super) fn validate_ports(ports: &[ContainerPort], path: &str, out: &mut Causes) {
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("{path}.ports[{i}]");
        port_number(format!("{at}.containerPort"), p.container_port, out);
        if let Some(h) = p.host_port.filter(|h| *h != 0) {
            port_number(format!("{at}.hostPort"), h, out);
        }
        protocol(format!("{at}.protocol"), p.protocol.as_deref(), out);
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            if !is_iana_svc_name(name) {
                out.push(Cause::invalid(format!("{at}.name"), name, "must be no more than 15 characters, contain only lowercase alphanumerics or '-', contain at least one letter, and not start, end or contain '--'"));
            } else if !names.insert(name.to_string()) {
                out.push(Cause::duplicate(format!("{at}.name"), name));
            }
        }
    }
}

pub(super) fn probe_port(port: &IntOrString, field: &str, out: &mut Causes) {
    match port {
        IntOrString::Int(n) => port_number(field, *n, out),
        IntOrString::String(s) if is_iana_svc_name(s) => {}
        IntOrString::String(s) => out.push(Cause::invalid(
            field,
            s,
            "must contain at least one letter (a-z) and be no more than 15 characters",
        )),
    }
}

/// A probe: exactly one handler, non-negative delays, thresholds >= 1
/// (defaults fill unset ones), liveness/startup succeed after one success.
pub(super) fn validate_probe(p: &Probe, at: &str, single_success: bool, out: &mut Causes) {
    let count = [p.exec.is_some(), p.http_get.is_some(), p.tcp_socket.is_some(), p.grpc.is_some()]
        .into_iter()
        .filter(|x| *x)
        .count();
    if count != 1 {
        out.push(handler_count(at.to_string(), count));
    }
    if let Some(e) = &p.exec {
        if e.command.as_ref().is_none_or(Vec::is_empty) {
            out.push(Cause::required(format!("{at}.exec.command")));
        }
    }
    if let Some(g) = &p.http_get {
        probe_port(&g.port, &format!("{at}.httpGet.port"), out);
        one_of(format!("{at}.httpGet.scheme"), g.scheme.as_deref(), &["HTTP", "HTTPS"], out);
    }
    if let Some(t) = &p.tcp_socket {
        probe_port(&t.port, &format!("{at}.tcpSocket.port"), out);
    }
    if let Some(g) = &p.grpc {
        port_number(format!("{at}.grpc.port"), g.port, out);
    }
    if let Some(v) = p.initial_delay_seconds {
        at_least(format!("{at}.initialDelaySeconds"), v.into(), 0, out);
    }
    for (value, name) in [
        (p.timeout_seconds, "timeoutSeconds"),
        (p.period_seconds, "periodSeconds"),
        (p.success_threshold, "successThreshold"),
        (p.failure_threshold, "failureThreshold"),
    ] {
        if let Some(v) = value {
            at_least(format!("{at}.{name}"), v.into(), 1, out);
        }
    }
    if single_success && p.success_threshold.is_some_and(|s| s != 1) {
        out.push(invalid_value(format!("{at}.successThreshold"), p.success_threshold.unwrap_or(0), "must be 1"));
    }
    if let Some(g) = p.termination_grace_period_seconds {
        at_least(format!("{at}.terminationGracePeriodSeconds"), g, 1, out);
    }
}
