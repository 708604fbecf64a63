//! From a container's exit to its first restart starting, and to the pod
//! status showing the exit (issue 9's benchmark; printed numbers).
//!
//! On one `bosun up` cluster, `BOSUN_BENCH_RUNS` pods (default 20) each run a
//! container that exits (code 3) at its own Unix second, one second apart,
//! after all have started. Per pod:
//! - exit -> restart: containerd's `finished_at` of attempt 0 to `created_at`
//!   of attempt 1 (both recorded by the runtime, in ns);
//! - exit -> status: `finished_at` to the moment an API watch delivers a pod
//!   status showing the exit (`lastState.terminated` or `state.terminated`).
//!
//! `flock /tmp/bosun-host.lock cargo bench -p bosun --bench restart`

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use bosun_cri::{ClientOptions, CriClient};
use serde_json::Value;
use support::cluster::Cluster;
use support::restarts::{crashing_pods, first_restarts, quantile, unix_now};
use support::scale::Api;

const DEADLINE: Duration = Duration::from_secs(300);

fn now_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or_default()
}

/// Reads the watch until every one of `count` pods showed its exit: when
/// (ns since the epoch) each did, by pod UID.
async fn exit_seen(mut response: reqwest::Response, count: usize) -> Result<HashMap<String, i64>> {
    let mut seen = HashMap::new();
    let mut buffer = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else { continue };
            let pod = &event["object"];
            let status = &pod["status"]["containerStatuses"][0];
            if status["lastState"]["terminated"].is_object() || status["state"]["terminated"].is_object() {
                if let Some(uid) = pod["metadata"]["uid"].as_str() {
                    seen.entry(uid.to_string()).or_insert_with(now_nanos);
                }
            }
            if seen.len() >= count {
                return Ok(seen);
            }
        }
    }
    bail!("watch ended after {} of {count} pods showed their exit", seen.len())
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

fn print(what: &str, values: &[Duration]) {
    let (p50, p99, max) = (quantile(values, 0.5), quantile(values, 0.99), quantile(values, 1.0));
    println!(
        "  {what:<28} p50 {:>5} ms   p99 {:>5} ms   max {:>5} ms   (n={})",
        ms(p50),
        ms(p99),
        ms(max),
        values.len()
    );
}

async fn run(cluster: &Cluster, runs: usize) -> Result<()> {
    let api = Api::new(cluster)?;
    let list = api.get("/api/v1/namespaces/default/pods").await?;
    let version = list["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
    let watch = api
        .open_watch(&format!(
            "/api/v1/namespaces/default/pods?watch=true&labelSelector=app%3Drestart&resourceVersion={version}"
        ))
        .await?;
    let seen = tokio::spawn(exit_seen(watch, runs));
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    // All pods start first; then one exit per second.
    let first_exit = unix_now() + 20;
    let (ok, _, err) = cluster.apply_stdin(&crashing_pods(&image, "restart", runs, |i| first_exit + i as u64))?;
    ensure!(ok, "creating pods: {err}");
    let pods = cluster.json(&["get", "pods", "-l", "app=restart"])?;
    let uids: Vec<String> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string))
        .collect();
    ensure!(uids.len() == runs, "{} pods listed", uids.len());
    let cri = CriClient::connect(&cluster.cri_socket(), ClientOptions::default()).await?;
    // Read as each restart shows (attempt 0 is collected once attempt 2 exists).
    let pairs = first_restarts(&cri, &uids, DEADLINE).await?;
    let nanos = |from: i64, to: i64| Duration::from_nanos(u64::try_from(to - from).unwrap_or_default());
    let restarts: Vec<Duration> = pairs.iter().map(|(exited, created)| nanos(*exited, *created)).collect();
    let seen = tokio::time::timeout(DEADLINE, seen).await.context("watch deadline")???;
    let mut status = Vec::new();
    for (uid, (exited, _)) in uids.iter().zip(&pairs) {
        let at = seen.get(uid).context("exit never seen")?;
        status.push(nanos(*exited, *at));
    }
    println!("exit -> restart and exit -> status ({runs} runs):");
    print("exit -> restart created", &restarts);
    print("exit -> status shows it", &status);
    Ok(())
}

fn main() -> Result<()> {
    // `cargo test --benches` runs benches with `--bench` absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let runs = std::env::var("BOSUN_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let cluster = Cluster::start("restart-bench")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run(&cluster, runs))
}
