//! Service ClusterIP allocation from the service CIDR, and the decision of
//! what a Service write does to its address ([`plan`], pure): allocate,
//! reserve a requested address, keep the stored one, or release it.
//!
//! Rules (upstream's): an ExternalName Service has no ClusterIP; a Service
//! changing to ExternalName releases its address; one changing away from
//! ExternalName gets a fresh address (or the one it asks for, inside the
//! CIDR); otherwise `clusterIP` is immutable once set. Every requested
//! address is checked against the CIDR on every path (create, PUT, each
//! PATCH type, dry runs).
//!
//! The allocator is rebuilt from stored Services at startup, so allocations
//! survive restarts without a separate bitmap object. `.1` is reserved for the
//! `kubernetes` Service.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::status::Cause;
use super::validation::update::immutable;

/// Allocation failures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The CIDR flag is not an IPv4 CIDR.
    #[error("invalid service CIDR {0:?}")]
    Cidr(String),
    /// Every address is taken.
    #[error("no ClusterIP left in {0}")]
    Exhausted(String),
    /// The requested address is outside the range or malformed.
    #[error("{ip}: the provided IP is not in the valid range. The range of valid IPs is {cidr}")]
    OutOfRange { ip: String, cidr: String },
    /// The requested address is in use.
    #[error("{0}: provided IP is already allocated")]
    InUse(String),
}

/// A parsed IPv4 CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Cidr, Error> {
        let err = || Error::Cidr(s.to_string());
        let (ip, prefix) = s.split_once('/').ok_or_else(err)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        if !(8..=30).contains(&prefix) {
            return Err(err());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Cidr { base: u32::from(ip) & mask, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl Cidr {
    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// The `n`th address (the `kubernetes` Service gets n = 1).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + n)
    }

    /// Whether `ip` is an assignable address of the range (not network, not broadcast).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.offset(ip).is_some()
    }

    fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let v = u32::from(ip);
        let off = v.checked_sub(self.base)?;
        (off > 0 && off < self.size() - 1).then_some(off)
    }
}

/// Allocator state: the CIDR, the used offsets and where the next search starts.
///
/// Allocation goes round the range from just after the last address handed
/// out, so an address freed by a deleted Service is not given to the next new
/// Service at once (clients and conntrack entries may still hold it).
#[derive(Debug)]
pub struct Allocator {
    cidr: Cidr,
    used: Mutex<Used>,
}

#[derive(Debug)]
struct Used {
    offsets: BTreeSet<u32>,
    next: u32,
}

impl Allocator {
    /// New allocator with `.1` reserved.
    pub fn new(cidr: Cidr) -> Allocator {
        Allocator { cidr, used: Mutex::new(Used { offsets: BTreeSet::from([1]), next: 2 }) }
    }

    /// The CIDR.
    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    fn used(&self) -> std::sync::MutexGuard<'_, Used> {
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks an address of an existing Service used (startup rebuild). Out-of-range addresses are ignored.
    pub fn mark(&self, ip: &str) {
        if let Some(off) = ip.parse().ok().and_then(|ip| self.cidr.offset(ip)) {
            self.used().offsets.insert(off);
        }
    }

    /// Reserves a specific address requested by a user (or the `kubernetes` Service's `.1`).
    pub fn reserve(&self, ip: &str, allow_reserved: bool) -> Result<(), Error> {
        let out = || Error::OutOfRange { ip: ip.to_string(), cidr: self.cidr.to_string() };
        let off = ip.parse().ok().and_then(|ip| self.cidr.offset(ip)).ok_or_else(out)?;
        if off == 1 && allow_reserved {
            return Ok(());
        }
        if !self.used().offsets.insert(off) {
            return Err(Error::InUse(ip.to_string()));
        }
        Ok(())
    }

    /// Allocates the first free address at or after the rotating cursor
    /// (wrapping; `.0`, `.1` and the broadcast address are never handed out).
    pub fn allocate(&self) -> Result<Ipv4Addr, Error> {
        let mut used = self.used();
        let (first, end) = (2, self.cidr.size() - 1);
        let start = used.next.clamp(first, end.saturating_sub(1).max(first));
        let off = (start..end)
            .chain(first..start)
            .find(|o| !used.offsets.contains(o))
            .ok_or_else(|| Error::Exhausted(self.cidr.to_string()))?;
        used.offsets.insert(off);
        used.next = if off + 1 >= end { first } else { off + 1 };
        Ok(self.cidr.nth(off))
    }

    /// Frees an address (Service deleted or create failed). `.1` stays reserved.
    pub fn release(&self, ip: &str) {
        if let Some(off) = ip.parse().ok().and_then(|ip| self.cidr.offset(ip)) {
            if off != 1 {
                self.used().offsets.remove(&off);
            }
        }
    }
}

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
        let old_ports = old.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
        for port in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
            let stored =
                old_ports.iter().any(|o| o.get("nodePort").is_some() && o.get("nodePort") == port.get("nodePort"));
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
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "spec.clusterIPs".into(),
                message: format!("Invalid value: {}: {err}", Value::from(ip)),
            }]
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

    #[test]
    fn allocates_round_the_range_skipping_reserved_marked_and_just_freed() {
        let a = Allocator::new("10.96.0.0/16".parse().expect("cidr"));
        a.mark("10.96.0.2");
        assert_eq!(a.allocate(), Ok(Ipv4Addr::new(10, 96, 0, 3)));
        assert_eq!(a.allocate(), Ok(Ipv4Addr::new(10, 96, 0, 4)));
        a.release("10.96.0.3");
        // A just-freed address is not handed out again at once.
        assert_eq!(a.allocate(), Ok(Ipv4Addr::new(10, 96, 0, 5)));
        assert_eq!(a.reserve("10.96.0.4", false), Err(Error::InUse("10.96.0.4".into())));
        assert!(matches!(a.reserve("10.97.0.4", false), Err(Error::OutOfRange { .. })));
        assert_eq!(a.reserve("10.96.0.1", true), Ok(()));
        assert_eq!(a.reserve("10.96.0.1", false), Err(Error::InUse("10.96.0.1".into())));
    }

    #[test]
    fn allocation_wraps_round_to_freed_addresses() {
        let a = Allocator::new("192.168.7.0/29".parse().expect("cidr"));
        let all: Vec<_> = (0..5).map(|_| a.allocate().expect("free address")).collect();
        assert_eq!(all.first(), Some(&Ipv4Addr::new(192, 168, 7, 2)));
        assert_eq!(all.last(), Some(&Ipv4Addr::new(192, 168, 7, 6)));
        assert!(matches!(a.allocate(), Err(Error::Exhausted(_))));
        a.release("192.168.7.3");
        assert_eq!(a.allocate(), Ok(Ipv4Addr::new(192, 168, 7, 3)));
    }

    #[test]
    fn small_ranges_exhaust_and_bad_cidrs_are_rejected() {
        let a = Allocator::new("192.168.7.0/30".parse().expect("cidr"));
        assert_eq!(a.allocate(), Ok(Ipv4Addr::new(192, 168, 7, 2)));
        assert!(matches!(a.allocate(), Err(Error::Exhausted(_))));
        assert!("10.96.0.0".parse::<Cidr>().is_err());
        assert!("10.96.0.0/33".parse::<Cidr>().is_err());
        assert_eq!("10.96.3.4/16".parse::<Cidr>().expect("cidr").to_string(), "10.96.0.0/16");
    }

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
