//! Service node ports (upstream's `--service-node-port-range`, 30000-32767):
//! which port each `nodePort` and `healthCheckNodePort` of a Service gets,
//! decided by [`plan`] (pure) and taken from the [`Allocator`].
//!
//! Rules (upstream's): a NodePort Service, and a LoadBalancer Service
//! unless `allocateLoadBalancerNodePorts: false`, gets a node port for
//! every port that has none; a requested port must be in the range and
//! free; a port the stored Service already has is kept; ports the Service
//! no longer has are freed once the write is stored. A LoadBalancer with
//! `externalTrafficPolicy: Local` also gets a `healthCheckNodePort`. The
//! allocator is rebuilt from the stored Services at startup, like the
//! ClusterIP allocator.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde_json::Value;

use super::status::Cause;

/// The default range, as upstream's.
pub const DEFAULT_RANGE: (u16, u16) = (30000, 32767);

/// What happens to one node-port field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortAction {
    /// The stored Service has this port already.
    Keep(u16),
    /// A port the user asked for.
    Reserve(u16),
    /// A free port from the range.
    Allocate,
}

/// The node ports of one Service write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// JSON pointer of each field (`/spec/ports/0/nodePort`) and its action.
    pub fields: Vec<(String, PortAction)>,
    /// Ports of the stored Service this write gives up.
    pub release: Vec<u16>,
}

/// The field path of a JSON pointer (`/spec/ports/1/nodePort` ->
/// `spec.ports[1].nodePort`).
fn field_of(pointer: &str) -> String {
    let mut field = String::new();
    for segment in pointer.split('/').filter(|s| !s.is_empty()) {
        if segment.bytes().all(|b| b.is_ascii_digit()) {
            field.push_str(&format!("[{segment}]"));
        } else {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(segment);
        }
    }
    field
}

/// Every node port (and the health-check node port) `svc` has.
pub fn node_ports_of(svc: &Value) -> Vec<u16> {
    let ports = svc.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten();
    let mut all: Vec<u16> = ports.filter_map(|p| p.get("nodePort")?.as_u64()?.try_into().ok()).collect();
    if let Some(health) = svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_u64) {
        all.extend(u16::try_from(health).ok());
    }
    all
}

/// The node ports `svc` should have (`old`: the stored Service on update),
/// or the field errors of out-of-range requests.
pub fn plan(range: (u16, u16), old: Option<&Value>, svc: &Value) -> Result<Plan, Vec<Cause>> {
    let spec = svc.get("spec");
    let kind = spec.and_then(|s| s.get("type")).and_then(Value::as_str).unwrap_or("ClusterIP");
    let lb = kind == "LoadBalancer";
    let wants = kind == "NodePort"
        || (lb && spec.and_then(|s| s.get("allocateLoadBalancerNodePorts")).and_then(Value::as_bool) != Some(false));
    let stored: BTreeSet<u16> = old.map(node_ports_of).unwrap_or_default().into_iter().collect();
    let mut plan = Plan::default();
    let mut causes = Vec::new();
    let mut decide = |pointer: String, field: String, requested: Option<&Value>, wanted: bool| match requested {
        Some(value) => {
            let port = value.as_u64().and_then(|p| u16::try_from(p).ok()).filter(|p| (range.0..=range.1).contains(p));
            match port {
                Some(port) if stored.contains(&port) => plan.fields.push((pointer, PortAction::Keep(port))),
                Some(port) => plan.fields.push((pointer, PortAction::Reserve(port))),
                None => causes.push(Cause {
                    reason: "FieldValueInvalid",
                    field,
                    message: format!(
                        "Invalid value: {value}: provided port is not in the valid range. The range of valid ports is {}-{}",
                        range.0, range.1
                    ),
                }),
            }
        }
        None if wanted => plan.fields.push((pointer, PortAction::Allocate)),
        None => {}
    };
    let ports = spec.and_then(|s| s.get("ports")).and_then(Value::as_array).into_iter().flatten();
    for (i, port) in ports.enumerate() {
        let requested = port.get("nodePort").filter(|v| !v.is_null());
        decide(format!("/spec/ports/{i}/nodePort"), format!("spec.ports[{i}].nodePort"), requested, wants);
    }
    let local = spec.and_then(|s| s.get("externalTrafficPolicy")).and_then(Value::as_str) == Some("Local");
    let health = spec.and_then(|s| s.get("healthCheckNodePort")).filter(|v| !v.is_null());
    if lb && local || health.is_some() {
        decide("/spec/healthCheckNodePort".into(), "spec.healthCheckNodePort".into(), health, lb && local);
    }
    if !causes.is_empty() {
        return Err(causes);
    }
    let kept: BTreeSet<u16> = plan
        .fields
        .iter()
        .filter_map(|(_, a)| match a {
            PortAction::Keep(p) => Some(*p),
            _ => None,
        })
        .collect();
    plan.release = stored.difference(&kept).copied().collect();
    Ok(plan)
}

/// Ports in use, and where the next search starts.
#[derive(Debug)]
struct Used {
    ports: BTreeSet<u16>,
    next: u16,
}

/// The node-port allocator of the apiserver.
#[derive(Debug)]
pub struct Allocator {
    range: (u16, u16),
    used: Mutex<Used>,
}

/// A port the user asked for is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    /// The field (`spec.ports[0].nodePort`).
    pub field: String,
    /// The port.
    pub port: u16,
}

/// What a write took (free it if the write fails) and what it gives up
/// (free it once the write is stored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assigned {
    /// Ports newly taken by this write.
    pub taken: Vec<u16>,
    /// Stored ports the write no longer has.
    pub release: Vec<u16>,
}

impl Allocator {
    /// An allocator over `range` (inclusive).
    pub fn new(range: (u16, u16)) -> Allocator {
        Allocator { range, used: Mutex::new(Used { ports: BTreeSet::new(), next: range.0 }) }
    }

    fn used(&self) -> std::sync::MutexGuard<'_, Used> {
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the node ports of a stored Service used (startup rebuild).
    pub fn mark(&self, svc: &Value) {
        let mut used = self.used();
        used.ports.extend(node_ports_of(svc).into_iter().filter(|p| (self.range.0..=self.range.1).contains(p)));
    }

    /// Marks `port` used (another apiserver claimed it). Outside the range: ignored.
    pub fn mark_port(&self, port: u16) {
        if (self.range.0..=self.range.1).contains(&port) {
            self.used().ports.insert(port);
        }
    }

    /// Frees `ports`.
    pub fn release(&self, ports: &[u16]) {
        let mut used = self.used();
        for port in ports {
            used.ports.remove(port);
        }
    }

    /// Frees every node port of a deleted Service.
    pub fn release_all(&self, svc: &Value) {
        self.release(&node_ports_of(svc));
    }

    /// Takes the ports `svc` should have (see [`plan`]) and writes them into
    /// it. A dry run takes nothing (allocated fields stay unset); on an
    /// error nothing stays taken.
    pub fn assign(&self, old: Option<&Value>, svc: &mut Value, dry_run: bool) -> Result<Assigned, Vec<Cause>> {
        let plan = plan(self.range, old, svc)?;
        let mut used = self.used();
        let mut taken = Vec::new();
        let fail = |used: &mut Used, taken: &[u16], cause: Cause| {
            for port in taken {
                used.ports.remove(port);
            }
            Err(vec![cause])
        };
        let mut values = Vec::new();
        for (pointer, action) in &plan.fields {
            let port = match action {
                PortAction::Keep(port) => *port,
                PortAction::Reserve(port) if taken.contains(port) => *port,
                PortAction::Reserve(port) if used.ports.contains(port) => {
                    let field = field_of(pointer);
                    let message = format!("Invalid value: {port}: provided port is already allocated");
                    return fail(&mut used, &taken, Cause { reason: "FieldValueInvalid", field, message });
                }
                PortAction::Reserve(port) => *port,
                PortAction::Allocate if dry_run => continue,
                PortAction::Allocate => {
                    let (first, last) = self.range;
                    let start = used.next.clamp(first, last);
                    let free = (start..=last).chain(first..start).find(|p| !used.ports.contains(p));
                    let Some(port) = free else {
                        let field = field_of(pointer);
                        let message = format!("range {first}-{last} is full: no node port left");
                        return fail(&mut used, &taken, Cause { reason: "FieldValueInvalid", field, message });
                    };
                    used.next = if port >= last { first } else { port + 1 };
                    port
                }
            };
            if !matches!(action, PortAction::Keep(_)) && !dry_run && used.ports.insert(port) {
                taken.push(port);
            }
            values.push((pointer.clone(), port));
        }
        drop(used);
        for (pointer, port) in values {
            // Every field sits in an object that exists (`spec`, or one of
            // `spec.ports`); the field itself may not yet.
            let (parent, field) = pointer.rsplit_once('/').unwrap_or_default();
            if let Some(object) = svc.pointer_mut(parent).and_then(Value::as_object_mut) {
                object.insert(field.to_string(), Value::from(port));
            }
        }
        Ok(Assigned { taken, release: plan.release })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RANGE: (u16, u16) = (30000, 30003);

    fn svc(kind: &str, ports: Value) -> Value {
        json!({"metadata": {"name": "s"}, "spec": {"type": kind, "ports": ports}})
    }

    #[test]
    fn plans_keep_reserve_allocate_and_release() {
        let old = svc("NodePort", json!([{"port": 80, "nodePort": 30001}, {"port": 81, "nodePort": 30002}]));
        let new =
            svc("NodePort", json!([{"port": 80, "nodePort": 30001}, {"port": 82}, {"port": 83, "nodePort": 30003}]));
        let plan = plan(RANGE, Some(&old), &new).expect("plan");
        assert_eq!(
            plan.fields,
            vec![
                ("/spec/ports/0/nodePort".into(), PortAction::Keep(30001)),
                ("/spec/ports/1/nodePort".into(), PortAction::Allocate),
                ("/spec/ports/2/nodePort".into(), PortAction::Reserve(30003)),
            ]
        );
        assert_eq!(plan.release, vec![30002]);
        // ClusterIP and LoadBalancer without node ports get none.
        assert_eq!(super::plan(RANGE, None, &svc("ClusterIP", json!([{"port": 80}]))).expect("plan"), Plan::default());
        let mut no_ports = svc("LoadBalancer", json!([{"port": 80}]));
        no_ports["spec"]["allocateLoadBalancerNodePorts"] = json!(false);
        assert_eq!(super::plan(RANGE, None, &no_ports).expect("plan"), Plan::default());
        // Out of range, with the field path.
        assert_eq!(field_of("/spec/healthCheckNodePort"), "spec.healthCheckNodePort");
        let bad = super::plan(RANGE, None, &svc("NodePort", json!([{"port": 80}, {"port": 81, "nodePort": 80}])));
        let causes = bad.expect_err("out of range");
        assert_eq!(causes[0].field, "spec.ports[1].nodePort");
        assert!(causes[0].message.contains("30000-30003"), "{}", causes[0].message);
    }

    #[test]
    fn allocator_assigns_refuses_taken_ports_and_rolls_back() {
        let ports = Allocator::new(RANGE);
        let mut a = svc("NodePort", json!([{"port": 80}, {"port": 81}]));
        let got = ports.assign(None, &mut a, false).expect("assign");
        assert_eq!(got.taken, vec![30000, 30001]);
        assert_eq!(
            (a["spec"]["ports"][0]["nodePort"].clone(), a["spec"]["ports"][1]["nodePort"].clone()),
            (json!(30000), json!(30001))
        );
        // A requested port in use: refused, and the allocation before it is undone.
        let mut b = svc("NodePort", json!([{"port": 80}, {"port": 81, "nodePort": 30001}]));
        let causes = ports.assign(None, &mut b, false).expect_err("in use");
        assert_eq!(causes[0].field, "spec.ports[1].nodePort");
        assert_eq!(causes[0].message, "Invalid value: 30001: provided port is already allocated");
        let mut c = svc("NodePort", json!([{"port": 80}, {"port": 81}]));
        let mut left = ports.assign(None, &mut c, false).expect("two left").taken;
        left.sort_unstable();
        assert_eq!(left, vec![30002, 30003]);
        let mut d = svc("NodePort", json!([{"port": 80}]));
        assert!(ports.assign(None, &mut d, false).is_err(), "the range is full");
        ports.release_all(&a);
        assert_eq!(ports.assign(None, &mut d, false).expect("freed").taken, vec![30000]);
        // A LoadBalancer with Local traffic gets a health check port too.
        let lb_ports = Allocator::new((31000, 31010));
        let mut lb = svc("LoadBalancer", json!([{"port": 80}]));
        lb["spec"]["externalTrafficPolicy"] = json!("Local");
        lb_ports.assign(None, &mut lb, false).expect("lb");
        assert_eq!(
            (lb["spec"]["ports"][0]["nodePort"].clone(), lb["spec"]["healthCheckNodePort"].clone()),
            (json!(31000), json!(31001))
        );
        // A dry run takes nothing.
        let mut dry = svc("NodePort", json!([{"port": 80}]));
        assert_eq!(lb_ports.assign(None, &mut dry, true).expect("dry").taken, Vec::<u16>::new());
        assert!(dry["spec"]["ports"][0].get("nodePort").is_none());
    }
}
