//! The container runtime as the agent sees it: a narrow trait over the CRI
//! calls the kubelet makes, owned here (by the user of the effect) so the pod
//! worker, the log server and the node status loop never name the gRPC client.
//!
//! Must not: decide anything. Implementations translate calls one to one.

use std::time::Duration;

use bosun_proto::cri as api;

/// A failed runtime call, with the call name and the object it targeted
/// (shown as the runtime client's message, which already names both).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RuntimeError {
    /// The CRI method, e.g. `RunPodSandbox`.
    pub call: &'static str,
    /// The object the call was about (pod, container id, image).
    pub target: String,
    /// The runtime's answer, as text (surfaced in pod status and Events).
    pub message: String,
    /// True when the runtime said the object does not exist.
    pub not_found: bool,
}

/// Result of a runtime call.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// The CRI calls the agent makes. One implementation wraps `bosun_cri::CriClient`.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    /// `Version`.
    async fn version(&self) -> Result<api::VersionResponse>;
    /// `Status`: runtime and network readiness.
    async fn status(&self) -> Result<api::RuntimeStatus>;
    /// `PullImage` with registry credentials (`None`: anonymous); returns
    /// the image reference the runtime resolved.
    async fn pull_image(
        &self,
        image: &str,
        auth: Option<api::AuthConfig>,
        sandbox: &api::PodSandboxConfig,
    ) -> Result<String>;
    /// `Status` with `verbose`: the runtime's information map (containerd's
    /// `config` names the sandbox image).
    async fn status_info(&self) -> Result<std::collections::HashMap<String, String>>;
    /// `ListImages`.
    async fn list_images(&self) -> Result<Vec<api::Image>>;
    /// `RemoveImage` (by id or reference); Ok when the image is gone already.
    async fn remove_image(&self, image: &str) -> Result<()>;
    /// `ImageFsInfo`: the filesystems that hold images.
    async fn image_fs_info(&self) -> Result<Vec<api::FilesystemUsage>>;
    /// `ImageStatus`; `None` when the image is not present.
    async fn image_status(&self, image: &str) -> Result<Option<api::Image>>;
    /// `RunPodSandbox`; returns the sandbox id.
    async fn run_pod_sandbox(&self, config: &api::PodSandboxConfig) -> Result<String>;
    /// `StopPodSandbox`.
    async fn stop_pod_sandbox(&self, id: &str) -> Result<()>;
    /// `RemovePodSandbox`.
    async fn remove_pod_sandbox(&self, id: &str) -> Result<()>;
    /// `PodSandboxStatus`.
    async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus>;
    /// `ListPodSandbox`.
    async fn list_pod_sandboxes(&self, filter: Option<api::PodSandboxFilter>) -> Result<Vec<api::PodSandbox>>;
    /// `CreateContainer`; returns the container id.
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &api::ContainerConfig,
        sandbox_config: &api::PodSandboxConfig,
    ) -> Result<String>;
    /// `StartContainer`.
    async fn start_container(&self, id: &str) -> Result<()>;
    /// `StopContainer` with a grace period.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()>;
    /// `RemoveContainer`.
    async fn remove_container(&self, id: &str) -> Result<()>;
    /// `ContainerStatus`.
    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus>;
    /// `ListContainers`.
    async fn list_containers(&self, filter: Option<api::ContainerFilter>) -> Result<Vec<api::Container>>;
    /// `ExecSync`: runs `cmd` in a running container, bounded by `timeout`.
    async fn exec_sync(&self, id: &str, cmd: Vec<String>, timeout: Duration) -> Result<ExecOutput>;
    /// `Exec`: the streaming server's one-time URL for an interactive command.
    async fn exec(&self, req: api::ExecRequest) -> Result<String>;
    /// `Attach`: the streaming server's one-time URL attached to the main process.
    async fn attach(&self, req: api::AttachRequest) -> Result<String>;
    /// `PortForward`: the streaming server's one-time URL into the sandbox's network.
    async fn port_forward(&self, sandbox_id: &str, ports: Vec<i32>) -> Result<String>;
    /// `ContainerStatus` with `verbose`: the runtime's `info` map (containerd:
    /// `info` = JSON with the container's current OCI `runtimeSpec`).
    async fn container_info(&self, id: &str) -> Result<std::collections::HashMap<String, String>>;
    /// `ContainerStats`: cpu, memory (working set) and writable-layer usage.
    async fn container_stats(&self, id: &str) -> Result<api::ContainerStats>;
    /// `UpdateContainerResources`: new cgroup limits for a running container.
    async fn update_container_resources(&self, id: &str, linux: &api::LinuxContainerResources) -> Result<()>;
    /// `ReopenContainerLog`: the runtime starts a new file at the log path.
    async fn reopen_container_log(&self, id: &str) -> Result<()>;
}

/// What a command run with [`Runtime::exec_sync`] left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// Exit code.
    pub exit_code: i32,
}
