//! Applies the GC decisions: lists the runtime, decides with
//! [`compute_container_gc`] and [`compute_image_gc`], removes through the
//! [`Runtime`] trait and reports Events on the Node. Keeps the only GC state,
//! the image records (first seen, last used).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bosun_proto::cri as api;
use k8s_openapi::api::core::v1::ObjectReference;

use super::containers::{compute_container_gc, ContainerState, RuntimeContainer, RuntimeSandbox};
use super::images::{compute_image_gc, images_in_use, FsStats, ImageRecords, RuntimeImage};
use super::{Deps, GcSettings};
use crate::events::EventType;
use crate::labels;
use crate::runtime::{Runtime, RuntimeError};

/// Upstream's Event reasons.
pub const FREE_DISK_SPACE_FAILED: &str = "FreeDiskSpaceFailed";
pub const IMAGE_GC_FAILED: &str = "ImageGCFailed";
pub const INVALID_DISK_CAPACITY: &str = "InvalidDiskCapacity";
pub const CONTAINER_GC_FAILED: &str = "ContainerGCFailed";

/// A failed GC pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("image filesystem {mountpoint}: {source}")]
    Statvfs { mountpoint: String, source: nix::Error },
    #[error("the runtime reports no image filesystem")]
    NoImageFs,
    #[error(transparent)]
    Decide(#[from] super::images::Error),
    /// Upstream's text, verbatim.
    #[error("Failed to garbage collect required amount of images. Attempted to free {wanted} bytes, but only found {freed} bytes eligible to free.")]
    FreeDiskSpace { wanted: u64, freed: u64 },
    #[error("wanted to free {wanted} bytes, but freed {freed} bytes space with errors in image deletion: {errors}")]
    Removal { wanted: u64, freed: u64, errors: String },
}

/// Size and free space of the filesystem holding images.
#[async_trait::async_trait]
pub trait ImageFs: Send + Sync {
    async fn stats(&self) -> Result<FsStats, Error>;
}

/// [`ImageFs`] from the runtime's `ImageFsInfo` mount point, sized with `statvfs`.
pub struct RuntimeImageFs(pub Arc<dyn Runtime>);

#[async_trait::async_trait]
impl ImageFs for RuntimeImageFs {
    async fn stats(&self) -> Result<FsStats, Error> {
        let filesystems = self.0.image_fs_info().await?;
        let mountpoint = filesystems
            .into_iter()
            .find_map(|fs| fs.fs_id.map(|id| id.mountpoint).filter(|m| !m.is_empty()))
            .ok_or(Error::NoImageFs)?;
        let path = mountpoint.clone();
        let stat = tokio::task::spawn_blocking(move || nix::sys::statvfs::statvfs(path.as_str()))
            .await
            .unwrap_or(Err(nix::Error::EINTR))
            .map_err(|source| Error::Statvfs { mountpoint, source })?;
        let block = stat.fragment_size();
        Ok(FsStats {
            capacity: stat.blocks().saturating_mul(block),
            available: stat.blocks_available().saturating_mul(block),
        })
    }
}

fn container_state(state: i32) -> ContainerState {
    match api::ContainerState::try_from(state) {
        Ok(api::ContainerState::ContainerCreated) => ContainerState::Created,
        Ok(api::ContainerState::ContainerRunning) => ContainerState::Running,
        Ok(api::ContainerState::ContainerExited) => ContainerState::Exited,
        _ => ContainerState::Unknown,
    }
}

fn runtime_sandbox(s: &api::PodSandbox) -> RuntimeSandbox {
    RuntimeSandbox {
        id: s.id.clone(),
        pod_uid: s.metadata.as_ref().map(|m| m.uid.clone()).unwrap_or_default(),
        created_at: s.created_at,
        ready: s.state == api::PodSandboxState::SandboxReady as i32,
    }
}

fn runtime_container(c: &api::Container, sandbox_uids: &HashMap<&str, &str>) -> RuntimeContainer {
    let pod_uid = c
        .labels
        .get(labels::POD_UID)
        .map(String::as_str)
        .or_else(|| sandbox_uids.get(c.pod_sandbox_id.as_str()).copied())
        .unwrap_or_default();
    RuntimeContainer {
        id: c.id.clone(),
        sandbox_id: c.pod_sandbox_id.clone(),
        pod_uid: pod_uid.to_string(),
        name: c.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default(),
        created_at: c.created_at,
        state: container_state(c.state),
    }
}

/// The image references containers name (ids, tags, digests).
fn container_images(containers: &[api::Container]) -> impl Iterator<Item = &str> {
    containers.iter().flat_map(|c| [c.image_ref.as_str(), c.image.as_ref().map_or("", |i| i.image.as_str())])
}

/// The sandbox image of containerd's CRI configuration, from `Status` info.
pub fn sandbox_image_of(info: &HashMap<String, String>) -> Option<String> {
    let config: serde_json::Value = serde_json::from_str(info.get("config")?).ok()?;
    config.get("sandboxImage")?.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

fn now_nanos() -> i64 {
    jiff::Timestamp::now().as_nanosecond().try_into().unwrap_or(i64::MAX)
}

/// The collector's state between passes.
pub struct Collector {
    deps: Deps,
    settings: GcSettings,
    records: ImageRecords,
    runtime_sandbox_image: Option<String>,
    image_gc_failed_before: bool,
}

impl Collector {
    pub fn new(deps: Deps, settings: GcSettings) -> Self {
        Self {
            deps,
            settings,
            records: ImageRecords::default(),
            runtime_sandbox_image: None,
            image_gc_failed_before: false,
        }
    }

    fn node_ref(&self) -> ObjectReference {
        // Upstream's node reference uses the node name as UID.
        ObjectReference {
            kind: Some("Node".into()),
            name: Some(self.deps.node_name.clone()),
            uid: Some(self.deps.node_name.clone()),
            ..Default::default()
        }
    }

    async fn warn(&self, reason: &str, message: &str) {
        self.deps.events.record(&self.node_ref(), EventType::Warning, reason, message).await;
    }

    /// One container GC pass; a failure is logged and, as upstream, a
    /// `ContainerGCFailed` Event on the Node.
    pub async fn collect_containers_or_report(&mut self) {
        if let Err(error) = self.collect_containers().await {
            tracing::warn!(%error, "container garbage collection failed");
            self.warn(CONTAINER_GC_FAILED, &error.to_string()).await;
        }
    }

    /// One container GC pass; also refreshes the image records.
    pub async fn collect_containers(&mut self) -> Result<(), Error> {
        let runtime = self.deps.runtime.as_ref();
        let sandboxes = runtime.list_pod_sandboxes(None).await?;
        let containers = runtime.list_containers(None).await?;
        let sandbox_uids: HashMap<&str, &str> =
            sandboxes.iter().filter_map(|s| s.metadata.as_ref().map(|m| (s.id.as_str(), m.uid.as_str()))).collect();
        let observed: Vec<RuntimeContainer> = containers.iter().map(|c| runtime_container(c, &sandbox_uids)).collect();
        let observed_sandboxes: Vec<RuntimeSandbox> = sandboxes.iter().map(runtime_sandbox).collect();
        let pods = self.deps.pods.clone();
        let all_known = pods.all_known();
        let deleted = |uid: &str| all_known && !pods.is_known(uid);
        let plan =
            compute_container_gc(&observed, &observed_sandboxes, &deleted, self.settings.containers, now_nanos());
        let mut first_error = None;
        for id in &plan.remove_containers {
            if let Err(error) = remove_container_and_logs(runtime, id).await {
                tracing::warn!(%error, container = %id, "removing a dead container");
                first_error.get_or_insert(error);
            }
        }
        for id in &plan.remove_sandboxes {
            if let Err(error) = ignore_not_found(runtime.remove_pod_sandbox(id).await) {
                tracing::warn!(%error, sandbox = %id, "removing a dead sandbox");
                first_error.get_or_insert(error);
            }
        }
        if !plan.is_empty() {
            tracing::debug!(
                containers = plan.remove_containers.len(),
                sandboxes = plan.remove_sandboxes.len(),
                "garbage collected"
            );
        }
        let kept: Vec<api::Container> =
            containers.into_iter().filter(|c| !plan.remove_containers.contains(&c.id)).collect();
        self.detect_images(&kept, now_nanos()).await?;
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Lists images and updates the records at `now`; returns the ids of
    /// the images `containers` use.
    async fn detect_images(&mut self, containers: &[api::Container], now: i64) -> Result<BTreeSet<String>, Error> {
        if self.runtime_sandbox_image.is_none() {
            match self.deps.runtime.status_info().await {
                Ok(info) => self.runtime_sandbox_image = sandbox_image_of(&info),
                Err(error) => tracing::debug!(%error, "runtime status info"),
            }
        }
        let pinned: Vec<&str> = [self.settings.sandbox_image.as_deref(), self.runtime_sandbox_image.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let images: Vec<RuntimeImage> = self
            .deps
            .runtime
            .list_images()
            .await?
            .into_iter()
            .map(|i| {
                let mut image = RuntimeImage {
                    id: i.id,
                    repo_tags: i.repo_tags,
                    repo_digests: i.repo_digests,
                    size: i.size,
                    pinned: i.pinned,
                };
                image.pinned |= pinned.iter().any(|p| image.is_named(p));
                image
            })
            .collect();
        let in_use = images_in_use(&images, container_images(containers));
        self.records = self.records.detect(&images, &in_use, now);
        Ok(in_use)
    }

    /// One image GC pass, with upstream's Events.
    pub async fn collect_images(&mut self) {
        if !self.settings.images.enabled() {
            return;
        }
        match self.try_collect_images().await {
            Ok(()) => self.image_gc_failed_before = false,
            Err(error) => {
                tracing::warn!(%error, "image garbage collection failed");
                match &error {
                    Error::FreeDiskSpace { .. } => self.warn(FREE_DISK_SPACE_FAILED, &error.to_string()).await,
                    Error::Decide(_) => self.warn(INVALID_DISK_CAPACITY, &error.to_string()).await,
                    _ => {}
                }
                // Upstream reports only repeated failures.
                if self.image_gc_failed_before {
                    self.warn(IMAGE_GC_FAILED, &error.to_string()).await;
                }
                self.image_gc_failed_before = true;
            }
        }
    }

    async fn try_collect_images(&mut self) -> Result<(), Error> {
        let containers = self.deps.runtime.list_containers(None).await?;
        let now = now_nanos();
        let in_use = self.detect_images(&containers, now).await?;
        let fs = self.deps.image_fs.stats().await?;
        let plan = compute_image_gc(&self.records, &in_use, fs, self.settings.images, now)?;
        if plan.bytes_to_free == 0 {
            return Ok(());
        }
        tracing::info!(
            usage = plan.usage_percent,
            high = self.settings.images.high_threshold_percent,
            low = self.settings.images.low_threshold_percent,
            to_free = plan.bytes_to_free,
            images = plan.remove.len(),
            "image filesystem over the high threshold; removing unused images"
        );
        let mut freed = 0u64;
        let mut errors = Vec::new();
        for id in &plan.remove {
            match ignore_not_found(self.deps.runtime.remove_image(id).await) {
                Ok(()) => {
                    freed = freed.saturating_add(self.records.0.get(id).map_or(0, |r| r.size));
                    self.records.0.remove(id);
                }
                Err(error) => errors.push(error.to_string()),
            }
        }
        if !errors.is_empty() {
            return Err(Error::Removal { wanted: plan.bytes_to_free, freed, errors: errors.join("; ") });
        }
        if freed < plan.bytes_to_free {
            return Err(Error::FreeDiskSpace { wanted: plan.bytes_to_free, freed });
        }
        Ok(())
    }
}

/// Removes container `id` and, as upstream, its log file with the rotated
/// ones beside it (`<file>.<stamp>`).
pub async fn remove_container_and_logs(runtime: &dyn Runtime, id: &str) -> Result<(), RuntimeError> {
    let log_path = match runtime.container_status(id).await {
        Ok(status) => Some(status.log_path).filter(|p| !p.is_empty()),
        Err(e) if e.not_found => return Ok(()),
        Err(e) => return Err(e),
    };
    ignore_not_found(runtime.remove_container(id).await)?;
    if let Some(path) = log_path {
        remove_log_files(std::path::Path::new(&path)).await;
    }
    Ok(())
}

async fn remove_log_files(path: &std::path::Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else { return };
    let rotated = format!("{name}.");
    let mut doomed = vec![path.to_path_buf()];
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            if entry.file_name().to_str().is_some_and(|n| n.starts_with(&rotated)) {
                doomed.push(entry.path());
            }
        }
    }
    for file in doomed {
        if let Err(error) = tokio::fs::remove_file(&file).await {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(%error, file = %file.display(), "removing a dead container's log");
            }
        }
    }
}

fn ignore_not_found(result: Result<(), RuntimeError>) -> Result<(), RuntimeError> {
    match result {
        Err(e) if e.not_found => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_image_comes_from_containerds_config() {
        let info: HashMap<String, String> =
            [("config".to_string(), r#"{"sandboxImage":"127.0.0.1:5000/bosun/pause:1.0","other":1}"#.to_string())]
                .into();
        assert_eq!(sandbox_image_of(&info).as_deref(), Some("127.0.0.1:5000/bosun/pause:1.0"));
        assert_eq!(sandbox_image_of(&HashMap::new()), None);
        let bad: HashMap<String, String> = [("config".to_string(), "not json".to_string())].into();
        assert_eq!(sandbox_image_of(&bad), None);
    }
}
