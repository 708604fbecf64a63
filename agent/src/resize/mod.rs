//! In-place pod resize on the node (upstream's in-place pod vertical
//! scaling, GA in 1.35). The apiserver's `pods/resize` subresource changes a
//! container's cpu/memory requests and limits; the pod worker then:
//!
//! 1. learns what each running container really has (`apply`: the runtime's
//!    verbose status, containerd's current OCI spec, once per container id,
//!    then kept in memory, so an agent restart re-reads it);
//! 2. decides (`plan`, pure): containers whose cgroup values differ from the
//!    spec are updated in place with CRI `UpdateContainerResources`, or
//!    restarted when a changed resource's `resizePolicy` says
//!    `RestartContainer` (through the pod actions' "definition changed"
//!    path, as the spec hash leaves resources out); a pod whose requests no
//!    longer fit the node is `Infeasible` and nothing is changed;
//! 3. reports (`report`, pure): `containerStatuses[].resources` (what the
//!    cgroups have), `allocatedResources`, the `PodResizePending` /
//!    `PodResizeInProgress` conditions and `status.observedGeneration`.
//!
//! Must not: write cgroup files itself (the runtime does; pod-level cgroups
//! belong to the cgroups glue), or resize pods that are terminating.

pub mod apply;
pub mod plan;
pub mod report;

pub use apply::{ResizeOutcome, ResizeState};
pub use plan::{CgroupResources, NodeCapacity, ResizePlan};
