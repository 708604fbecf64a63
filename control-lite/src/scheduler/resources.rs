//! Resource arithmetic of the scheduler: what a pod requests and what a node
//! can hold.
//!
//! Owns: summing container requests (requests, falling back to limits, init
//! containers as a max) into `Resources`, and reading node allocatable. Sums
//! are checked: a pod whose requests overflow is an `Error::Overflow`, never
//! a panic. Must not: decide placement (that is `decision`).

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

use bosun_resources::quantity::{self, QuantityError};

/// Resources that cannot be read or counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A quantity did not parse or does not fit in 64 bits.
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    /// The requests of one pod add up to more than 64 bits can hold.
    #[error("its {resource} requests add up to more than can be counted")]
    Overflow {
        /// "cpu" or "memory".
        resource: &'static str,
    },
}

/// Upstream's default cpu request (millicores) used for scoring only.
const DEFAULT_MILLI_CPU_FOR_SCORE: i64 = 100;
/// Upstream's default memory request (bytes) used for scoring only.
const DEFAULT_MEMORY_FOR_SCORE: i64 = 200 * 1024 * 1024;

/// Cpu and memory in scheduler units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub milli_cpu: i64,
    /// Bytes.
    pub memory: i64,
}

impl Resources {
    /// Component-wise sum, or which resource overflowed.
    pub fn checked_plus(self, other: Resources) -> Result<Resources, Error> {
        Ok(Resources {
            milli_cpu: self.milli_cpu.checked_add(other.milli_cpu).ok_or(Error::Overflow { resource: "cpu" })?,
            memory: self.memory.checked_add(other.memory).ok_or(Error::Overflow { resource: "memory" })?,
        })
    }

    /// Component-wise sum, saturating at the bounds (for usage totals,
    /// where "full" is the right reading of an overflow).
    pub fn saturating_plus(self, other: Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.saturating_add(other.milli_cpu),
            memory: self.memory.saturating_add(other.memory),
        }
    }

    /// Component-wise maximum.
    fn max(self, other: Resources) -> Resources {
        Resources { milli_cpu: self.milli_cpu.max(other.milli_cpu), memory: self.memory.max(other.memory) }
    }

    /// The same request with upstream's non-zero defaults filled in, so that
    /// pods without requests still spread when scoring.
    pub fn non_zero(self) -> Resources {
        Resources {
            milli_cpu: if self.milli_cpu == 0 { DEFAULT_MILLI_CPU_FOR_SCORE } else { self.milli_cpu },
            memory: if self.memory == 0 { DEFAULT_MEMORY_FOR_SCORE } else { self.memory },
        }
    }
}

/// What a node can hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocatable {
    /// Cpu and memory.
    pub resources: Resources,
    /// Maximum number of pods.
    pub pods: i64,
}

/// A pod's effective request: max(sum of containers, largest init container).
pub fn pod_requests(pod: &Pod) -> Result<Resources, Error> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(Resources::default());
    };
    let mut sum = Resources::default();
    for container in &spec.containers {
        sum = sum.checked_plus(container_requests(container)?)?;
    }
    let mut init_max = Resources::default();
    for container in spec.init_containers.iter().flatten() {
        init_max = init_max.max(container_requests(container)?);
    }
    Ok(sum.max(init_max))
}

fn container_requests(container: &Container) -> Result<Resources, QuantityError> {
    let resources = container.resources.as_ref();
    let requests = resources.and_then(|r| r.requests.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());
    let pick = |name: &str| -> Option<&Quantity> {
        requests.and_then(|r| r.get(name)).or_else(|| limits.and_then(|l| l.get(name)))
    };
    Ok(Resources {
        milli_cpu: pick("cpu").map(quantity::cpu_millis).transpose()?.unwrap_or(0),
        memory: pick("memory").map(quantity::value).transpose()?.unwrap_or(0),
    })
}

/// Node allocatable (falling back to capacity); missing entries are zero.
pub fn node_allocatable(node: &Node) -> Result<Allocatable, Error> {
    let status = node.status.as_ref();
    let empty = BTreeMap::new();
    let table = status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref())).unwrap_or(&empty);
    Ok(Allocatable {
        resources: Resources {
            milli_cpu: table.get("cpu").map(quantity::cpu_millis).transpose()?.unwrap_or(0),
            memory: table.get("memory").map(quantity::value).transpose()?.unwrap_or(0),
        },
        pods: table.get("pods").map(quantity::value).transpose()?.unwrap_or(0),
    })
}

/// True for pods that no longer hold resources (Succeeded or Failed).
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
    }

    #[test]
    fn pod_requests_sum_containers_and_take_init_max() {
        let cases = [
            (json!({"containers": [{"name": "a"}]}), Resources::default()),
            (
                json!({"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Mi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "1"}}}
                ]}),
                Resources { milli_cpu: 1100, memory: 1 << 20 },
            ),
            (
                json!({"containers": [{"name": "a", "resources": {"limits": {"cpu": "200m"}}}]}),
                Resources { milli_cpu: 200, memory: 0 },
            ),
            (
                json!({
                    "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
                    "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "5"}}}]
                }),
                Resources { milli_cpu: 2000, memory: 5 },
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(pod_requests(&pod(spec.clone())), Ok(want), "{spec}");
        }
    }

    #[test]
    fn allocatable_falls_back_to_capacity() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "2", "memory": "1Gi", "pods": "110"}}
        }))
        .expect("node");
        assert_eq!(
            node_allocatable(&node),
            Ok(Allocatable { resources: Resources { milli_cpu: 2000, memory: 1 << 30 }, pods: 110 })
        );
    }

    #[test]
    fn requests_that_overflow_are_an_error() {
        let huge = json!({"requests": {"cpu": "9223372036854775807m", "memory": "1"}});
        let two = pod(json!({"containers": [{"name": "a", "resources": huge}, {"name": "b", "resources": huge}]}));
        assert_eq!(pod_requests(&two), Err(Error::Overflow { resource: "cpu" }));
        let one = pod(json!({"containers": [{"name": "a", "resources": huge}]}));
        assert_eq!(pod_requests(&one).map(|r| r.milli_cpu), Ok(i64::MAX), "one alone still fits in 64 bits");
        let mut big = Resources { milli_cpu: i64::MAX, memory: i64::MAX };
        big = big.saturating_plus(big);
        assert_eq!(big, Resources { milli_cpu: i64::MAX, memory: i64::MAX });
    }
}
