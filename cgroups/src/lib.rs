//! Pod cgroup management for the bosun agent.
//!
//! Owns: the node's pod cgroup tree as the kubelet builds it (`kubepods`,
//! its `burstable` and `besteffort` children, one `pod<uid>` cgroup per pod,
//! Guaranteed pods directly under `kubepods`; [`tree`]), its names in the
//! cgroupfs and systemd conventions ([`name`]), the limits a pod's resources
//! give its cgroup ([`limits`], [`pod_limits`], pure) and the backends that
//! write them: cgroup v1 and v2 on the `cgroups-rs` crate behind one trait,
//! [`CgroupDriver`], each backend in its own file ([`v1`], [`v2`]), dispatched
//! by the [`Backend`] enum. The cgroupfs root is injected, so tests run in
//! temp dirs; [`testing`] holds a recording fake.
//!
//! Must not: talk to the container runtime (it does not depend on `bosun-cri`)
//! or the API server; the agent decides which pods exist, this crate only
//! shapes their cgroups.

pub mod driver;
pub mod error;
pub mod limits;
pub mod name;
pub mod pod_limits;
pub mod stats;
pub mod testing;
pub mod tree;
pub mod v1;
pub mod v2;

pub use driver::{Backend, CgroupDriver};
pub use error::{Error, Result};
pub use limits::Limits;
pub use name::{CgroupName, Naming, QosClass};
pub use pod_limits::{pod_limits, PodLimitOptions};
pub use tree::NodeTree;
