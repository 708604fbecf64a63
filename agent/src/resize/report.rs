//! The resize part of the pod status (pure): what each running container's
//! cgroups have (`containerStatuses[].resources`), its allocated requests
//! (`allocatedResources`), the `PodResizePending` / `PodResizeInProgress`
//! conditions (upstream 1.33+) and `status.observedGeneration`.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodCondition, PodStatus, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::apply::ResizeOutcome;
use super::plan::{resizable, CgroupResources};
use crate::observed::{ObservedPod, RunState};

/// Condition: the resize was not admitted (reason `Infeasible` or `Deferred`).
pub const POD_RESIZE_PENDING: &str = "PodResizePending";
/// Condition: the resize was admitted and is not done yet.
pub const POD_RESIZE_IN_PROGRESS: &str = "PodResizeInProgress";
/// The two conditions' types (the kubelet owns them and removes them when done).
pub const RESIZE_CONDITIONS: [&str; 2] = [POD_RESIZE_PENDING, POD_RESIZE_IN_PROGRESS];

type List = BTreeMap<String, Quantity>;

fn spec_quantity(c: &Container, list: &str, name: &str) -> Option<Quantity> {
    let r = c.resources.as_ref()?;
    let m = if list == "requests" { r.requests.as_ref() } else { r.limits.as_ref() };
    m.and_then(|m| m.get(name)).cloned()
}

/// The container's resources as its cgroups have them: the spec's
/// quantity where the cgroup value is the one the spec gives, else the
/// value read back (cpu request from shares, cpu limit from quota/period,
/// memory limit in bytes). The memory request has no cgroup value: the spec's.
pub fn reported(c: &Container, have: CgroupResources) -> ResourceRequirements {
    let want = CgroupResources::wanted(c).unwrap_or_default();
    let cpu_request = spec_quantity(c, "requests", "cpu").or_else(|| spec_quantity(c, "limits", "cpu"));
    let mut requests = List::new();
    let mut limits = List::new();
    match cpu_request {
        Some(q) if have.cpu_shares == want.cpu_shares => {
            requests.insert("cpu".into(), q);
        }
        _ if have.cpu_shares > 2 => {
            // Rounded up, as upstream's `sharesToMilliCPU`.
            let milli = have.cpu_shares.saturating_mul(1000).saturating_add(1023) / 1024;
            requests.insert("cpu".into(), Quantity(format!("{milli}m")));
        }
        _ => {}
    }
    if let Some(q) = spec_quantity(c, "requests", "memory").or_else(|| spec_quantity(c, "limits", "memory")) {
        requests.insert("memory".into(), q);
    }
    match spec_quantity(c, "limits", "cpu") {
        Some(q) if have.cpu_quota == want.cpu_quota && have.cpu_period == want.cpu_period => {
            limits.insert("cpu".into(), q);
        }
        _ if have.cpu_quota > 0 && have.cpu_period > 0 => {
            let milli = have.cpu_quota.saturating_mul(1000) / have.cpu_period;
            limits.insert("cpu".into(), Quantity(format!("{milli}m")));
        }
        _ => {}
    }
    match spec_quantity(c, "limits", "memory") {
        Some(q) if have.memory_limit == want.memory_limit => {
            limits.insert("memory".into(), q);
        }
        _ if have.memory_limit > 0 => {
            limits.insert("memory".into(), Quantity(have.memory_limit.to_string()));
        }
        _ => {}
    }
    ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..Default::default()
    }
}

/// The container's allocated requests: the spec's once the node accepted
/// the resize, else what its cgroups have.
fn allocated(c: &Container, have: CgroupResources, infeasible: bool) -> List {
    let source = if infeasible { reported(c, have).requests.unwrap_or_default() } else { spec_requests(c) };
    source.into_iter().filter(|(k, _)| k == "cpu" || k == "memory").collect()
}

fn spec_requests(c: &Container) -> List {
    let mut out = List::new();
    for name in ["cpu", "memory"] {
        if let Some(q) = spec_quantity(c, "requests", name).or_else(|| spec_quantity(c, "limits", name)) {
            out.insert(name.to_string(), q);
        }
    }
    out
}

fn condition(
    previous: &[PodCondition],
    type_: &str,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
    generation: Option<i64>,
) -> PodCondition {
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: type_.to_string(),
        status: "True".into(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(since),
        last_probe_time: None,
        observed_generation: generation,
    }
}

fn fill(
    statuses: &mut [ContainerStatus],
    pod: &Pod,
    observed: &ObservedPod,
    actual: &HashMap<String, CgroupResources>,
    infeasible: bool,
) {
    let Some(spec) = pod.spec.as_ref() else { return };
    for c in resizable(spec) {
        let Some(status) = statuses.iter_mut().find(|s| s.name == c.name) else { continue };
        let have = observed.latest(&c.name).filter(|o| o.state == RunState::Running).and_then(|o| actual.get(&o.id));
        if let Some(have) = have {
            status.resources = Some(reported(c, *have));
            status.allocated_resources = Some(allocated(c, *have, infeasible));
        }
    }
}

/// Writes the resize part of `status` for `pod` after a resize step.
pub fn report(
    status: &mut PodStatus,
    pod: &Pod,
    observed: &ObservedPod,
    actual: &HashMap<String, CgroupResources>,
    outcome: &ResizeOutcome,
    now: Timestamp,
) {
    let generation = pod.metadata.generation;
    status.observed_generation = generation;
    let infeasible = outcome.plan.infeasible.is_some();
    fill(status.container_statuses.get_or_insert_with(Vec::new), pod, observed, actual, infeasible);
    if let Some(init) = status.init_container_statuses.as_mut() {
        fill(init, pod, observed, actual, infeasible);
    }
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let previous: Vec<PodCondition> =
        conditions.iter().filter(|c| RESIZE_CONDITIONS.contains(&c.type_.as_str())).cloned().collect();
    conditions.retain(|c| !RESIZE_CONDITIONS.contains(&c.type_.as_str()));
    if let Some(reason) = &outcome.plan.infeasible {
        conditions.push(condition(
            &previous,
            POD_RESIZE_PENDING,
            Some("Infeasible"),
            Some(reason.clone()),
            now,
            generation,
        ));
    } else if !outcome.failed.is_empty() {
        let message = outcome.failed.iter().map(|(name, e)| format!("{name}: {e}")).collect::<Vec<_>>().join("; ");
        conditions.push(condition(&previous, POD_RESIZE_IN_PROGRESS, Some("Error"), Some(message), now, generation));
    } else if !outcome.plan.restarts.is_empty() {
        conditions.push(condition(&previous, POD_RESIZE_IN_PROGRESS, None, None, now, generation));
    }
}

/// Adds a strategic-merge `$patch: delete` for each resize condition the
/// status (as JSON) does not hold, so a finished resize's condition leaves
/// the API object (conditions merge by type; a plain absence keeps it).
pub fn delete_absent_conditions(status: &mut serde_json::Value) {
    let Some(conditions) = status.get_mut("conditions").and_then(serde_json::Value::as_array_mut) else { return };
    for type_ in RESIZE_CONDITIONS {
        if !conditions.iter().any(|c| c.get("type").and_then(serde_json::Value::as_str) == Some(type_)) {
            conditions.push(serde_json::json!({"type": type_, "$patch": "delete"}));
        }
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
