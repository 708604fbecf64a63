//! The fake runtime's sandboxes and containers.
//!
//! Owns: the state machine of fake pod sandboxes (ready -> not ready ->
//! removed) and containers (created -> running -> exited -> removed), and the
//! answers to the CRI calls about them. Pure: every method takes the current
//! time as an argument and returns either the new answer or the `Status` a
//! runtime would send, so it is tested as data without a server.

use std::collections::{BTreeMap, HashMap};

use bosun_proto::cri::{self as api, ContainerState, PodSandboxState};
use tonic::Status;

use super::images::ImageStore;

/// Exit code of a container killed by StopContainer or StopPodSandbox (SIGKILL).
pub(crate) const KILLED_EXIT_CODE: i32 = 137;

#[derive(Debug, Clone)]
struct Sandbox {
    id: String,
    config: api::PodSandboxConfig,
    state: PodSandboxState,
    created_at: i64,
    runtime_handler: String,
    ip: String,
}

#[derive(Debug, Clone)]
struct Container {
    id: String,
    sandbox_id: String,
    config: api::ContainerConfig,
    image_ref: String,
    state: ContainerState,
    created_at: i64,
    started_at: i64,
    finished_at: i64,
    exit_code: i32,
    reason: String,
}

/// Everything the fake runtime keeps: images, sandboxes, containers.
#[derive(Debug, Default)]
pub(crate) struct World {
    pub(crate) images: ImageStore,
    sandboxes: BTreeMap<String, Sandbox>,
    containers: BTreeMap<String, Container>,
    next_id: u32,
}

fn labels_match(selector: &HashMap<String, String>, labels: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn sandbox_not_found(id: &str) -> Status {
    Status::not_found(format!("an error occurred when try to find sandbox {id:?}: not found"))
}

fn container_not_found(id: &str) -> Status {
    Status::not_found(format!("an error occurred when try to find container {id:?}: not found"))
}

/// A loopback address per sandbox (127.88.x.y), so a test that probes a
/// "pod IP" never sends packets off the host.
fn loopback_ip(n: u32) -> String {
    let n = n % (256 * 255);
    format!("127.88.{}.{}", n / 255, n % 255 + 1)
}

impl World {
    fn new_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// RunPodSandbox. The (namespace, name, uid, attempt) tuple is reserved
    /// while a sandbox with it exists, as in containerd.
    pub(crate) fn run_sandbox(
        &mut self,
        config: api::PodSandboxConfig,
        runtime_handler: &str,
        now: i64,
    ) -> Result<String, Status> {
        let meta =
            config.metadata.clone().ok_or_else(|| Status::invalid_argument("sandbox config must include metadata"))?;
        let taken = self.sandboxes.values().find(|s| {
            s.config.metadata.as_ref().is_some_and(|m| {
                m.name == meta.name && m.namespace == meta.namespace && m.uid == meta.uid && m.attempt == meta.attempt
            })
        });
        if let Some(existing) = taken {
            return Err(Status::unknown(format!(
                "failed to reserve sandbox name \"{}_{}_{}_{}\": name is reserved for {:?}",
                meta.name, meta.namespace, meta.uid, meta.attempt, existing.id
            )));
        }
        let n = self.new_id();
        let id = format!("sandbox-{n:06}");
        self.sandboxes.insert(
            id.clone(),
            Sandbox {
                id: id.clone(),
                config,
                state: PodSandboxState::SandboxReady,
                created_at: now,
                runtime_handler: runtime_handler.to_string(),
                ip: loopback_ip(n),
            },
        );
        Ok(id)
    }

    /// StopPodSandbox: kills the sandbox's running containers.
    pub(crate) fn stop_sandbox(&mut self, id: &str, now: i64) -> Result<(), Status> {
        let sandbox = self.sandboxes.get_mut(id).ok_or_else(|| sandbox_not_found(id))?;
        sandbox.state = PodSandboxState::SandboxNotready;
        let running: Vec<String> = self
            .containers
            .values()
            .filter(|c| c.sandbox_id == id && c.state == ContainerState::ContainerRunning)
            .map(|c| c.id.clone())
            .collect();
        for cid in running {
            self.exit_container(&cid, KILLED_EXIT_CODE, "Error", now)?;
        }
        Ok(())
    }

    /// RemovePodSandbox: removes the sandbox and its containers; absent is fine.
    pub(crate) fn remove_sandbox(&mut self, id: &str) {
        self.sandboxes.remove(id);
        self.containers.retain(|_, c| c.sandbox_id != id);
    }

    /// PodSandboxStatus.
    pub(crate) fn sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus, Status> {
        let s = self.sandboxes.get(id).ok_or_else(|| sandbox_not_found(id))?;
        Ok(api::PodSandboxStatus {
            id: s.id.clone(),
            metadata: s.config.metadata.clone(),
            state: s.state as i32,
            created_at: s.created_at,
            network: Some(api::PodSandboxNetworkStatus { ip: s.ip.clone(), additional_ips: Vec::new() }),
            linux: None,
            labels: s.config.labels.clone(),
            annotations: s.config.annotations.clone(),
            runtime_handler: s.runtime_handler.clone(),
        })
    }

    /// ListPodSandbox: id prefix, state and labels are ANDed.
    pub(crate) fn list_sandboxes(&self, filter: Option<&api::PodSandboxFilter>) -> Vec<api::PodSandbox> {
        self.sandboxes
            .values()
            .filter(|s| {
                filter.is_none_or(|f| {
                    s.id.starts_with(&f.id)
                        && f.state.is_none_or(|st| st.state == s.state as i32)
                        && labels_match(&f.label_selector, &s.config.labels)
                })
            })
            .map(|s| api::PodSandbox {
                id: s.id.clone(),
                metadata: s.config.metadata.clone(),
                state: s.state as i32,
                created_at: s.created_at,
                labels: s.config.labels.clone(),
                annotations: s.config.annotations.clone(),
                runtime_handler: s.runtime_handler.clone(),
            })
            .collect()
    }

    /// CreateContainer: the sandbox must be ready and the image present.
    pub(crate) fn create_container(
        &mut self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        now: i64,
    ) -> Result<String, Status> {
        let sandbox = self.sandboxes.get(sandbox_id).ok_or_else(|| sandbox_not_found(sandbox_id))?;
        if sandbox.state != PodSandboxState::SandboxReady {
            return Err(Status::failed_precondition(format!("sandbox {sandbox_id:?} is not running")));
        }
        let meta = config
            .metadata
            .clone()
            .ok_or_else(|| Status::invalid_argument("container config must include metadata"))?;
        let image = config.image.as_ref().map_or("", |i| i.image.as_str());
        let image_ref = match self.images.find(image) {
            Some(found) => found.id.clone(),
            None => return Err(Status::not_found(format!("failed to get image {image:?}: image not found"))),
        };
        let taken =
            self.containers.values().any(|c| c.sandbox_id == sandbox_id && c.config.metadata.as_ref() == Some(&meta));
        if taken {
            return Err(Status::unknown(format!(
                "failed to reserve container name \"{}_{}\" in sandbox {sandbox_id:?}",
                meta.name, meta.attempt
            )));
        }
        let id = format!("container-{:06}", self.new_id());
        self.containers.insert(
            id.clone(),
            Container {
                id: id.clone(),
                sandbox_id: sandbox_id.to_string(),
                config,
                image_ref,
                state: ContainerState::ContainerCreated,
                created_at: now,
                started_at: 0,
                finished_at: 0,
                exit_code: 0,
                reason: String::new(),
            },
        );
        Ok(id)
    }

    /// StartContainer: only a created container can start.
    pub(crate) fn start_container(&mut self, id: &str, now: i64) -> Result<(), Status> {
        let c = self.containers.get_mut(id).ok_or_else(|| container_not_found(id))?;
        if c.state != ContainerState::ContainerCreated {
            return Err(Status::failed_precondition(format!("container {id:?} is in {} state", c.state.as_str_name())));
        }
        c.state = ContainerState::ContainerRunning;
        c.started_at = now;
        Ok(())
    }

    /// StopContainer: kills a running container; other states are left alone.
    pub(crate) fn stop_container(&mut self, id: &str, now: i64) -> Result<(), Status> {
        let c = self.containers.get(id).ok_or_else(|| container_not_found(id))?;
        if c.state == ContainerState::ContainerRunning {
            self.exit_container(id, KILLED_EXIT_CODE, "Error", now)?;
        }
        Ok(())
    }

    /// RemoveContainer: NotFound when absent (the client treats that as done).
    pub(crate) fn remove_container(&mut self, id: &str) -> Result<(), Status> {
        self.containers.remove(id).map(drop).ok_or_else(|| container_not_found(id))
    }

    /// The running container's process ends with `exit_code` and `reason`.
    pub(crate) fn exit_container(&mut self, id: &str, exit_code: i32, reason: &str, now: i64) -> Result<(), Status> {
        let c = self.containers.get_mut(id).ok_or_else(|| container_not_found(id))?;
        if c.state != ContainerState::ContainerRunning {
            return Err(Status::failed_precondition(format!(
                "container {id:?} is in {} state, not running",
                c.state.as_str_name()
            )));
        }
        c.state = ContainerState::ContainerExited;
        c.finished_at = now;
        c.exit_code = exit_code;
        c.reason = reason.to_string();
        Ok(())
    }

    /// Fails unless the container exists and is running (ExecSync, ReopenContainerLog).
    pub(crate) fn require_running(&self, id: &str) -> Result<(), Status> {
        let c = self.containers.get(id).ok_or_else(|| container_not_found(id))?;
        if c.state != ContainerState::ContainerRunning {
            return Err(Status::failed_precondition(format!(
                "container {id:?} is not running: {}",
                c.state.as_str_name()
            )));
        }
        Ok(())
    }

    /// ContainerStatus.
    pub(crate) fn container_status(&self, id: &str) -> Result<api::ContainerStatus, Status> {
        let c = self.containers.get(id).ok_or_else(|| container_not_found(id))?;
        Ok(api::ContainerStatus {
            id: c.id.clone(),
            metadata: c.config.metadata.clone(),
            state: c.state as i32,
            created_at: c.created_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            exit_code: c.exit_code,
            image: c.config.image.clone(),
            image_ref: c.image_ref.clone(),
            reason: c.reason.clone(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            log_path: c.config.log_path.clone(),
            image_id: c.image_ref.clone(),
            ..Default::default()
        })
    }

    /// ListContainers: id prefix, state, sandbox id and labels are ANDed.
    pub(crate) fn list_containers(&self, filter: Option<&api::ContainerFilter>) -> Vec<api::Container> {
        self.containers
            .values()
            .filter(|c| {
                filter.is_none_or(|f| {
                    c.id.starts_with(&f.id)
                        && c.sandbox_id.starts_with(&f.pod_sandbox_id)
                        && f.state.is_none_or(|st| st.state == c.state as i32)
                        && labels_match(&f.label_selector, &c.config.labels)
                })
            })
            .map(|c| api::Container {
                id: c.id.clone(),
                pod_sandbox_id: c.sandbox_id.clone(),
                metadata: c.config.metadata.clone(),
                image: c.config.image.clone(),
                image_ref: c.image_ref.clone(),
                state: c.state as i32,
                created_at: c.created_at,
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
                image_id: c.image_ref.clone(),
            })
            .collect()
    }

    /// Identity part of ContainerStats (usage numbers are added by the caller).
    pub(crate) fn container_attributes(&self, id: &str) -> Result<api::ContainerAttributes, Status> {
        let c = self.containers.get(id).ok_or_else(|| container_not_found(id))?;
        Ok(api::ContainerAttributes {
            id: c.id.clone(),
            metadata: c.config.metadata.clone(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
        })
    }
}

#[cfg(test)]
#[path = "world_tests.rs"]
mod tests;
