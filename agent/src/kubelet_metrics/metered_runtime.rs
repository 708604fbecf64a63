//! [`MeteredRuntime`]: the agent's [`Runtime`] wrapped so that every CRI
//! call is counted and timed (`kubelet_runtime_operations_*`), by
//! upstream's `operation_type` names. Delegates one to one; decides nothing.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bosun_proto::cri as api;

use super::RuntimeMetrics;
use crate::runtime::{ExecOutput, Result, Runtime};

/// A runtime whose calls are recorded in [`RuntimeMetrics`].
pub struct MeteredRuntime {
    inner: Arc<dyn Runtime>,
    metrics: RuntimeMetrics,
}

impl MeteredRuntime {
    /// `inner`, recorded in `metrics`.
    pub fn new(inner: Arc<dyn Runtime>, metrics: RuntimeMetrics) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(&self, operation: &'static str, call: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Instant::now();
        let result = call.await;
        self.metrics.record_call(operation, started.elapsed(), result.is_ok());
        result
    }
}

#[async_trait::async_trait]
impl Runtime for MeteredRuntime {
    async fn version(&self) -> Result<api::VersionResponse> {
        self.timed("version", self.inner.version()).await
    }

    async fn status(&self) -> Result<api::RuntimeStatus> {
        self.timed("status", self.inner.status()).await
    }

    async fn pull_image(
        &self,
        image: &str,
        auth: Option<api::AuthConfig>,
        sandbox: &api::PodSandboxConfig,
    ) -> Result<String> {
        self.timed("pull_image", self.inner.pull_image(image, auth, sandbox)).await
    }

    async fn status_info(&self) -> Result<HashMap<String, String>> {
        self.timed("status", self.inner.status_info()).await
    }

    async fn list_images(&self) -> Result<Vec<api::Image>> {
        self.timed("list_images", self.inner.list_images()).await
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        self.timed("remove_image", self.inner.remove_image(image)).await
    }

    async fn image_fs_info(&self) -> Result<Vec<api::FilesystemUsage>> {
        self.timed("image_fs_info", self.inner.image_fs_info()).await
    }

    async fn image_status(&self, image: &str) -> Result<Option<api::Image>> {
        self.timed("image_status", self.inner.image_status(image)).await
    }

    async fn run_pod_sandbox(&self, config: &api::PodSandboxConfig) -> Result<String> {
        self.timed("run_podsandbox", self.inner.run_pod_sandbox(config)).await
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        self.timed("stop_podsandbox", self.inner.stop_pod_sandbox(id)).await
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        self.timed("remove_podsandbox", self.inner.remove_pod_sandbox(id)).await
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus> {
        self.timed("podsandbox_status", self.inner.pod_sandbox_status(id)).await
    }

    async fn list_pod_sandboxes(&self, filter: Option<api::PodSandboxFilter>) -> Result<Vec<api::PodSandbox>> {
        self.timed("list_podsandbox", self.inner.list_pod_sandboxes(filter)).await
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &api::ContainerConfig,
        sandbox_config: &api::PodSandboxConfig,
    ) -> Result<String> {
        self.timed("create_container", self.inner.create_container(sandbox_id, config, sandbox_config)).await
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.metrics.record_container_start();
        self.timed("start_container", self.inner.start_container(id)).await
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        self.timed("stop_container", self.inner.stop_container(id, grace)).await
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.timed("remove_container", self.inner.remove_container(id)).await
    }

    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus> {
        self.timed("container_status", self.inner.container_status(id)).await
    }

    async fn list_containers(&self, filter: Option<api::ContainerFilter>) -> Result<Vec<api::Container>> {
        self.timed("list_containers", self.inner.list_containers(filter)).await
    }

    async fn exec_sync(&self, id: &str, cmd: Vec<String>, timeout: Duration) -> Result<ExecOutput> {
        self.timed("exec_sync", self.inner.exec_sync(id, cmd, timeout)).await
    }

    async fn exec(&self, req: api::ExecRequest) -> Result<String> {
        self.timed("exec", self.inner.exec(req)).await
    }

    async fn attach(&self, req: api::AttachRequest) -> Result<String> {
        self.timed("attach", self.inner.attach(req)).await
    }

    async fn port_forward(&self, sandbox_id: &str, ports: Vec<i32>) -> Result<String> {
        self.timed("port_forward", self.inner.port_forward(sandbox_id, ports)).await
    }

    async fn container_info(&self, id: &str) -> Result<HashMap<String, String>> {
        self.timed("container_status", self.inner.container_info(id)).await
    }

    async fn container_stats(&self, id: &str) -> Result<api::ContainerStats> {
        self.timed("container_stats", self.inner.container_stats(id)).await
    }

    async fn update_container_resources(&self, id: &str, linux: &api::LinuxContainerResources) -> Result<()> {
        self.timed("update_container", self.inner.update_container_resources(id, linux)).await
    }

    async fn reopen_container_log(&self, id: &str) -> Result<()> {
        self.timed("reopen_container_log", self.inner.reopen_container_log(id)).await
    }
}
