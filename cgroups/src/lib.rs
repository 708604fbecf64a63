//! Pod cgroup management for the bosun agent.
//!
//! Will own: the node's pod cgroup tree (`kubepods` / QoS classes / per-pod
//! cgroups), translating pod resources into cgroup limits on v1 and v2, node
//! allocatable, stats and OOM detection. Backends (v1, v2, systemd) will be an
//! enum, each in its own file, with the cgroupfs root injected so tests run in
//! temp dirs.
//!
//! Must not: talk to the container runtime (it does not depend on `bosun-cri`);
//! the agent decides which pods exist, this crate only shapes their cgroups.

pub mod stats;
