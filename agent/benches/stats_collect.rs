//! CPU cost of one stats collection over 100 pods (issue 10's benchmark;
//! printed numbers; goal: under 5 ms of CPU).
//!
//! 100 real cgroups are made on this host's cgroupfs (v1: `memory`, `cpu`,
//! `cpuacct`, `pids`; v2: one tree), each the cgroup of one running
//! container of a pod in the fake CRI runtime (served over gRPC in this
//! process, so its side of `ListContainers` is counted too). Each round is
//! one full `StatsProvider::collect`: ListContainers, locating (remembered
//! after the first round, as in the agent), reading the node's and 100
//! containers' cgroup files, rates and grouping; then the Summary JSON and
//! the `/metrics/resource` text are rendered. CPU is this process's user +
//! system time (`/proc/self/stat`) over the rounds, divided by the rounds.
//!
//! `cargo bench -p bosun-agent --bench stats_collect` (as root)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bosun_agent::labels;
use bosun_agent::pod_manager::PodRegistry;
use bosun_agent::stats::locate::testing::FakeLocator;
use bosun_agent::stats::{metrics, summary, StatsDeps, StatsProvider, CGROUP_ROOT};
use bosun_cgroups::stats::Hierarchy;
use bosun_cri::testing::{FakeCri, PodRecipe};
use bosun_cri::{ClientOptions, CriClient};

const PODS: usize = 100;
const ROUNDS: u32 = 200;

/// CPU time (user + system, all threads) of this process so far, from
/// `/proc/self/stat` (clock ticks of 10 ms; the rounds add up to many).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: u64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
}

/// The cgroup directories made for the bench, removed on drop (children first).
struct Made(Vec<PathBuf>);

impl Drop for Made {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn make_cgroups(hierarchy: &Hierarchy, parent: &str) -> Result<Made> {
    let roots: Vec<PathBuf> = match hierarchy {
        Hierarchy::V1 { root, .. } => ["memory", "cpu", "cpuacct", "pids"].iter().map(|c| root.join(c)).collect(),
        Hierarchy::V2 { root } => vec![root.clone()],
    };
    let mut made = Made(Vec::new());
    for root in &roots {
        let top = root.join(parent);
        std::fs::create_dir(&top).with_context(|| format!("mkdir {}", top.display()))?;
        made.0.push(top.clone());
        for i in 0..PODS {
            let dir = top.join(format!("c{i}"));
            std::fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
            made.0.push(dir);
        }
    }
    Ok(made)
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(bench())
}

async fn bench() -> Result<()> {
    let hierarchy = Hierarchy::detect(Path::new(CGROUP_ROOT));
    let parent = format!("bosun-stats-bench-{}", std::process::id());
    let _made = make_cgroups(&hierarchy, &parent)?;

    let dir = tempfile::tempdir()?;
    let token = tokio_util::sync::CancellationToken::new();
    let fake = FakeCri::new().with_image("busybox:1.36");
    let _server = fake.serve(dir.path().join("cri.sock"), token.clone())?;
    let client = CriClient::connect(dir.path().join("cri.sock"), ClientOptions::default()).await?;
    let mut containers = HashMap::new();
    for i in 0..PODS {
        let recipe = PodRecipe::new("bench", &format!("pod-{i}"), "busybox:1.36");
        let sandbox_config = recipe.sandbox_config();
        let sandbox = client.run_pod_sandbox(&sandbox_config, "").await?;
        let mut config = recipe.container_config();
        config.labels = HashMap::from([
            (labels::POD_UID.to_string(), format!("uid-{i}")),
            (labels::POD_NAMESPACE.to_string(), "bench".to_string()),
            (labels::POD_NAME.to_string(), format!("pod-{i}")),
            (labels::CONTAINER_NAME.to_string(), "main".to_string()),
        ]);
        let id = client.create_container(&sandbox, &config, &sandbox_config).await?;
        client.start_container(&id).await?;
        containers.insert(id, hierarchy.dirs(&format!("/{parent}/c{i}")));
    }
    let provider = StatsProvider::new(StatsDeps {
        runtime: Arc::new(client),
        locator: Arc::new(FakeLocator { containers, ..Default::default() }),
        registry: PodRegistry::default(),
        hierarchy: hierarchy.clone(),
        node_name: "bench".into(),
        memory_capacity_bytes: 1 << 30,
        min_window: Duration::from_millis(1),
        max_open_files: 4096,
    });
    let first = provider.collect().await?;
    anyhow::ensure!(first.pods.len() == PODS, "collected {} pods of {PODS}", first.pods.len());

    let (cpu0, wall0) = (cpu_time(), Instant::now());
    let mut bytes = 0;
    for _ in 0..ROUNDS {
        let collection = provider.collect().await?;
        bytes += serde_json::to_vec(&summary::build(&collection))?.len();
        bytes += metrics::render_resource(&collection).len();
    }
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    let per = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(ROUNDS);

    // The cgroup reads alone (101 cgroups), for scale.
    let dirs: Vec<_> = (0..PODS).map(|i| hierarchy.dirs(&format!("/{parent}/c{i}"))).collect();
    let cpu1 = cpu_time();
    for _ in 0..ROUNDS {
        bosun_cgroups::stats::read(&hierarchy.root_dirs())?;
        for d in &dirs {
            bosun_cgroups::stats::read(d)?;
        }
    }
    let reads = cpu_time() - cpu1;
    // The same with the provider's kept-files reader.
    let mut reader = bosun_cgroups::stats::StatsReader::new(4096, bosun_agent::stats::provider::LIMITS_REFRESH_EVERY);
    let cpu2 = cpu_time();
    for _ in 0..ROUNDS {
        reader.read(&hierarchy.root_dirs())?;
        for d in &dirs {
            reader.read(d)?;
        }
        reader.sweep();
    }
    let kept_reads = cpu_time() - cpu2;

    println!("stats collection over {PODS} pods ({hierarchy:?}), {ROUNDS} rounds:");
    println!(
        "  collect + summary JSON + /metrics/resource: {:.3} ms CPU/round ({:.3} ms wall), {} bytes/round",
        per(cpu),
        per(wall),
        bytes / ROUNDS as usize
    );
    println!("  cgroup file reads alone (node + {PODS} cgroups), opened each time: {:.3} ms CPU/round", per(reads));
    println!("  the same with files kept open (StatsReader): {:.3} ms CPU/round", per(kept_reads));
    println!("  goal: < 5 ms CPU per collection");
    token.cancel();
    Ok(())
}
