//! Minimal one-container pods for tests and benchmarks.
//!
//! Owns: [`PodRecipe`], which builds the smallest sandbox and container
//! configs a runtime accepts, and runs them with the three CRI calls
//! (RunPodSandbox, CreateContainer, StartContainer) that make a pod. Used by
//! the fake's tests and by the workspace benchmarks that measure the CRI floor
//! on real containerd.

use std::collections::HashMap;

use bosun_proto::cri as api;

use crate::client::CriClient;
use crate::error::Result;

/// Label keys the kubelet puts on sandboxes; bosun uses the same ones.
const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

/// A pod with one container, described by the few fields that matter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRecipe {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name (also the sandbox hostname).
    pub name: String,
    /// Pod UID.
    pub uid: String,
    /// Sandbox attempt; bump it to retry a failed sandbox with the same name.
    pub attempt: u32,
    /// Container name.
    pub container: String,
    /// Container image (must be present or pulled first).
    pub image: String,
    /// Container command (image entrypoint when empty).
    pub command: Vec<String>,
    /// Directory for container logs; no log file when empty.
    pub log_directory: String,
}

/// Ids of a pod started from a [`PodRecipe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartedPod {
    /// The pod sandbox id.
    pub sandbox_id: String,
    /// The container id.
    pub container_id: String,
}

impl PodRecipe {
    /// A pod `namespace/name` running `image` with its default command.
    pub fn new(namespace: &str, name: &str, image: &str) -> Self {
        PodRecipe {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: format!("uid-{namespace}-{name}"),
            attempt: 0,
            container: "main".to_string(),
            image: image.to_string(),
            command: Vec::new(),
            log_directory: String::new(),
        }
    }

    /// Same pod with `command` as the container command.
    pub fn with_command(mut self, command: &[&str]) -> Self {
        self.command = command.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The sandbox config for RunPodSandbox.
    pub fn sandbox_config(&self) -> api::PodSandboxConfig {
        let labels = HashMap::from([
            (POD_NAME_LABEL.to_string(), self.name.clone()),
            (POD_NAMESPACE_LABEL.to_string(), self.namespace.clone()),
            (POD_UID_LABEL.to_string(), self.uid.clone()),
        ]);
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: self.name.clone(),
                uid: self.uid.clone(),
                namespace: self.namespace.clone(),
                attempt: self.attempt,
            }),
            hostname: self.name.clone(),
            log_directory: self.log_directory.clone(),
            labels,
            linux: Some(api::LinuxPodSandboxConfig::default()),
            ..Default::default()
        }
    }

    /// The container config for CreateContainer.
    pub fn container_config(&self) -> api::ContainerConfig {
        let log_path = if self.log_directory.is_empty() { String::new() } else { format!("{}/0.log", self.container) };
        api::ContainerConfig {
            metadata: Some(api::ContainerMetadata { name: self.container.clone(), attempt: 0 }),
            image: Some(api::ImageSpec { image: self.image.clone(), ..Default::default() }),
            command: self.command.clone(),
            log_path,
            linux: Some(api::LinuxContainerConfig::default()),
            ..Default::default()
        }
    }

    /// Runs the sandbox, then creates and starts the container.
    pub async fn start(&self, client: &CriClient, runtime_handler: &str) -> Result<StartedPod> {
        let sandbox_config = self.sandbox_config();
        let sandbox_id = client.run_pod_sandbox(&sandbox_config, runtime_handler).await?;
        let container_id = client.create_container(&sandbox_id, &self.container_config(), &sandbox_config).await?;
        client.start_container(&container_id).await?;
        Ok(StartedPod { sandbox_id, container_id })
    }
}

impl StartedPod {
    /// Stops and removes the sandbox (and with it the container).
    pub async fn teardown(&self, client: &CriClient) -> Result<()> {
        client.stop_pod_sandbox(&self.sandbox_id).await?;
        client.remove_pod_sandbox(&self.sandbox_id).await
    }
}
