//! What the runtime has for one pod, rebuilt from CRI on every sync (and so
//! after an agent restart): its sandboxes, containers and image presence.
//!
//! Must not: remember anything between syncs. The assembly is pure
//! ([`assemble`]); [`observe`] only makes the CRI calls feeding it.

use std::collections::{BTreeMap, HashMap};

use bosun_proto::cri as api;
use jiff::Timestamp;

use crate::labels;
use crate::runtime::{Runtime, RuntimeError};

/// Lifecycle state of a container as the runtime reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Exited (see exit code).
    Exited,
    /// The runtime does not know.
    Unknown,
}

/// One sandbox of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedSandbox {
    /// CRI sandbox id.
    pub id: String,
    /// Sandbox attempt from its metadata.
    pub attempt: u32,
    /// SANDBOX_READY.
    pub ready: bool,
    /// Creation time, ns since the epoch.
    pub created_at: i64,
    /// Pod IPs (primary first) when the sandbox has a network.
    pub ips: Vec<String>,
}

/// One container of the pod (any attempt, any sandbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    /// CRI container id.
    pub id: String,
    /// Sandbox the container belongs to.
    pub sandbox_id: String,
    /// Container name from metadata.
    pub name: String,
    /// Attempt (restart count) from metadata.
    pub attempt: u32,
    /// Runtime state.
    pub state: RunState,
    /// Creation time.
    pub created_at: Option<Timestamp>,
    /// Start time.
    pub started_at: Option<Timestamp>,
    /// Exit time.
    pub finished_at: Option<Timestamp>,
    /// Exit code (when exited).
    pub exit_code: i32,
    /// Runtime's reason (e.g. `OOMKilled`, `Completed`, `Error`).
    pub reason: String,
    /// Runtime's message.
    pub message: String,
    /// Image as requested.
    pub image: String,
    /// Image reference resolved by the runtime (digest).
    pub image_ref: String,
    /// Log path reported by the runtime.
    pub log_path: String,
    /// What the container records of the spec it was made from
    /// ([`crate::spec_hash`]); `None` when nothing is comparable.
    pub spec_hash: Option<crate::spec_hash::Recorded>,
    /// Where its termination message is read from.
    pub termination: Option<crate::termination_message::Source>,
}

/// Everything the runtime has for one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedPod {
    /// Sandboxes, newest attempt first.
    pub sandboxes: Vec<ObservedSandbox>,
    /// Containers, by name then newest attempt first.
    pub containers: Vec<ObservedContainer>,
    /// For each image the pod's containers use: its id when present locally.
    pub images: BTreeMap<String, Option<String>>,
}

impl ObservedPod {
    /// The newest sandbox, ready or not.
    pub fn latest_sandbox(&self) -> Option<&ObservedSandbox> {
        self.sandboxes.first()
    }

    /// The newest sandbox if it is ready.
    pub fn ready_sandbox(&self) -> Option<&ObservedSandbox> {
        self.latest_sandbox().filter(|s| s.ready)
    }

    /// All attempts of container `name`, newest first.
    pub fn attempts<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ObservedContainer> + 'a {
        self.containers.iter().filter(move |c| c.name == name)
    }

    /// The newest attempt of container `name`.
    pub fn latest(&self, name: &str) -> Option<&ObservedContainer> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The attempt before the newest of container `name`.
    pub fn previous(&self, name: &str) -> Option<&ObservedContainer> {
        self.containers.iter().filter(|c| c.name == name).nth(1)
    }

    /// True when the runtime has nothing for this pod.
    pub fn is_empty(&self) -> bool {
        self.sandboxes.is_empty() && self.containers.is_empty()
    }

    /// Ids of containers that are running or created.
    pub fn live_container_ids(&self) -> Vec<String> {
        self.containers
            .iter()
            .filter(|c| matches!(c.state, RunState::Running | RunState::Created | RunState::Unknown))
            .map(|c| c.id.clone())
            .collect()
    }
}

fn timestamp(nanos: i64) -> Option<Timestamp> {
    if nanos <= 0 {
        return None;
    }
    Timestamp::from_nanosecond(i128::from(nanos)).ok()
}

fn run_state(state: i32) -> RunState {
    match api::ContainerState::try_from(state) {
        Ok(api::ContainerState::ContainerCreated) => RunState::Created,
        Ok(api::ContainerState::ContainerRunning) => RunState::Running,
        Ok(api::ContainerState::ContainerExited) => RunState::Exited,
        _ => RunState::Unknown,
    }
}

/// Builds the observed pod from CRI answers: sandbox statuses, (container,
/// status) pairs and image presence.
pub fn assemble(
    sandboxes: Vec<api::PodSandboxStatus>,
    containers: Vec<(api::Container, api::ContainerStatus)>,
    images: BTreeMap<String, Option<String>>,
) -> ObservedPod {
    let mut sandboxes: Vec<ObservedSandbox> = sandboxes
        .into_iter()
        .map(|s| {
            let ips = s
                .network
                .map(|n| {
                    std::iter::once(n.ip)
                        .chain(n.additional_ips.into_iter().map(|ip| ip.ip))
                        .filter(|ip| !ip.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            ObservedSandbox {
                attempt: s.metadata.map(|m| m.attempt).unwrap_or(0),
                ready: s.state == api::PodSandboxState::SandboxReady as i32,
                created_at: s.created_at,
                ips,
                id: s.id,
            }
        })
        .collect();
    sandboxes.sort_by_key(|s| std::cmp::Reverse((s.attempt, s.created_at)));
    let mut containers: Vec<ObservedContainer> = containers
        .into_iter()
        .map(|(listed, status)| {
            let metadata = status.metadata.or(listed.metadata).unwrap_or_default();
            // ListContainers gives the image as requested (the status gives
            // a tag of the image, maybe another one).
            let requested = listed.image.as_ref().map(|i| i.image.as_str()).unwrap_or_default();
            let spec_hash = crate::spec_hash::recorded(&status.labels, &status.annotations, requested);
            ObservedContainer {
                id: listed.id,
                sandbox_id: listed.pod_sandbox_id,
                name: metadata.name,
                attempt: metadata.attempt,
                state: run_state(status.state),
                created_at: timestamp(status.created_at),
                started_at: timestamp(status.started_at),
                finished_at: timestamp(status.finished_at),
                exit_code: status.exit_code,
                reason: status.reason,
                message: status.message,
                image: status.image.map(|i| i.image).unwrap_or_default(),
                image_ref: status.image_ref,
                log_path: status.log_path,
                spec_hash,
                termination: crate::termination_message::source(&status.annotations, &status.mounts),
            }
        })
        .collect();
    containers
        .sort_by(|a, b| (a.name.as_str(), b.attempt, b.created_at).cmp(&(b.name.as_str(), a.attempt, a.created_at)));
    ObservedPod { sandboxes, containers, images }
}

/// Label selector matching every CRI object of the pod with this UID.
pub fn uid_selector(uid: &str) -> HashMap<String, String> {
    HashMap::from([(labels::POD_UID.to_string(), uid.to_string())])
}

/// Asks the runtime for everything of pod `uid` and assembles it. Objects
/// that vanish between the list and the status call are skipped.
pub async fn observe(runtime: &dyn Runtime, uid: &str, images: &[String]) -> Result<ObservedPod, RuntimeError> {
    let sandbox_filter = api::PodSandboxFilter { label_selector: uid_selector(uid), ..Default::default() };
    let mut sandboxes = Vec::new();
    for sandbox in runtime.list_pod_sandboxes(Some(sandbox_filter)).await? {
        match runtime.pod_sandbox_status(&sandbox.id).await {
            Ok(status) => sandboxes.push(status),
            Err(e) if e.not_found => {}
            Err(e) => return Err(e),
        }
    }
    let container_filter = api::ContainerFilter { label_selector: uid_selector(uid), ..Default::default() };
    let mut containers = Vec::new();
    for container in runtime.list_containers(Some(container_filter)).await? {
        match runtime.container_status(&container.id).await {
            Ok(status) => containers.push((container, status)),
            Err(e) if e.not_found => {}
            Err(e) => return Err(e),
        }
    }
    let mut present = BTreeMap::new();
    for image in images {
        let id = runtime.image_status(image).await?.map(|i| i.id);
        present.insert(image.clone(), id);
    }
    Ok(assemble(sandboxes, containers, present))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(id: &str, attempt: u32, ready: bool, ip: &str) -> api::PodSandboxStatus {
        api::PodSandboxStatus {
            id: id.into(),
            metadata: Some(api::PodSandboxMetadata { attempt, ..Default::default() }),
            state: if ready { 0 } else { 1 },
            created_at: i64::from(attempt) + 1,
            network: Some(api::PodSandboxNetworkStatus { ip: ip.into(), additional_ips: vec![] }),
            ..Default::default()
        }
    }

    fn container(
        id: &str,
        name: &str,
        attempt: u32,
        state: api::ContainerState,
    ) -> (api::Container, api::ContainerStatus) {
        let metadata = Some(api::ContainerMetadata { name: name.into(), attempt });
        (
            api::Container {
                id: id.into(),
                pod_sandbox_id: "s1".into(),
                metadata: metadata.clone(),
                ..Default::default()
            },
            api::ContainerStatus { id: id.into(), metadata, state: state as i32, ..Default::default() },
        )
    }

    #[test]
    fn orders_sandboxes_and_attempts_newest_first() {
        let observed = assemble(
            vec![sandbox("old", 0, false, ""), sandbox("new", 1, true, "10.244.0.5")],
            vec![
                container("a0", "app", 0, api::ContainerState::ContainerExited),
                container("a2", "app", 2, api::ContainerState::ContainerRunning),
                container("a1", "app", 1, api::ContainerState::ContainerExited),
                container("b0", "sidecar", 0, api::ContainerState::ContainerCreated),
            ],
            BTreeMap::new(),
        );
        assert_eq!(observed.ready_sandbox().map(|s| s.id.as_str()), Some("new"));
        assert_eq!(observed.ready_sandbox().map(|s| s.ips.clone()), Some(vec!["10.244.0.5".to_string()]));
        assert_eq!(observed.latest("app").map(|c| c.id.as_str()), Some("a2"));
        assert_eq!(observed.previous("app").map(|c| c.id.as_str()), Some("a1"));
        assert_eq!(observed.latest("sidecar").map(|c| c.state), Some(RunState::Created));
        assert_eq!(observed.live_container_ids(), vec!["a2".to_string(), "b0".to_string()]);
    }

    #[test]
    fn latest_sandbox_not_ready_means_no_ready_sandbox() {
        let observed = assemble(vec![sandbox("s", 3, false, "")], vec![], BTreeMap::new());
        assert_eq!(observed.latest_sandbox().map(|s| s.attempt), Some(3));
        assert!(observed.ready_sandbox().is_none());
        assert_eq!(observed.latest_sandbox().map(|s| s.ips.len()), Some(0));
    }
}
