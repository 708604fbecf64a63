//! What a resize changes (pure): for each running container, the cgroup
//! values its spec asks for against the ones it has, and per changed
//! resource the container's `resizePolicy` (default `NotRequired`).

use std::collections::{BTreeSet, HashMap};

use bosun_proto::cri as api;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use serde_json::Value;

use crate::observed::{ObservedPod, RunState};
use crate::runtime_spec::linux_resources;

/// `resizePolicy.restartPolicy` that restarts the container.
pub const RESTART_CONTAINER: &str = "RestartContainer";

/// The cgroup values CRI `UpdateContainerResources` writes (0: unset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupResources {
    /// cpu shares (from the cpu request).
    pub cpu_shares: i64,
    /// CFS quota in us (from the cpu limit; 0: none).
    pub cpu_quota: i64,
    /// CFS period in us.
    pub cpu_period: i64,
    /// Memory limit in bytes (0: none).
    pub memory_limit: i64,
}

impl CgroupResources {
    /// The values of CRI resources.
    pub fn of(r: &api::LinuxContainerResources) -> Self {
        Self {
            cpu_shares: r.cpu_shares,
            cpu_quota: r.cpu_quota,
            cpu_period: r.cpu_period,
            memory_limit: r.memory_limit_in_bytes,
        }
    }

    /// What `container`'s spec asks for (`None`: a quantity does not parse,
    /// which admission prevents).
    pub fn wanted(container: &Container) -> Option<Self> {
        linux_resources(container.resources.as_ref()).ok().map(|r| Self::of(&r))
    }

    /// The CRI form, for `UpdateContainerResources`.
    pub fn to_linux(self) -> api::LinuxContainerResources {
        api::LinuxContainerResources {
            cpu_shares: self.cpu_shares,
            cpu_quota: self.cpu_quota,
            cpu_period: self.cpu_period,
            memory_limit_in_bytes: self.memory_limit,
            ..Default::default()
        }
    }

    /// The values in the runtime's verbose status: containerd's `info` key
    /// holds JSON whose `runtimeSpec.linux.resources` is the container's
    /// current OCI resources (updated by `UpdateContainerResources`).
    pub fn from_runtime_info(info: &HashMap<String, String>) -> Option<Self> {
        let doc: Value = serde_json::from_str(info.get("info")?).ok()?;
        let r = doc.pointer("/runtimeSpec/linux/resources")?;
        let num = |p: &str| r.pointer(p).and_then(Value::as_i64).unwrap_or(0);
        Some(Self {
            cpu_shares: num("/cpu/shares"),
            cpu_quota: num("/cpu/quota").max(0),
            cpu_period: num("/cpu/period"),
            memory_limit: num("/memory/limit").max(0),
        })
    }

    fn cpu(self) -> (i64, i64, i64) {
        let period = if self.cpu_quota > 0 { self.cpu_period } else { 0 };
        (self.cpu_shares, self.cpu_quota, period)
    }
}

/// What the node offers pods (the allocatable cpu and memory).
pub use crate::node::NodeAllocatable as NodeCapacity;

/// One in-place update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// CRI container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// The values to write.
    pub target: CgroupResources,
}

/// The resize decision for one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResizePlan {
    /// Containers updated in place.
    pub updates: Vec<Update>,
    /// Ids of containers to restart (a changed resource says `RestartContainer`).
    pub restarts: BTreeSet<String>,
    /// Why the resize cannot happen on this node (`PodResizePending`, reason `Infeasible`).
    pub infeasible: Option<String>,
}

impl ResizePlan {
    /// True when nothing is to be done.
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.restarts.is_empty() && self.infeasible.is_none()
    }
}

/// App containers and sidecars (restartable init containers): the resizable ones.
pub fn resizable(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    let sidecars = spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers.iter().chain(sidecars)
}

fn restart_required(container: &Container, resource: &str) -> bool {
    container
        .resize_policy
        .iter()
        .flatten()
        .any(|p| p.resource_name == resource && p.restart_policy == RESTART_CONTAINER)
}

/// The pod's requests (a missing request counts its limit), summed.
fn requests(spec: &PodSpec) -> (i64, i64) {
    let mut cpu: i64 = 0;
    let mut memory: i64 = 0;
    for c in resizable(spec) {
        let r = c.resources.as_ref();
        let get = |name: &str| {
            r.and_then(|r| r.requests.as_ref())
                .and_then(|m| m.get(name))
                .or_else(|| r.and_then(|r| r.limits.as_ref()).and_then(|m| m.get(name)))
        };
        let c_cpu = get("cpu").and_then(|q| bosun_resources::milli_value(&q.0).ok()).unwrap_or(0);
        let c_mem = get("memory").and_then(|q| bosun_resources::plain_value(&q.0).ok()).unwrap_or(0);
        cpu = cpu.saturating_add(c_cpu);
        memory = memory.saturating_add(c_mem);
    }
    (cpu, memory)
}

/// Upstream's message when a resize can never fit the node.
fn infeasible(spec: &PodSpec, node: NodeCapacity) -> Option<String> {
    let (cpu, memory) = requests(spec);
    let over = |name: &str, requested: i64, capacity: i64| {
        (requested > capacity)
            .then(|| format!("Node didn't have enough capacity: {name}, requested: {requested}, capacity: {capacity}"))
    };
    over("cpu", cpu, node.cpu_millis).or_else(|| over("memory", memory, node.memory_bytes))
}

/// Decides the resize of `pod` given the cgroup values its running
/// containers have (`actual`, by container id; a container not in it is
/// left alone until it is known).
pub fn plan(
    pod: &Pod,
    observed: &ObservedPod,
    actual: &HashMap<String, CgroupResources>,
    node: NodeCapacity,
) -> ResizePlan {
    let mut out = ResizePlan::default();
    let Some(spec) = pod.spec.as_ref() else { return out };
    if pod.metadata.deletion_timestamp.is_some() {
        return out;
    }
    let Some(sandbox) = observed.ready_sandbox() else { return out };
    let mut changes = Vec::new();
    for c in resizable(spec) {
        let Some(running) =
            observed.latest(&c.name).filter(|o| o.state == RunState::Running && o.sandbox_id == sandbox.id)
        else {
            continue;
        };
        let (Some(have), Some(want)) = (actual.get(&running.id), CgroupResources::wanted(c)) else { continue };
        let cpu = have.cpu() != want.cpu();
        let memory = have.memory_limit != want.memory_limit;
        if !cpu && !memory {
            continue;
        }
        let restart = (cpu && restart_required(c, "cpu")) || (memory && restart_required(c, "memory"));
        changes.push((running.id.clone(), c.name.clone(), want, restart));
    }
    if changes.is_empty() {
        return out;
    }
    if let Some(reason) = infeasible(spec, node) {
        out.infeasible = Some(reason);
        return out;
    }
    for (id, name, target, restart) in changes {
        if restart {
            out.restarts.insert(id);
        } else {
            out.updates.push(Update { id, name, target });
        }
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
