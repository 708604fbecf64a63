//! The gRPC face of [`FakeCri`]: `RuntimeService` (`ImageService` is in
//! `image_service.rs`).
//!
//! Owns: decoding requests, recording them, applying injected failures and
//! delays, and calling the pure state in `world.rs`/`images.rs`. Calls the
//! fake does not model answer `Unimplemented`.

use std::pin::Pin;

use bosun_proto::cri::{self as api, runtime_service_server::RuntimeService};
use futures::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::{now_nanos, FakeCri};

pub(super) type Answer<T> = Result<Response<T>, Status>;

/// Serves one [`FakeCri`] until `stop` is cancelled.
#[derive(Clone)]
pub(crate) struct FakeService {
    pub(super) fake: FakeCri,
    stop: CancellationToken,
}

impl FakeService {
    pub(crate) fn new(fake: FakeCri, stop: CancellationToken) -> Self {
        FakeService { fake, stop }
    }

    /// Records the call, then fails or delays it if the test asked for that.
    pub(super) async fn gate(&self, method: &'static str, target: impl Into<String>) -> Result<(), Status> {
        if let Some(delay) = self.fake.enter(method, target.into())? {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.cancelled() => {
                    return Err(Status::unavailable("fake runtime is shutting down"));
                }
            }
        }
        Ok(())
    }

    pub(super) async fn unimplemented<T>(&self, method: &'static str) -> Answer<T> {
        self.gate(method, "").await?;
        Err(Status::unimplemented(format!("the fake CRI does not implement {method}")))
    }
}

fn sandbox_name(config: Option<&api::PodSandboxConfig>) -> String {
    config.and_then(|c| c.metadata.as_ref()).map(|m| format!("{}/{}", m.namespace, m.name)).unwrap_or_default()
}

pub(super) fn image_name(spec: Option<&api::ImageSpec>) -> String {
    spec.map(|s| s.image.clone()).unwrap_or_default()
}

pub(super) fn reply<T>(message: T) -> Answer<T> {
    Ok(Response::new(message))
}

#[tonic::async_trait]
impl RuntimeService for FakeService {
    async fn version(&self, _req: Request<api::VersionRequest>) -> Answer<api::VersionResponse> {
        self.gate("Version", "").await?;
        reply(api::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake-cri".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        })
    }

    async fn run_pod_sandbox(&self, req: Request<api::RunPodSandboxRequest>) -> Answer<api::RunPodSandboxResponse> {
        let req = req.into_inner();
        self.gate("RunPodSandbox", sandbox_name(req.config.as_ref())).await?;
        let config = req.config.unwrap_or_default();
        let id = self.fake.lock().world.run_sandbox(config, &req.runtime_handler, now_nanos())?;
        reply(api::RunPodSandboxResponse { pod_sandbox_id: id })
    }

    async fn stop_pod_sandbox(&self, req: Request<api::StopPodSandboxRequest>) -> Answer<api::StopPodSandboxResponse> {
        let id = req.into_inner().pod_sandbox_id;
        self.gate("StopPodSandbox", id.clone()).await?;
        self.fake.lock().world.stop_sandbox(&id, now_nanos())?;
        reply(api::StopPodSandboxResponse {})
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<api::RemovePodSandboxRequest>,
    ) -> Answer<api::RemovePodSandboxResponse> {
        let id = req.into_inner().pod_sandbox_id;
        self.gate("RemovePodSandbox", id.clone()).await?;
        self.fake.lock().world.remove_sandbox(&id);
        reply(api::RemovePodSandboxResponse {})
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<api::PodSandboxStatusRequest>,
    ) -> Answer<api::PodSandboxStatusResponse> {
        let id = req.into_inner().pod_sandbox_id;
        self.gate("PodSandboxStatus", id.clone()).await?;
        let status = self.fake.lock().world.sandbox_status(&id)?;
        reply(api::PodSandboxStatusResponse { status: Some(status), timestamp: now_nanos(), ..Default::default() })
    }

    async fn list_pod_sandbox(&self, req: Request<api::ListPodSandboxRequest>) -> Answer<api::ListPodSandboxResponse> {
        let filter = req.into_inner().filter;
        self.gate("ListPodSandbox", "").await?;
        let items = self.fake.lock().world.list_sandboxes(filter.as_ref());
        reply(api::ListPodSandboxResponse { items })
    }

    async fn create_container(
        &self,
        req: Request<api::CreateContainerRequest>,
    ) -> Answer<api::CreateContainerResponse> {
        let req = req.into_inner();
        self.gate("CreateContainer", req.pod_sandbox_id.clone()).await?;
        let config = req.config.unwrap_or_default();
        let id = self.fake.lock().world.create_container(&req.pod_sandbox_id, config, now_nanos())?;
        reply(api::CreateContainerResponse { container_id: id })
    }

    async fn start_container(&self, req: Request<api::StartContainerRequest>) -> Answer<api::StartContainerResponse> {
        let id = req.into_inner().container_id;
        self.gate("StartContainer", id.clone()).await?;
        self.fake.lock().world.start_container(&id, now_nanos())?;
        reply(api::StartContainerResponse {})
    }

    async fn stop_container(&self, req: Request<api::StopContainerRequest>) -> Answer<api::StopContainerResponse> {
        let id = req.into_inner().container_id;
        self.gate("StopContainer", id.clone()).await?;
        self.fake.lock().world.stop_container(&id, now_nanos())?;
        reply(api::StopContainerResponse {})
    }

    async fn remove_container(
        &self,
        req: Request<api::RemoveContainerRequest>,
    ) -> Answer<api::RemoveContainerResponse> {
        let id = req.into_inner().container_id;
        self.gate("RemoveContainer", id.clone()).await?;
        self.fake.lock().world.remove_container(&id)?;
        reply(api::RemoveContainerResponse {})
    }

    async fn list_containers(&self, req: Request<api::ListContainersRequest>) -> Answer<api::ListContainersResponse> {
        let filter = req.into_inner().filter;
        self.gate("ListContainers", "").await?;
        let containers = self.fake.lock().world.list_containers(filter.as_ref());
        reply(api::ListContainersResponse { containers })
    }

    async fn container_status(
        &self,
        req: Request<api::ContainerStatusRequest>,
    ) -> Answer<api::ContainerStatusResponse> {
        let id = req.into_inner().container_id;
        self.gate("ContainerStatus", id.clone()).await?;
        let status = self.fake.lock().world.container_status(&id)?;
        reply(api::ContainerStatusResponse { status: Some(status), info: Default::default() })
    }

    async fn update_container_resources(
        &self,
        req: Request<api::UpdateContainerResourcesRequest>,
    ) -> Answer<api::UpdateContainerResourcesResponse> {
        let id = req.into_inner().container_id;
        self.gate("UpdateContainerResources", id.clone()).await?;
        self.fake.lock().world.require_running(&id)?;
        reply(api::UpdateContainerResourcesResponse {})
    }

    async fn reopen_container_log(
        &self,
        req: Request<api::ReopenContainerLogRequest>,
    ) -> Answer<api::ReopenContainerLogResponse> {
        let id = req.into_inner().container_id;
        self.gate("ReopenContainerLog", id.clone()).await?;
        self.fake.lock().world.require_running(&id)?;
        reply(api::ReopenContainerLogResponse {})
    }

    async fn exec_sync(&self, req: Request<api::ExecSyncRequest>) -> Answer<api::ExecSyncResponse> {
        let id = req.into_inner().container_id;
        self.gate("ExecSync", id.clone()).await?;
        let output = {
            let inner = self.fake.lock();
            inner.world.require_running(&id)?;
            inner.exec_results.get(&id).cloned().unwrap_or_default()
        };
        reply(api::ExecSyncResponse { stdout: output.stdout, stderr: output.stderr, exit_code: output.exit_code })
    }

    async fn exec(&self, _req: Request<api::ExecRequest>) -> Answer<api::ExecResponse> {
        self.unimplemented("Exec").await
    }

    async fn attach(&self, _req: Request<api::AttachRequest>) -> Answer<api::AttachResponse> {
        self.unimplemented("Attach").await
    }

    async fn port_forward(&self, _req: Request<api::PortForwardRequest>) -> Answer<api::PortForwardResponse> {
        self.unimplemented("PortForward").await
    }

    async fn container_stats(&self, req: Request<api::ContainerStatsRequest>) -> Answer<api::ContainerStatsResponse> {
        let id = req.into_inner().container_id;
        self.gate("ContainerStats", id.clone()).await?;
        let (attributes, (cpu, memory)) = {
            let inner = self.fake.lock();
            let attributes = inner.world.container_attributes(&id)?;
            (attributes, inner.usage.get(&id).copied().unwrap_or_default())
        };
        let now = now_nanos();
        reply(api::ContainerStatsResponse {
            stats: Some(api::ContainerStats {
                attributes: Some(attributes),
                cpu: Some(api::CpuUsage {
                    timestamp: now,
                    usage_core_nano_seconds: Some(api::UInt64Value { value: cpu }),
                    usage_nano_cores: None,
                }),
                memory: Some(api::MemoryUsage {
                    timestamp: now,
                    working_set_bytes: Some(api::UInt64Value { value: memory }),
                    ..Default::default()
                }),
                writable_layer: None,
                swap: None,
            }),
        })
    }

    async fn list_container_stats(
        &self,
        _req: Request<api::ListContainerStatsRequest>,
    ) -> Answer<api::ListContainerStatsResponse> {
        self.unimplemented("ListContainerStats").await
    }

    async fn pod_sandbox_stats(
        &self,
        _req: Request<api::PodSandboxStatsRequest>,
    ) -> Answer<api::PodSandboxStatsResponse> {
        self.unimplemented("PodSandboxStats").await
    }

    async fn list_pod_sandbox_stats(
        &self,
        _req: Request<api::ListPodSandboxStatsRequest>,
    ) -> Answer<api::ListPodSandboxStatsResponse> {
        self.unimplemented("ListPodSandboxStats").await
    }

    async fn update_runtime_config(
        &self,
        req: Request<api::UpdateRuntimeConfigRequest>,
    ) -> Answer<api::UpdateRuntimeConfigResponse> {
        let cidr =
            req.into_inner().runtime_config.and_then(|c| c.network_config).map(|n| n.pod_cidr).unwrap_or_default();
        self.gate("UpdateRuntimeConfig", cidr.clone()).await?;
        self.fake.lock().pod_cidr = cidr;
        reply(api::UpdateRuntimeConfigResponse {})
    }

    async fn status(&self, _req: Request<api::StatusRequest>) -> Answer<api::StatusResponse> {
        self.gate("Status", "").await?;
        let conditions = self
            .fake
            .lock()
            .conditions
            .iter()
            .map(|(kind, &ready)| api::RuntimeCondition {
                r#type: kind.clone(),
                status: ready,
                reason: if ready { String::new() } else { format!("{kind}False") },
                message: String::new(),
            })
            .collect();
        reply(api::StatusResponse { status: Some(api::RuntimeStatus { conditions }), ..Default::default() })
    }

    async fn checkpoint_container(
        &self,
        _req: Request<api::CheckpointContainerRequest>,
    ) -> Answer<api::CheckpointContainerResponse> {
        self.unimplemented("CheckpointContainer").await
    }

    type GetContainerEventsStream =
        Pin<Box<dyn Stream<Item = Result<api::ContainerEventResponse, Status>> + Send + 'static>>;

    async fn get_container_events(
        &self,
        _req: Request<api::GetEventsRequest>,
    ) -> Answer<Self::GetContainerEventsStream> {
        self.unimplemented("GetContainerEvents").await
    }

    async fn list_metric_descriptors(
        &self,
        _req: Request<api::ListMetricDescriptorsRequest>,
    ) -> Answer<api::ListMetricDescriptorsResponse> {
        self.unimplemented("ListMetricDescriptors").await
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _req: Request<api::ListPodSandboxMetricsRequest>,
    ) -> Answer<api::ListPodSandboxMetricsResponse> {
        self.unimplemented("ListPodSandboxMetrics").await
    }

    async fn runtime_config(&self, _req: Request<api::RuntimeConfigRequest>) -> Answer<api::RuntimeConfigResponse> {
        self.unimplemented("RuntimeConfig").await
    }
}
