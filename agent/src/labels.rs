//! Names of the CRI labels and annotations the agent puts on sandboxes and
//! containers. Restart recovery finds a pod's runtime objects by these.

/// Pod name label on sandboxes and containers.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
/// Pod namespace label on sandboxes and containers.
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Pod UID label on sandboxes and containers; the key of restart recovery.
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// Container name label on containers.
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Marks runtime objects created by this agent.
pub const MANAGED_BY: &str = "io.bosun.managed";
