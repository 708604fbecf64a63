//! [`Runtime`] over the real CRI client (`bosun_cri::CriClient`): one call
//! per method, errors mapped once into [`RuntimeError`].

use std::time::Duration;

use bosun_cri::CriClient;
use bosun_proto::cri as api;

use crate::runtime::{ExecOutput, Result, Runtime, RuntimeError};

/// Runtime handler passed to `RunPodSandbox` (the runtime's default).
const DEFAULT_HANDLER: &str = "";

fn map(call: &'static str, target: impl Into<String>) -> impl FnOnce(bosun_cri::Error) -> RuntimeError {
    let target = target.into();
    move |e| RuntimeError { call, not_found: e.is_not_found(), message: e.to_string(), target }
}

fn sandbox_name(config: &api::PodSandboxConfig) -> String {
    config.metadata.as_ref().map(|m| format!("{}/{} attempt {}", m.namespace, m.name, m.attempt)).unwrap_or_default()
}

#[async_trait::async_trait]
impl Runtime for CriClient {
    async fn version(&self) -> Result<api::VersionResponse> {
        CriClient::version(self).await.map_err(map("Version", "runtime"))
    }

    async fn status(&self) -> Result<api::RuntimeStatus> {
        CriClient::status(self).await.map_err(map("Status", "runtime"))
    }

    async fn pull_image(
        &self,
        image: &str,
        auth: Option<api::AuthConfig>,
        sandbox: &api::PodSandboxConfig,
    ) -> Result<String> {
        CriClient::pull_image(self, image, auth, Some(sandbox)).await.map_err(map("PullImage", image))
    }

    async fn status_info(&self) -> Result<std::collections::HashMap<String, String>> {
        CriClient::status_info(self).await.map_err(map("Status", "runtime"))
    }

    async fn list_images(&self) -> Result<Vec<api::Image>> {
        CriClient::list_images(self).await.map_err(map("ListImages", "images"))
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        CriClient::remove_image(self, image).await.map_err(map("RemoveImage", image))
    }

    async fn image_fs_info(&self) -> Result<Vec<api::FilesystemUsage>> {
        CriClient::image_fs_info(self).await.map_err(map("ImageFsInfo", "image filesystem"))
    }

    async fn image_status(&self, image: &str) -> Result<Option<api::Image>> {
        CriClient::image_status(self, image).await.map_err(map("ImageStatus", image))
    }

    async fn run_pod_sandbox(&self, config: &api::PodSandboxConfig) -> Result<String> {
        CriClient::run_pod_sandbox(self, config, DEFAULT_HANDLER)
            .await
            .map_err(map("RunPodSandbox", sandbox_name(config)))
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        CriClient::stop_pod_sandbox(self, id).await.map_err(map("StopPodSandbox", id))
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        CriClient::remove_pod_sandbox(self, id).await.map_err(map("RemovePodSandbox", id))
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus> {
        CriClient::pod_sandbox_status(self, id).await.map_err(map("PodSandboxStatus", id))
    }

    async fn list_pod_sandboxes(&self, filter: Option<api::PodSandboxFilter>) -> Result<Vec<api::PodSandbox>> {
        CriClient::list_pod_sandboxes(self, filter).await.map_err(map("ListPodSandbox", "sandboxes"))
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &api::ContainerConfig,
        sandbox_config: &api::PodSandboxConfig,
    ) -> Result<String> {
        let target = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        CriClient::create_container(self, sandbox_id, config, sandbox_config)
            .await
            .map_err(map("CreateContainer", target))
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        CriClient::start_container(self, id).await.map_err(map("StartContainer", id))
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        // Whole seconds on the wire, rounded up: a grace that is what is
        // left until a deadline must not end before it.
        let whole = grace.as_secs().saturating_add(u64::from(grace.subsec_nanos() > 0));
        let secs = i64::try_from(whole).unwrap_or(i64::MAX);
        CriClient::stop_container(self, id, secs).await.map_err(map("StopContainer", id))
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        CriClient::remove_container(self, id).await.map_err(map("RemoveContainer", id))
    }

    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus> {
        CriClient::container_status(self, id).await.map_err(map("ContainerStatus", id))
    }

    async fn list_containers(&self, filter: Option<api::ContainerFilter>) -> Result<Vec<api::Container>> {
        CriClient::list_containers(self, filter).await.map_err(map("ListContainers", "containers"))
    }

    async fn exec_sync(&self, id: &str, cmd: Vec<String>, timeout: Duration) -> Result<ExecOutput> {
        let out = CriClient::exec_sync(self, id, cmd, timeout).await.map_err(map("ExecSync", id))?;
        Ok(ExecOutput { stdout: out.stdout, stderr: out.stderr, exit_code: out.exit_code })
    }

    async fn exec(&self, req: api::ExecRequest) -> Result<String> {
        let id = req.container_id.clone();
        CriClient::exec(self, req).await.map_err(map("Exec", id))
    }

    async fn attach(&self, req: api::AttachRequest) -> Result<String> {
        let id = req.container_id.clone();
        CriClient::attach(self, req).await.map_err(map("Attach", id))
    }

    async fn port_forward(&self, sandbox_id: &str, ports: Vec<i32>) -> Result<String> {
        CriClient::port_forward(self, sandbox_id, ports).await.map_err(map("PortForward", sandbox_id))
    }

    async fn container_info(&self, id: &str) -> Result<std::collections::HashMap<String, String>> {
        CriClient::container_status_info(self, id).await.map_err(map("ContainerStatus", id))
    }

    async fn container_stats(&self, id: &str) -> Result<api::ContainerStats> {
        CriClient::container_stats(self, id).await.map_err(map("ContainerStats", id))
    }

    async fn update_container_resources(&self, id: &str, linux: &api::LinuxContainerResources) -> Result<()> {
        CriClient::update_container_resources(self, id, linux).await.map_err(map("UpdateContainerResources", id))
    }

    async fn reopen_container_log(&self, id: &str) -> Result<()> {
        CriClient::reopen_container_log(self, id).await.map_err(map("ReopenContainerLog", id))
    }
}
