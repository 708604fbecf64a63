//! The eviction manager's decisions (upstream kubelet's `eviction` package):
//! node signals (`memory.available`, `nodefs.available`, `pid.available`),
//! hard and soft thresholds from KubeletConfiguration `evictionHard`,
//! `evictionSoft` and `evictionSoftGracePeriod` (or the flags of the same
//! names), the node conditions and taints they raise, the order in which
//! pods are evicted and the status an evicted pod gets.
//!
//! Everything here is pure and table-tested: `thresholds` parses the
//! configuration, `signals` turns cgroup/proc/statvfs contents into
//! observations, `decide` says which thresholds are met (soft ones after
//! their grace period), which conditions the node shows (kept for the
//! pressure transition period) and which resource to reclaim, and `rank`
//! orders the candidate pods and words upstream's `Evicted` message.
//!
//! `manager` is the thin loop applying them (files, statvfs, CRI
//! ContainerStats for pod usage, the pod status write, the Node's taints);
//! `node_conditions` puts the pressure into the node heartbeat's conditions.
//!
//! Must not: decide anything in the manager loop; hold pod state (pods are
//! listed from the API only when a pod must be evicted).

pub mod config;
pub mod decide;
pub mod manager;
pub mod node_conditions;
pub mod rank;
pub mod signals;
pub mod thresholds;

pub use decide::{decide, Decision, PressureState};
pub use rank::{evicted_message, rank_for, PodUsage};
pub use signals::Observations;
pub use thresholds::{Signal, Threshold, ThresholdValue, Thresholds};

/// A configuration value the eviction manager cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An unknown signal name (`evictionHard` key).
    #[error("unsupported eviction signal {0:?}")]
    UnknownSignal(String),
    /// A threshold value that is neither a quantity nor a percentage in (0, 100].
    #[error("invalid eviction threshold {signal}: {value:?}")]
    BadValue {
        /// The signal.
        signal: String,
        /// The value as written.
        value: String,
    },
    /// A soft threshold without a grace period, or a bad duration.
    #[error("eviction soft threshold {signal}: {message}")]
    BadGrace {
        /// The signal.
        signal: String,
        /// What is wrong.
        message: String,
    },
    /// A flag entry that is not `<signal><<value>`.
    #[error("invalid eviction flag entry {0:?}: want <signal><<quantity or percent>")]
    BadFlag(String),
}
