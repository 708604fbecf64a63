//! The CRI floor: time from "run this pod sandbox" to "its container is
//! running", through our CRI client on the real stack, with images cached.
//! Later issues compare the agent's pod start against these numbers.
//!
//! `cargo bench --bench cri_floor` (or `make bench`). Env: `BOSUN_BENCH_PODS`
//! (sequential pods, default 20), `BOSUN_BENCH_PARALLEL_PODS` (default 30),
//! `BOSUN_BENCH_IN_FLIGHT` (default 10).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::Result;
use support::cri_floor::{burst, start_pod};
use support::TestStack;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn report(label: &str, mut samples: Vec<Duration>, wall: Duration) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{label}: n={} wall={:.2}s p50={:.0}ms p90={:.0}ms p99={:.0}ms max={:.0}ms",
        samples.len(),
        wall.as_secs_f64(),
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.9).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        pick(1.0).as_secs_f64() * 1e3,
    );
}

async fn bench(stack: &TestStack) -> Result<()> {
    let cri = &stack.cri;
    let image = stack.app_image();
    cri.pull_image(&image, None, None).await?;
    let logs = stack.config.dir.join("bench-logs");
    // Warm-up: pulls the sandbox image and primes CNI.
    start_pod(cri, &image, &logs, 0).await?;
    bosun_stack::teardown::remove_all_pods(cri, Duration::from_secs(0)).await?;

    let sequential = env_number("BOSUN_BENCH_PODS", 20);
    let wall = Instant::now();
    let mut samples = Vec::new();
    for n in 1..=sequential {
        samples.push(start_pod(cri, &image, &logs, n).await?);
    }
    report("sequential", samples, wall.elapsed());
    bosun_stack::teardown::remove_all_pods(cri, Duration::from_secs(0)).await?;

    let parallel = env_number("BOSUN_BENCH_PARALLEL_PODS", 30);
    let in_flight = env_number("BOSUN_BENCH_IN_FLIGHT", 10);
    let (samples, wall) = burst(cri, &image, &logs, 1000, parallel, in_flight).await?;
    report(&format!("parallel ({in_flight} in flight)"), samples, wall);
    bosun_stack::teardown::remove_all_pods(cri, Duration::from_secs(0)).await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // `cargo test --benches` runs benches with `--bench` absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let stack = TestStack::start().await?;
    let result = bench(&stack).await;
    stack.teardown().await?;
    result
}
