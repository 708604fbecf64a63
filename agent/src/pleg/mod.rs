//! Evented pod lifecycle (PLEG): containerd's event stream, filtered to the
//! task events of the CRI namespace (`/tasks/start`, `/tasks/exit`,
//! `/tasks/oom`, `/tasks/delete`), turned into [`Signal`]s that the pod
//! manager routes to the one worker whose container changed, within
//! milliseconds of the change.
//!
//! Owns: decoding envelopes ([`decode`], pure), the subscription with its
//! reconnect loop (`subscribe::run`), and the routing decision ([`route`],
//! pure). The manager's periodic relist stays the safety net: a
//! [`Signal::Resync`] after every (re)subscription makes it relist at once,
//! since events sent while the stream was down are lost.
//!
//! Must not: touch containers, or wait on a pod worker. A slow worker only
//! delays itself; the stream and the relist go on.

mod relist;
mod subscribe;

use std::collections::HashMap;

use bosun_proto::containerd::{events, types::Envelope};
use prost::Message as _;

pub use relist::{changed, snapshot, wait_exited, Relister, Snapshot};
pub use subscribe::{run, Subscription};

/// containerd namespace of the CRI plugin's containers.
pub const CRI_NAMESPACE: &str = crate::airgap::CRI_NAMESPACE;

/// What happened to a container's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The task started.
    Started,
    /// The container's main process exited.
    Exited,
    /// The kernel OOM-killed a process of the container.
    Oom,
    /// The task was deleted.
    Deleted,
}

/// One container lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// The runtime's container (or sandbox) id.
    pub container_id: String,
    /// What happened.
    pub change: Change,
}

/// What the subscription hands to the pod manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A container changed.
    Container(ContainerEvent),
    /// Events may have been missed (the stream was (re)opened): relist now.
    Resync,
}

/// The subscription filters: one per topic, all in the CRI namespace
/// (filters are OR-ed, the comma inside one is AND).
pub fn filters() -> Vec<String> {
    ["start", "exit", "oom", "delete"]
        .iter()
        .map(|topic| format!("topic==\"/tasks/{topic}\",namespace=={CRI_NAMESPACE}"))
        .collect()
}

/// How long after containerd stamped `envelope` the agent received it at
/// `now` (`None` without a valid stamp; zero when clocks disagree).
pub fn event_latency(envelope: &Envelope, now: std::time::SystemTime) -> Option<std::time::Duration> {
    let stamp = envelope.timestamp.as_ref()?;
    let secs = u64::try_from(stamp.seconds).ok()?;
    let nanos = u32::try_from(stamp.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    let sent = std::time::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos))?;
    Some(now.duration_since(sent).unwrap_or_default())
}

/// The container event of an envelope, if it is one the agent cares about.
/// Exits and deletes of exec'd processes (probes, `kubectl exec`) carry the
/// exec id in `id` and are skipped: only the container's own process counts.
pub fn decode(envelope: &Envelope) -> Option<ContainerEvent> {
    if envelope.namespace != CRI_NAMESPACE {
        return None;
    }
    let payload = envelope.event.as_ref()?.value.as_slice();
    let own = |container_id: &str, id: &str| id.is_empty() || id == container_id;
    let (container_id, change) = match envelope.topic.as_str() {
        "/tasks/start" => (events::TaskStart::decode(payload).ok()?.container_id, Change::Started),
        "/tasks/exit" => {
            let exit = events::TaskExit::decode(payload).ok()?;
            if !own(&exit.container_id, &exit.id) {
                return None;
            }
            (exit.container_id, Change::Exited)
        }
        "/tasks/oom" => (events::TaskOom::decode(payload).ok()?.container_id, Change::Oom),
        "/tasks/delete" => {
            let delete = events::TaskDelete::decode(payload).ok()?;
            if !own(&delete.container_id, &delete.id) {
                return None;
            }
            (delete.container_id, Change::Deleted)
        }
        _ => return None,
    };
    (!container_id.is_empty()).then_some(ContainerEvent { container_id, change })
}

/// What the manager does with a container event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Wake the worker of pod `uid` now.
    Wake(String),
    /// Wake the worker of pod `uid` once the runtime reports the container
    /// exited: containerd publishes the exit before the CRI plugin's own
    /// handler has recorded it, so an immediate sync would still see it running.
    WakeWhenExited {
        /// The pod.
        uid: String,
        /// The container.
        container_id: String,
    },
    /// The container is not known yet (just created, or a sandbox): relist.
    Relist,
}

/// Routes `event` by the container-to-pod map of the last relist.
pub fn route(event: &ContainerEvent, owners: &HashMap<String, String>) -> Route {
    match owners.get(&event.container_id) {
        None => Route::Relist,
        Some(uid) if event.change == Change::Exited => {
            Route::WakeWhenExited { uid: uid.clone(), container_id: event.container_id.clone() }
        }
        Some(uid) => Route::Wake(uid.clone()),
    }
}

#[cfg(test)]
mod tests;
