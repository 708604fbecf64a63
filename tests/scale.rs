//! Scale acceptance (issue 7): with 10,000 Services selecting the same three
//! pods, a new Service's ClusterIP answers within 1 s and `bosun control`
//! idles under 5% of a core. Runs `bosun up` like `tests/e2e.rs`; prints the
//! numbers it measured. Run by hand under the host lock:
//! `flock /tmp/bosun-host.lock cargo test --test scale`.

mod support;

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use support::cluster::{cpu_percent, rss_mib, Cluster};
use support::nftmon::NftMonitor;
use support::scale::{self, Api, SliceTracker};

/// Services created before measuring (at 2,000 the old code still passed).
const SERVICES: usize = 10_000;
/// Requests in flight while creating them.
const IN_FLIGHT: usize = 16;
/// The acceptance bounds.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
const IDLE_CPU_PERCENT: f64 = 5.0;
/// Generous: a debug build on a loaded 2-core machine.
const CONVERGE: Duration = Duration::from_secs(900);

#[test]
fn new_service_answers_quickly_and_control_idles_with_10k_services() -> Result<()> {
    let (cluster, nft) = scale::start_web_cluster("scale-node")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(measure(&cluster, &nft))
}

async fn measure(cluster: &Cluster, nft: &NftMonitor) -> Result<()> {
    let api = Api::new(cluster)?;
    let slices = SliceTracker::start(&api);
    let created = Instant::now();
    let ips = scale::create_services(&api, "load-", 0..SERVICES, IN_FLIGHT).await?;
    println!("measured: created {SERVICES} Services in {:.1}s", created.elapsed().as_secs_f64());

    // Converged: every load Service has a slice with the 3 pods, and nft has it.
    let every = Duration::from_millis(500);
    scale::eventually("10,000 EndpointSlices with 3 endpoints", CONVERGE, every, || async {
        Ok(slices.services_with("load-", 3) == SERVICES)
    })
    .await?;
    let to_slices = created.elapsed();
    scale::eventually("every Service in nft", CONVERGE, every, || async { Ok(nft.services_present(&ips) == SERVICES) })
        .await?;
    println!(
        "measured: create start -> all slices written {:.1}s, -> all in nft {:.1}s",
        to_slices.as_secs_f64(),
        created.elapsed().as_secs_f64()
    );
    drop(slices);

    let times = scale::time_new_service(&api, nft, "probe", Duration::from_secs(60)).await?;
    println!(
        "measured: new Service with {SERVICES} present: slice written {:.0}ms, in nft {:.0}ms, ClusterIP answers {:.0}ms",
        times.slice.as_secs_f64() * 1e3,
        times.nft.as_secs_f64() * 1e3,
        times.answer.as_secs_f64() * 1e3
    );

    let (control, agent) = cluster.component_pids()?;
    let window = Duration::from_secs(10);
    let control_cpu = tokio::task::spawn_blocking(move || cpu_percent(control, window)).await??;
    println!(
        "measured: idle bosun control {control_cpu:.2}% CPU over 10 s; RSS control {:.0} MiB, agent {:.0} MiB",
        rss_mib(control)?,
        rss_mib(agent)?
    );

    ensure!(times.answer < ANSWER_WITHIN, "new Service answered after {:?}, bound {ANSWER_WITHIN:?}", times.answer);
    ensure!(control_cpu < IDLE_CPU_PERCENT, "idle control used {control_cpu:.2}% CPU, bound {IDLE_CPU_PERCENT}%");
    Ok(())
}
