//! What a Service write does to its address, decided purely from the stored
//! and requested objects and the CIDR ([`plan`], [`drop_type_dependent_fields`],
//! [`repair`]), and carried out by [`Allocator::assign`].

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::{Allocator, Cidr, Error};
use crate::apiserver::status::Cause;
use crate::apiserver::validation::update::immutable;

/// What a write does to a Service's ClusterIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpAction {
    /// No address (ExternalName).
    Nothing,
    /// Headless (`None`).
    Headless,
    /// Allocate a fresh address.
    Allocate,
    /// Reserve the address the user asked for.
    Reserve(Ipv4Addr),
    /// Keep the stored address.
    Keep(String),
}

/// The address decision of one Service write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPlan {
    /// What to assign.
    pub action: IpAction,
    /// The stored address to free once the write is stored.
    pub release: Option<String>,
}

fn service_type(svc: &Value) -> &str {
    svc.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP")
}

/// `spec.clusterIP`, or the first of `spec.clusterIPs` when that is unset.
fn requested_ip(svc: &Value) -> String {
    match svc.pointer("/spec/clusterIP").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(ip) => ip.to_string(),
        None => svc.pointer("/spec/clusterIPs/0").and_then(Value::as_str).unwrap_or_default().to_string(),
    }
}

/// Upstream's `dropTypeDependentFields`: on a type change, fields the user
/// left as stored that belong to the old type are cleared (a Service patched
/// to ExternalName loses its address and node ports; one patched away from
/// ExternalName does not keep an address it could not have had).
pub fn drop_type_dependent_fields(old: Option<&Value>, new: &mut Value) {
    let Some(old) = old else { return };
    let (old_type, new_type) = (service_type(old).to_string(), service_type(new).to_string());
    let (old_type, new_type) = (old_type.as_str(), new_type.as_str());
    if old_type == new_type {
        return;
    }
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let unchanged =
        |field: &str, spec: &serde_json::Map<String, Value>| old.pointer(&format!("/spec/{field}")) == spec.get(field);
    if new_type == "ExternalName" || old_type == "ExternalName" {
        for field in ["clusterIP", "clusterIPs"] {
            if unchanged(field, spec) {
                spec.remove(field);
            }
        }
    }
    if new_type == "ExternalName" {
        for field in ["ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"] {
            if unchanged(field, spec) {
                spec.remove(field);
            }
        }
    }
    if !matches!(new_type, "NodePort" | "LoadBalancer") {
        // A set, so this stays linear in the (user-sized) port lists.
        let old_node_ports: std::collections::HashSet<i64> = old
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("nodePort").and_then(Value::as_i64))
            .collect();
        for port in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
            let stored = port.get("nodePort").and_then(Value::as_i64).is_some_and(|p| old_node_ports.contains(&p));
            if stored {
                if let Some(p) = port.as_object_mut() {
                    p.remove("nodePort");
                }
            }
        }
        if unchanged("externalTrafficPolicy", spec) {
            spec.remove("externalTrafficPolicy");
        }
    }
}

/// Decides the address of `new` given the stored `old` (`None` on create).
pub fn plan(cidr: Cidr, old: Option<&Value>, new: &Value) -> Result<IpPlan, Vec<Cause>> {
    let old_external = old.is_none_or(|o| service_type(o) == "ExternalName");
    let old_ip = old.map(requested_ip).unwrap_or_default();
    let release = (!old_external && !old_ip.is_empty() && old_ip != "None").then(|| old_ip.clone());
    if service_type(new) == "ExternalName" {
        return Ok(IpPlan { action: IpAction::Nothing, release });
    }
    let requested = requested_ip(new);
    let in_range = |ip: &str| -> Result<Ipv4Addr, Vec<Cause>> {
        let out = || {
            let err = Error::OutOfRange { ip: ip.to_string(), cidr: cidr.to_string() };
            vec![Cause::invalid("spec.clusterIPs", ip, &err.to_string())]
        };
        ip.parse::<Ipv4Addr>().ok().filter(|a| cidr.contains(*a)).ok_or_else(out)
    };
    if old_external {
        let action = match requested.as_str() {
            "" => IpAction::Allocate,
            "None" => IpAction::Headless,
            ip => IpAction::Reserve(in_range(ip)?),
        };
        return Ok(IpPlan { action, release: None });
    }
    if !requested.is_empty() && requested != old_ip {
        return Err(vec![immutable("spec.clusterIP")]);
    }
    let action = match old_ip.as_str() {
        "None" => IpAction::Headless,
        // A stored Service without an address (should not exist) gets one now.
        "" => IpAction::Allocate,
        ip => {
            in_range(ip)?;
            IpAction::Keep(ip.to_string())
        }
    };
    Ok(IpPlan { action, release: None })
}

/// For a stored Service whose address breaks these rules (written before they
/// were enforced, e.g. an ExternalName Service with `1.1.1.1`): what to do
/// instead. ExternalName keeps no address; any other type gets a fresh one
/// unless its address is headless or inside the CIDR.
pub fn repair(cidr: Cidr, svc: &Value) -> Option<IpAction> {
    let has_ips = |v: &Value| {
        v.pointer("/spec/clusterIP").and_then(Value::as_str).is_some_and(|s| !s.is_empty())
            || v.pointer("/spec/clusterIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty())
    };
    if service_type(svc) == "ExternalName" {
        return has_ips(svc).then_some(IpAction::Nothing);
    }
    let ip = requested_ip(svc);
    let fine = ip == "None" || ip.parse::<Ipv4Addr>().is_ok_and(|a| cidr.contains(a));
    (!fine).then_some(IpAction::Allocate)
}

impl Allocator {
    /// Carries out `plan`'s action on `svc` (taking addresses unless
    /// `dry_run`). Returns the address newly taken, to release if the write
    /// fails. `system` lets the `kubernetes` Service take `.1`.
    pub fn assign(
        &self,
        action: &IpAction,
        svc: &mut Value,
        system: bool,
        dry_run: bool,
    ) -> Result<Option<String>, Error> {
        let (ip, taken) = match action {
            IpAction::Nothing => (String::new(), None),
            IpAction::Headless => ("None".to_string(), None),
            IpAction::Keep(ip) => (ip.clone(), None),
            IpAction::Allocate if dry_run => (String::new(), None),
            IpAction::Allocate => {
                let ip = self.allocate()?.to_string();
                (ip.clone(), Some(ip))
            }
            IpAction::Reserve(ip) => {
                let ip = ip.to_string();
                if dry_run {
                    (ip, None)
                } else {
                    self.reserve(&ip, system)?;
                    (ip.clone(), Some(ip))
                }
            }
        };
        if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
            if ip.is_empty() {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            } else {
                spec.insert("clusterIP".into(), json!(ip));
                spec.insert("clusterIPs".into(), json!([ip]));
            }
        }
        // `.1` of the kubernetes Service is never released.
        Ok(taken.filter(|ip| !(system && self.cidr.nth(1).to_string() == *ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(kind: &str, ip: Option<&str>) -> Value {
        let mut s =
            json!({"metadata": {"name": "s", "namespace": "default"}, "spec": {"type": kind, "ports": [{"port": 80}]}});
        if let Some(ip) = ip {
            s["spec"]["clusterIP"] = json!(ip);
            s["spec"]["clusterIPs"] = json!([ip]);
        }
        s
    }

    #[test]
    fn plans_follow_type_transitions() {
        let cidr: Cidr = "10.96.0.0/16".parse().expect("cidr");
        let ip = |s: &str| -> Ipv4Addr { s.parse().expect("ip") };
        let ok = |action: IpAction, release: Option<&str>| Ok(IpPlan { action, release: release.map(String::from) });
        let field = |r: Result<IpPlan, Vec<Cause>>| r.expect_err("rejected")[0].field.clone();
        // Create.
        assert_eq!(plan(cidr, None, &svc("ClusterIP", None)), ok(IpAction::Allocate, None));
        assert_eq!(plan(cidr, None, &svc("ClusterIP", Some("None"))), ok(IpAction::Headless, None));
        assert_eq!(plan(cidr, None, &svc("NodePort", Some("10.96.0.9"))), ok(IpAction::Reserve(ip("10.96.0.9")), None));
        assert_eq!(field(plan(cidr, None, &svc("ClusterIP", Some("1.1.1.1")))), "spec.clusterIPs");
        assert_eq!(field(plan(cidr, None, &svc("ClusterIP", Some("10.96.255.255")))), "spec.clusterIPs");
        assert_eq!(plan(cidr, None, &svc("ExternalName", None)), ok(IpAction::Nothing, None));
        // Update.
        let stored = svc("ClusterIP", Some("10.96.0.9"));
        assert_eq!(plan(cidr, Some(&stored), &svc("ClusterIP", None)), ok(IpAction::Keep("10.96.0.9".into()), None));
        assert_eq!(
            plan(cidr, Some(&stored), &svc("NodePort", Some("10.96.0.9"))),
            ok(IpAction::Keep("10.96.0.9".into()), None)
        );
        assert_eq!(field(plan(cidr, Some(&stored), &svc("ClusterIP", Some("10.96.0.10")))), "spec.clusterIP");
        assert_eq!(field(plan(cidr, Some(&stored), &svc("ClusterIP", Some("1.1.1.1")))), "spec.clusterIP");
        assert_eq!(plan(cidr, Some(&stored), &svc("ExternalName", None)), ok(IpAction::Nothing, Some("10.96.0.9")));
        // Away from ExternalName: a fresh address, or the requested one inside the CIDR.
        let external = svc("ExternalName", None);
        assert_eq!(plan(cidr, Some(&external), &svc("ClusterIP", None)), ok(IpAction::Allocate, None));
        assert_eq!(field(plan(cidr, Some(&external), &svc("ClusterIP", Some("1.1.1.1")))), "spec.clusterIPs");
        // A stored address outside the CIDR (written before these checks) is not kept.
        let legacy = svc("ClusterIP", Some("1.1.1.1"));
        assert_eq!(field(plan(cidr, Some(&legacy), &svc("ClusterIP", None))), "spec.clusterIPs");
    }

    #[test]
    fn type_changes_drop_fields_of_the_old_type() {
        // The live report: ExternalName stored with 1.1.1.1, patched to ClusterIP.
        let legacy = svc("ExternalName", Some("1.1.1.1"));
        let mut patched = svc("ClusterIP", Some("1.1.1.1"));
        drop_type_dependent_fields(Some(&legacy), &mut patched);
        assert_eq!(patched["spec"].get("clusterIP"), None);
        let cidr: Cidr = "10.96.0.0/16".parse().expect("cidr");
        assert_eq!(plan(cidr, Some(&legacy), &patched).map(|p| p.action), Ok(IpAction::Allocate));
        let mut node_port = svc("NodePort", Some("10.96.0.9"));
        node_port["spec"]["ports"][0]["nodePort"] = json!(30080);
        let mut to_external = node_port.clone();
        to_external["spec"]["type"] = json!("ExternalName");
        drop_type_dependent_fields(Some(&node_port), &mut to_external);
        assert_eq!(to_external["spec"].get("clusterIP"), None);
        assert_eq!(to_external["spec"]["ports"][0].get("nodePort"), None);
        // A user-chosen new address survives the drop (and is then checked).
        let mut chosen = svc("ClusterIP", Some("10.96.0.7"));
        drop_type_dependent_fields(Some(&legacy), &mut chosen);
        assert_eq!(chosen["spec"]["clusterIP"], "10.96.0.7");
    }

    #[test]
    fn stored_services_breaking_the_rules_are_repaired() {
        let cidr: Cidr = "10.96.0.0/16".parse().expect("cidr");
        assert_eq!(repair(cidr, &svc("ExternalName", Some("1.1.1.1"))), Some(IpAction::Nothing));
        assert_eq!(repair(cidr, &svc("ExternalName", None)), None);
        assert_eq!(repair(cidr, &svc("ClusterIP", Some("1.1.1.1"))), Some(IpAction::Allocate));
        assert_eq!(repair(cidr, &svc("ClusterIP", None)), Some(IpAction::Allocate));
        assert_eq!(repair(cidr, &svc("ClusterIP", Some("None"))), None);
        assert_eq!(repair(cidr, &svc("NodePort", Some("10.96.0.9"))), None);
        let a = Allocator::new(cidr);
        let mut external = svc("ExternalName", Some("1.1.1.1"));
        assert_eq!(a.assign(&IpAction::Nothing, &mut external, false, false), Ok(None));
        assert_eq!(external["spec"].get("clusterIPs"), None);
    }

    #[test]
    fn assign_takes_and_reports_addresses() {
        let a = Allocator::new("10.96.0.0/16".parse().expect("cidr"));
        let mut s = svc("ClusterIP", None);
        assert_eq!(a.assign(&IpAction::Allocate, &mut s, false, false), Ok(Some("10.96.0.2".into())));
        assert_eq!(s["spec"]["clusterIPs"], json!(["10.96.0.2"]));
        let mut dry = svc("ClusterIP", None);
        assert_eq!(a.assign(&IpAction::Allocate, &mut dry, false, true), Ok(None));
        let mut k = svc("ClusterIP", None);
        assert_eq!(a.assign(&IpAction::Reserve(Ipv4Addr::new(10, 96, 0, 1)), &mut k, true, false), Ok(None));
        assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");
    }
}
