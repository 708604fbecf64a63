//! Pod sandbox and container calls of the CRI `RuntimeService`.
//!
//! Owns: the typed wrappers for sandbox and container lifecycle, status, exec
//! and stats. Stop and remove calls succeed when the object is already gone,
//! since that is the state the caller wants.

use std::time::Duration;

use bosun_proto::cri as api;

use crate::client::{gone_is_ok, rpc, CriClient};
use crate::error::{Error, Result};

/// Output of a command run with [`CriClient::exec_sync`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Captured standard output.
    pub stdout: Vec<u8>,
    /// Captured standard error.
    pub stderr: Vec<u8>,
    /// Exit code of the command.
    pub exit_code: i32,
}

/// `pod sandbox "default/web-1"` for a sandbox not created yet.
pub(crate) fn sandbox_config_target(config: &api::PodSandboxConfig) -> String {
    match &config.metadata {
        Some(m) => format!("pod sandbox \"{}/{}\"", m.namespace, m.name),
        None => "pod sandbox without metadata".to_string(),
    }
}

fn sandbox_target(id: &str) -> String {
    format!("pod sandbox {id:?}")
}

fn container_target(id: &str) -> String {
    format!("container {id:?}")
}

fn new_container_target(sandbox_id: &str, config: &api::ContainerConfig) -> String {
    let name = config.metadata.as_ref().map_or("", |m| m.name.as_str());
    format!("container {name:?} in pod sandbox {sandbox_id:?}")
}

/// An answer without its main field is a runtime bug; report it like one.
fn missing_field(call: &'static str, target: String, field: &str) -> Error {
    Error::Rpc { call, target, status: tonic::Status::internal(format!("runtime answered without {field}")) }
}

/// Whole seconds for the CRI `timeout` field, rounding up so a sub-second
/// timeout does not become 0 ("no timeout").
fn whole_seconds_up(d: Duration) -> i64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

impl CriClient {
    /// Creates and starts a pod sandbox; returns its id.
    pub async fn run_pod_sandbox(&self, config: &api::PodSandboxConfig, runtime_handler: &str) -> Result<String> {
        let req =
            api::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: runtime_handler.to_string() };
        let resp = self
            .unary("RunPodSandbox", || sandbox_config_target(config), rpc!(self.runtime, run_pod_sandbox, req))
            .await?;
        Ok(resp.pod_sandbox_id)
    }

    /// Stops a sandbox and its containers. Ok if the sandbox is gone.
    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let req = api::StopPodSandboxRequest { pod_sandbox_id: id.to_string() };
        let result =
            self.unary("StopPodSandbox", || sandbox_target(id), rpc!(self.runtime, stop_pod_sandbox, req)).await;
        gone_is_ok(result.map(drop))
    }

    /// Removes a sandbox and its containers. Ok if the sandbox is gone.
    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let req = api::RemovePodSandboxRequest { pod_sandbox_id: id.to_string() };
        let result =
            self.unary("RemovePodSandbox", || sandbox_target(id), rpc!(self.runtime, remove_pod_sandbox, req)).await;
        gone_is_ok(result.map(drop))
    }

    /// Status of one sandbox (state, IP, metadata). NotFound if it does not exist.
    pub async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus> {
        const CALL: &str = "PodSandboxStatus";
        let req = api::PodSandboxStatusRequest { pod_sandbox_id: id.to_string(), verbose: false };
        let resp = self.unary(CALL, || sandbox_target(id), rpc!(self.runtime, pod_sandbox_status, req)).await?;
        resp.status.ok_or_else(|| missing_field(CALL, sandbox_target(id), "status"))
    }

    /// Sandboxes matching `filter` (all when `None`).
    pub async fn list_pod_sandboxes(&self, filter: Option<api::PodSandboxFilter>) -> Result<Vec<api::PodSandbox>> {
        let req = api::ListPodSandboxRequest { filter };
        let resp =
            self.unary("ListPodSandbox", || "pod sandboxes".into(), rpc!(self.runtime, list_pod_sandbox, req)).await?;
        Ok(resp.items)
    }

    /// Creates a container in a sandbox; returns its id.
    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: &api::ContainerConfig,
        sandbox_config: &api::PodSandboxConfig,
    ) -> Result<String> {
        let req = api::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.to_string(),
            config: Some(config.clone()),
            sandbox_config: Some(sandbox_config.clone()),
        };
        let resp = self
            .unary(
                "CreateContainer",
                || new_container_target(sandbox_id, config),
                rpc!(self.runtime, create_container, req),
            )
            .await?;
        Ok(resp.container_id)
    }

    /// Starts a created container.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        let req = api::StartContainerRequest { container_id: id.to_string() };
        self.unary("StartContainer", || container_target(id), rpc!(self.runtime, start_container, req)).await?;
        Ok(())
    }

    /// Stops a container, killing it after `timeout_secs`. Ok if it is gone.
    ///
    /// The call deadline is stretched by the grace period so a slow, graceful
    /// stop is not reported as a timeout.
    pub async fn stop_container(&self, id: &str, timeout_secs: i64) -> Result<()> {
        let req = api::StopContainerRequest { container_id: id.to_string(), timeout: timeout_secs };
        let grace = Duration::from_secs(u64::try_from(timeout_secs).unwrap_or(0));
        let result = self
            .unary_within(
                self.opts.call_timeout.saturating_add(grace),
                "StopContainer",
                || container_target(id),
                rpc!(self.runtime, stop_container, req),
            )
            .await;
        gone_is_ok(result.map(drop))
    }

    /// Removes a container (forcibly if running). Ok if it is gone.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let req = api::RemoveContainerRequest { container_id: id.to_string() };
        let result =
            self.unary("RemoveContainer", || container_target(id), rpc!(self.runtime, remove_container, req)).await;
        gone_is_ok(result.map(drop))
    }

    /// Status of one container (state, exit code, reason). NotFound if it does not exist.
    pub async fn container_status(&self, id: &str) -> Result<api::ContainerStatus> {
        const CALL: &str = "ContainerStatus";
        let req = api::ContainerStatusRequest { container_id: id.to_string(), verbose: false };
        let resp = self.unary(CALL, || container_target(id), rpc!(self.runtime, container_status, req)).await?;
        resp.status.ok_or_else(|| missing_field(CALL, container_target(id), "status"))
    }

    /// The runtime's verbose information about a container (`ContainerStatus`
    /// with `verbose`): for containerd, key `info` holds a JSON document with
    /// the task's `pid`, among others. NotFound if it does not exist.
    pub async fn container_info(&self, id: &str) -> Result<std::collections::HashMap<String, String>> {
        let req = api::ContainerStatusRequest { container_id: id.to_string(), verbose: true };
        let resp =
            self.unary("ContainerStatus", || container_target(id), rpc!(self.runtime, container_status, req)).await?;
        Ok(resp.info)
    }

    /// Containers matching `filter` (all when `None`).
    pub async fn list_containers(&self, filter: Option<api::ContainerFilter>) -> Result<Vec<api::Container>> {
        let req = api::ListContainersRequest { filter };
        let resp =
            self.unary("ListContainers", || "containers".into(), rpc!(self.runtime, list_containers, req)).await?;
        Ok(resp.containers)
    }

    /// Runs `cmd` in a running container and waits for it.
    ///
    /// `timeout` is passed to the runtime (rounded up to whole seconds); the
    /// client waits that long plus the call deadline before giving up.
    pub async fn exec_sync(&self, id: &str, cmd: Vec<String>, timeout: Duration) -> Result<ExecOutput> {
        let req = api::ExecSyncRequest { container_id: id.to_string(), cmd, timeout: whole_seconds_up(timeout) };
        let resp = self
            .unary_within(
                self.opts.call_timeout + timeout,
                "ExecSync",
                || container_target(id),
                rpc!(self.runtime, exec_sync, req),
            )
            .await?;
        Ok(ExecOutput { stdout: resp.stdout, stderr: resp.stderr, exit_code: resp.exit_code })
    }

    /// `Exec`: asks the runtime's streaming server for a one-time URL that
    /// runs `req.cmd` in the container with the requested streams.
    pub async fn exec(&self, req: api::ExecRequest) -> Result<String> {
        let id = req.container_id.clone();
        let resp = self.unary("Exec", || container_target(&id), rpc!(self.runtime, exec, req)).await?;
        Ok(resp.url)
    }

    /// `Attach`: a one-time streaming URL attached to the container's main process.
    pub async fn attach(&self, req: api::AttachRequest) -> Result<String> {
        let id = req.container_id.clone();
        let resp = self.unary("Attach", || container_target(&id), rpc!(self.runtime, attach, req)).await?;
        Ok(resp.url)
    }

    /// `PortForward`: a one-time streaming URL forwarding into the sandbox's network namespace.
    pub async fn port_forward(&self, sandbox_id: &str, ports: Vec<i32>) -> Result<String> {
        let req = api::PortForwardRequest { pod_sandbox_id: sandbox_id.to_string(), port: ports };
        let resp =
            self.unary("PortForward", || sandbox_target(sandbox_id), rpc!(self.runtime, port_forward, req)).await?;
        Ok(resp.url)
    }

    /// CPU, memory and writable-layer usage of one container.
    pub async fn container_stats(&self, id: &str) -> Result<api::ContainerStats> {
        const CALL: &str = "ContainerStats";
        let req = api::ContainerStatsRequest { container_id: id.to_string() };
        let resp = self.unary(CALL, || container_target(id), rpc!(self.runtime, container_stats, req)).await?;
        resp.stats.ok_or_else(|| missing_field(CALL, container_target(id), "stats"))
    }

    /// The verbose `info` map of a container's status (containerd: key `info`,
    /// a JSON document holding the container's current OCI `runtimeSpec`).
    pub async fn container_status_info(&self, id: &str) -> Result<std::collections::HashMap<String, String>> {
        let req = api::ContainerStatusRequest { container_id: id.to_string(), verbose: true };
        let resp =
            self.unary("ContainerStatus", || container_target(id), rpc!(self.runtime, container_status, req)).await?;
        Ok(resp.info)
    }

    /// Updates a running container's resources in place (cgroup writes, no restart).
    pub async fn update_container_resources(&self, id: &str, linux: &api::LinuxContainerResources) -> Result<()> {
        let req = api::UpdateContainerResourcesRequest {
            container_id: id.to_string(),
            linux: Some(linux.clone()),
            ..Default::default()
        };
        self.unary(
            "UpdateContainerResources",
            || container_target(id),
            rpc!(self.runtime, update_container_resources, req),
        )
        .await?;
        Ok(())
    }

    /// Asks the runtime to reopen a container's log file (after rotation).
    pub async fn reopen_container_log(&self, id: &str) -> Result<()> {
        let req = api::ReopenContainerLogRequest { container_id: id.to_string() };
        self.unary("ReopenContainerLog", || container_target(id), rpc!(self.runtime, reopen_container_log, req))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_timeout_rounds_up_to_whole_seconds() {
        let cases = [
            (Duration::ZERO, 0),
            (Duration::from_millis(1), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1500), 2),
            (Duration::from_secs(30), 30),
        ];
        for (input, want) in cases {
            assert_eq!(whole_seconds_up(input), want, "{input:?}");
        }
    }

    #[test]
    fn targets_name_the_object() {
        let config = api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: "web-1".into(),
                namespace: "default".into(),
                uid: "u1".into(),
                attempt: 0,
            }),
            ..Default::default()
        };
        assert_eq!(sandbox_config_target(&config), "pod sandbox \"default/web-1\"");
        assert_eq!(sandbox_config_target(&api::PodSandboxConfig::default()), "pod sandbox without metadata");
        let container = api::ContainerConfig {
            metadata: Some(api::ContainerMetadata { name: "app".into(), attempt: 0 }),
            ..Default::default()
        };
        assert_eq!(new_container_target("sb1", &container), "container \"app\" in pod sandbox \"sb1\"");
        assert_eq!(container_target("c1"), "container \"c1\"");
    }
}
