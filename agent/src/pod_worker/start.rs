//! Starting one container: pull per policy (with the image backoff),
//! build its config (env from the API), create and start it; each failure
//! becomes a waiting reason and an Event.

use std::time::Instant;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::{pod_key, Error, PodWorker};
use crate::actions::{self, StartContainer, Waiting};
use crate::enums::WaitingReason;
use crate::env::{self, Allocatable};
use crate::events::EventType;
use crate::pod_api::ApiError;
use crate::runtime_spec::{self, EnvSources};
use crate::security::{self, ImageUser};
use crate::service_links;
use crate::termination_message;

impl PodWorker {
    pub(super) async fn env_sources(&self, pod: &Pod, sandbox_id: &str) -> Result<EnvSources, Error> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let api_err = |source: ApiError| Error::Api { pod: pod_key(pod), source };
        let pod_ip = match self.deps.runtime.pod_sandbox_status(sandbox_id).await {
            Ok(status) => status.network.map(|n| n.ip).filter(|ip| !ip.is_empty()),
            Err(source) => return Err(Error::Runtime { pod: pod_key(pod), source }),
        };
        let mut sources = EnvSources { host_ip: self.deps.host_ip.clone(), pod_ip, ..Default::default() };
        if env::uses_resource_fields(pod) {
            sources.allocatable = allocatable(self.deps.allocatable, self.deps.root_dir.clone()).await;
        }
        let refs = runtime_spec::env_references(pod);
        for name in refs.config_maps {
            if let Some(cm) = self.deps.api.config_map(&namespace, &name).await.map_err(api_err)? {
                sources.config_maps.insert(name, cm);
            }
        }
        for name in refs.secrets {
            if let Some(secret) = self.deps.api.secret(&namespace, &name).await.map_err(api_err)? {
                sources.secrets.insert(name, secret);
            }
        }
        let mut services = Vec::new();
        for namespace in service_links::namespaces_needed(pod) {
            match self.deps.api.services(&namespace).await {
                Ok(found) => services.extend(found),
                // A static pod must start with no API server (as upstream,
                // it then goes without Service variables).
                Err(error) if crate::static_pods::is_static(pod) => {
                    tracing::debug!(%error, "static pod started without Service variables");
                }
                Err(error) => return Err(api_err(error)),
            }
        }
        sources.services = service_links::service_env(pod, &services);
        Ok(sources)
    }

    /// `runAsNonRoot`, checked against the image's user when the spec sets none.
    async fn verify_run_as_non_root(&self, pod: &Pod, container: &Container) -> Result<(), String> {
        let Some(spec) = pod.spec.as_ref() else { return Ok(()) };
        let mut image_user = None;
        if security::needs_image_user(spec, container) {
            let image = container.image.as_deref().unwrap_or_default();
            let found = self.deps.runtime.image_status(image).await.map_err(|e| e.message)?;
            image_user = found.as_ref().map(ImageUser::of);
        }
        security::verify_run_as_non_root(spec, container, image_user.as_ref())
    }

    /// Pulls (if asked), creates and starts one container. Returns the
    /// waiting reason when any step failed; the failure is also an Event.
    pub(super) async fn start_container(
        &mut self,
        pod: &Pod,
        start: &StartContainer,
        sandbox_id: &str,
        sandbox_config: &bosun_proto::cri::PodSandboxConfig,
        sources: &EnvSources,
    ) -> Option<Waiting> {
        let runtime = self.deps.runtime.clone();
        let name = start.name.as_str();
        let spec = pod.spec.as_ref()?;
        let container =
            spec.init_containers.iter().flatten().chain(spec.containers.iter()).find(|c| c.name == name)?.clone();
        let image = container.image.clone().unwrap_or_default();
        let fail = |reason: WaitingReason, message: String| Some(Waiting { reason, message });
        if start.pull {
            self.event(pod, name, EventType::Normal, "Pulling", &format!("Pulling image \"{image}\"")).await;
            let began = Instant::now();
            match self.pull_with_secrets(pod, name, &image, sandbox_config).await {
                Ok(_) => {
                    if self.pull.delay(&image).is_some() {
                        self.pull.reset(&image);
                        self.save_backoffs().await;
                    }
                    let message =
                        format!("Successfully pulled image \"{image}\" in {:.3}s", began.elapsed().as_secs_f64());
                    self.event(pod, name, EventType::Normal, "Pulled", &message).await;
                }
                Err(error) => {
                    self.pull.record(&image, Timestamp::now());
                    self.save_backoffs().await;
                    let message = format!("Failed to pull image \"{image}\": {error}");
                    self.event(pod, name, EventType::Warning, "Failed", &message).await;
                    return fail(WaitingReason::ErrImagePull, message);
                }
            }
        }
        if let Some(exited) = start.after_exit {
            self.crash.record(&actions::crash_key(pod, name), exited);
            self.save_backoffs().await;
        }
        if let Err(message) = self.verify_run_as_non_root(pod, &container).await {
            self.event(pod, name, EventType::Warning, "Failed", &format!("Error: {message}")).await;
            return fail(WaitingReason::CreateContainerConfigError, message);
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        for message in env::invalid_env_from_keys(namespace, &container, sources) {
            self.event(pod, name, EventType::Warning, "InvalidEnvironmentVariableNames", &message).await;
        }
        let mut config = match runtime_spec::container_config(pod, &container, start.attempt, sources) {
            Ok(config) => config,
            Err(error) => {
                let message = format!("Error: {error}");
                self.event(pod, name, EventType::Warning, "Failed", &message).await;
                return fail(WaitingReason::CreateContainerConfigError, error.to_string());
            }
        };
        match self.container_mounts(&container, &config.envs).await {
            Ok(mounts) => config.mounts = mounts,
            Err(error) => {
                self.event(pod, name, EventType::Warning, "Failed", &format!("Error: {error}")).await;
                return fail(WaitingReason::CreateContainerConfigError, error);
            }
        }
        crate::spec_hash::stamp(&mut config, &container);
        let pod_dir = std::path::Path::new(&sandbox_config.log_directory);
        let host = termination_message::host_path(pod_dir, name, start.attempt);
        if let Some((mount, annotations)) = termination_message::wiring(&container, &host) {
            if let Err(error) = termination_message::create(&host).await {
                let message = format!("Error: creating termination message file {}: {error}", host.display());
                self.event(pod, name, EventType::Warning, "Failed", &message).await;
                return fail(WaitingReason::CreateContainerConfigError, message);
            }
            config.mounts.push(mount);
            config.annotations.extend(annotations);
        }
        let id = match runtime.create_container(sandbox_id, &config, sandbox_config).await {
            Ok(id) => id,
            Err(error) => {
                let message = format!("Error: {}", error.message);
                self.event(pod, name, EventType::Warning, "Failed", &message).await;
                return fail(WaitingReason::CreateContainerError, error.message);
            }
        };
        self.event(pod, name, EventType::Normal, "Created", &format!("Created container: {name}")).await;
        if let Err(error) = runtime.start_container(&id).await {
            let message = format!("Error: {}", error.message);
            self.event(pod, name, EventType::Warning, "Failed", &message).await;
            return fail(WaitingReason::RunContainerError, error.message);
        }
        tracing::info!(pod = %pod_key(pod), container = name, attempt = start.attempt, id = %id, "container started");
        self.event(pod, name, EventType::Normal, "Started", &format!("Started container {name}")).await;
        self.post_start(pod, &container, &id, sources.pod_ip.as_deref()).await;
        None
    }
}

/// Node allocatable for `resourceFieldRef` defaults: the CPUs and memory the
/// Node reports, and the size of the filesystem holding the state root.
async fn allocatable(node: crate::node::NodeAllocatable, root_dir: std::path::PathBuf) -> Allocatable {
    let read = move || {
        let storage = nix::sys::statvfs::statvfs(&root_dir)
            .map(|s| (s.blocks() as i64).saturating_mul(s.fragment_size() as i64))
            .unwrap_or(0);
        Allocatable { cpu_milli: node.cpu_millis, memory: node.memory_bytes, ephemeral_storage: storage }
    };
    tokio::task::spawn_blocking(read).await.unwrap_or_default()
}
