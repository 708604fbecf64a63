//! Scale benchmark (issue 7): one `bosun up`, a Deployment of 3 pods, then
//! 1, 1,000, 10,000 and 44,000 Services selecting them, grown in one run.
//! At each level it prints: Service create -> ClusterIP answering (p50/p99
//! over 20 creates), split into create -> EndpointSlice written -> nft
//! element present; pod turning Ready -> its endpoint in nft; idle CPU of
//! `bosun control` and the agent over 10 s; RSS of both.
//!
//! `flock /tmp/bosun-host.lock cargo bench --bench scale` (release build).
//! Env: `BOSUN_BENCH_SERVICES` (comma-separated levels, default
//! `1,1000,10000,44000`), `BOSUN_BENCH_CREATES` (default 20).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use support::cluster::{cpu_percent, rss_mib, Cluster};
use support::nftmon::NftMonitor;
use support::scale::{self, Api, ServiceTimes, SliceTracker};

const IN_FLIGHT: usize = 32;
const CONVERGE: Duration = Duration::from_secs(1800);

fn levels() -> Vec<usize> {
    std::env::var("BOSUN_BENCH_SERVICES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 1_000, 10_000, 44_000])
}

fn creates() -> usize {
    std::env::var("BOSUN_BENCH_CREATES").ok().and_then(|v| v.parse().ok()).unwrap_or(20)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50 and p99 (nearest rank) of `samples` in ms.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let pick = |q: f64| {
        let rank = ((samples.len() as f64) * q).ceil() as usize;
        samples.get(rank.saturating_sub(1)).copied().unwrap_or_default()
    };
    (millis(pick(0.5)), millis(pick(0.99)))
}

fn main() -> Result<()> {
    let (cluster, nft) = scale::start_web_cluster("bench-node")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run(&cluster, &nft))
}

async fn run(cluster: &Cluster, nft: &NftMonitor) -> Result<()> {
    let api = Api::new(cluster)?;
    let slices = SliceTracker::start(&api);
    let mut ips: Vec<String> = Vec::new();
    let mut probes = 0usize;
    for level in levels() {
        let grown = Instant::now();
        let have = ips.len();
        if level > have {
            ips.extend(scale::create_services(&api, "load-", have..level, IN_FLIGHT).await?);
        }
        let every = Duration::from_millis(200);
        let total = ips.len();
        scale::eventually("slices converged", CONVERGE, every, || async {
            Ok(slices.services_with("load-", 3) == total)
        })
        .await?;
        scale::eventually("nft converged", CONVERGE, every, || async { Ok(nft.services_present(&ips) == total) })
            .await?;
        let converged = grown.elapsed();

        let mut times: Vec<ServiceTimes> = Vec::new();
        for _ in 0..creates() {
            probes += 1;
            times.push(scale::time_new_service(&api, nft, &format!("probe-{probes}"), Duration::from_secs(600)).await?);
        }
        let probe_ip = ips.last().context("a load Service")?.clone();
        let ready_to_nft = scale::time_pod_ready_to_nft(&api, nft, 3, &probe_ip, CONVERGE).await?;
        scale::eventually("back to 3 endpoints", CONVERGE, every, || async {
            Ok(slices.services_with("load-", 3) == total)
        })
        .await?;

        let (control, agent) = cluster.component_pids()?;
        let window = Duration::from_secs(10);
        let control_cpu = tokio::task::spawn_blocking(move || cpu_percent(control, window));
        let agent_cpu = tokio::task::spawn_blocking(move || cpu_percent(agent, window));
        let (control_cpu, agent_cpu) = (control_cpu.await??, agent_cpu.await??);

        let (slice50, slice99) = percentiles(times.iter().map(|t| t.slice).collect());
        let (nft50, nft99) = percentiles(times.iter().map(|t| t.nft).collect());
        let (answer50, answer99) = percentiles(times.iter().map(|t| t.answer).collect());
        println!("services={level} (+{probes} probes): grown and converged in {:.1}s", converged.as_secs_f64());
        println!(
            "  create -> slice written p50={slice50:.0}ms p99={slice99:.0}ms | -> nft p50={nft50:.0}ms p99={nft99:.0}ms | -> ClusterIP answers p50={answer50:.0}ms p99={answer99:.0}ms (n={})",
            times.len()
        );
        println!("  pod Ready -> endpoint in nft (service {probe_ip}): {:.0}ms", millis(ready_to_nft));
        println!(
            "  idle CPU over 10s: control {control_cpu:.2}%, agent {agent_cpu:.2}% | RSS control {:.0} MiB, agent {:.0} MiB",
            rss_mib(control)?,
            rss_mib(agent)?
        );
    }
    Ok(())
}
