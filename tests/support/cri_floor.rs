//! The raw CRI floor of a pod start, shared by the `cri_floor` and
//! `pod_start` benchmarks: RunPodSandbox + CreateContainer + StartContainer
//! through bosun's CRI client alone (no agent, no API), image cached.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bosun_cri::{api, CriClient};

/// Starts pod `bench-{n}` (one `sleep` container); time to running.
pub async fn start_pod(cri: &CriClient, image: &str, log_root: &Path, n: usize) -> Result<Duration> {
    let started = Instant::now();
    let name = format!("bench-{n}");
    let sandbox = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.clone(),
            uid: format!("bench-uid-{n}"),
            namespace: "bench".into(),
            attempt: 0,
        }),
        hostname: name.clone(),
        log_directory: log_root.join(&name).display().to_string(),
        linux: Some(api::LinuxPodSandboxConfig::default()),
        ..Default::default()
    };
    let sandbox_id = cri.run_pod_sandbox(&sandbox, "").await?;
    let container = api::ContainerConfig {
        metadata: Some(api::ContainerMetadata { name: "sleep".into(), attempt: 0 }),
        image: Some(api::ImageSpec { image: image.into(), ..Default::default() }),
        command: vec!["sleep".into(), "3600".into()],
        log_path: "sleep/0.log".into(),
        linux: Some(api::LinuxContainerConfig::default()),
        ..Default::default()
    };
    let id = cri.create_container(&sandbox_id, &container, &sandbox).await?;
    cri.start_container(&id).await?;
    let state = cri.container_status(&id).await?.state;
    anyhow::ensure!(state == api::ContainerState::ContainerRunning as i32, "container {id} not running: {state}");
    Ok(started.elapsed())
}

/// Starts pods `first..first + count` with at most `in_flight` at once;
/// returns each pod's start time and the wall time of the whole burst.
pub async fn burst(
    cri: &CriClient,
    image: &str,
    log_root: &Path,
    first: usize,
    count: usize,
    in_flight: usize,
) -> Result<(Vec<Duration>, Duration)> {
    let permits = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let wall = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in first..first + count {
        let (cri, image, logs, permits) = (cri.clone(), image.to_string(), log_root.to_path_buf(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            start_pod(&cri, &image, &logs, n).await
        });
    }
    let mut samples = Vec::new();
    while let Some(result) = tasks.join_next().await {
        samples.push(result??);
    }
    Ok((samples, wall.elapsed()))
}

/// Nearest-rank percentile `q` (0..=1) of `samples`.
pub fn percentile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied().unwrap_or_default()
}
