//! Resource usage of the node, its pods and their containers, read from the
//! cgroup files (via `bosun_cgroups::stats`, no directory walks), with CPU
//! rates from consecutive samples, served on the kubelet API as the Summary
//! API (`/stats/summary`) and Prometheus pages (`/metrics/resource`,
//! `/metrics/cadvisor`).
//!
//! Layout: `locate` (where cgroups are, behind [`CgroupLocator`]), `rate`
//! (pure CPU rate tracking), `sample` (one collection as data), `summary`
//! and `metrics` (pure renderings), `provider` (the I/O: list, locate, read),
//! `http` (the routes).
//!
//! Must not: write to cgroups or act on what it reads (eviction decides
//! elsewhere, from these numbers).

mod http;
pub mod locate;
pub mod metrics;
pub mod provider;
pub mod rate;
pub mod sample;
pub mod summary;

#[cfg(test)]
mod tests;

pub use http::routes;
pub use locate::{CgroupLocator, CriPidLocator};
pub use provider::{StatsDeps, StatsProvider};

/// The shortest window a CPU rate is computed over; scrapes closer together
/// share one collection.
pub const MIN_RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

/// How often the agent collects on its own, so a rate is ready at the first scrape.
pub const COLLECT_PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the host mounts cgroupfs.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Builds the agent's provider on the host's cgroupfs and starts its
/// collection loop on `tasks`.
pub fn wire(
    cri: bosun_cri::CriClient,
    runtime: std::sync::Arc<dyn crate::runtime::Runtime>,
    registry: crate::pod_manager::PodRegistry,
    pod_cgroups: crate::pod_cgroups::PodCgroups,
    node_name: &str,
    token: &tokio_util::sync::CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> std::sync::Arc<StatsProvider> {
    let hierarchy = bosun_cgroups::stats::Hierarchy::detect(std::path::Path::new(CGROUP_ROOT));
    let locator =
        std::sync::Arc::new(CriPidLocator::new(cri, hierarchy.clone(), "/proc".into()).with_pod_cgroups(pod_cgroups));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_capacity_bytes = crate::host::parse_meminfo_kib(&meminfo).unwrap_or(0).saturating_mul(1024);
    let provider = std::sync::Arc::new(StatsProvider::new(StatsDeps {
        runtime,
        locator,
        registry,
        hierarchy,
        node_name: node_name.to_string(),
        memory_capacity_bytes,
        min_window: MIN_RATE_WINDOW,
        max_open_files: kept_files_budget(),
    }));
    tasks.spawn(provider.clone().run(COLLECT_PERIOD, token.clone()));
    provider
}

/// Most cgroup files the stats reader keeps open: a quarter of the
/// open-file limit, after raising the soft limit to the hard one (as Go
/// programs such as the kubelet do at start), and at most 4096.
fn kept_files_budget() -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let soft = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(error) => {
                tracing::debug!(%error, "could not raise the open-file limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    };
    usize::try_from(soft / 4).unwrap_or(usize::MAX).min(4096)
}
