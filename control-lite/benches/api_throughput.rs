//! Pod creates through the HTTP API of `bosun control` (release build, a
//! separate process) by `CLIENTS` concurrent clients, beside the raw durable
//! write rate of the same store in the same run:
//! `BOSUN_BIN=target/release/bosun cargo bench -p bosun-control --bench api_throughput`.
//!
//! For SQLite (data dir on the bench's temp dir, `BOSUN_BENCH_DIR` picks its
//! parent) the raw rate is single-row rusqlite transactions (WAL,
//! `synchronous=FULL`) in that directory; for etcd (a one-member etcd on
//! loopback, `bosun control --datastore-endpoint`) it is `put`s straight
//! from an etcd client, one in flight and `CLIENTS` in flight. The pods carry
//! a scheduling gate, so the scheduler leaves them alone and only the create
//! path is measured. `PODS` overrides the number of measured creates. The
//! disk's fsync rate drifts with other load, so the raw rates are measured
//! before and after the API run, and the ratio to each is printed.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bosun_testing::etcd::EtcdCluster;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::Api;
use serde_json::json;
use support::{count, percentile_ms, Control};

/// Concurrent API clients (and concurrent raw writers).
const CLIENTS: usize = 8;
/// Creates before measuring (connections, caches, first allocations).
const WARMUP: usize = 200;
/// Raw writes per measurement.
const RAW_WRITES: usize = 2_000;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let pods = count("PODS", 4_000)?;
    let dir = match std::env::var_os("BOSUN_BENCH_DIR") {
        Some(parent) => tempfile::tempdir_in(parent)?,
        None => tempfile::tempdir()?,
    };
    println!("== sqlite (file, WAL, synchronous=FULL), {pods} pod creates, {CLIENTS} clients");
    let before = raw_sqlite(&dir.path().join("raw-before.db"), RAW_WRITES)?;
    println!("raw rusqlite single-row tx (1 in flight), before: {before:7.0} writes/s");
    let control = Control::start(&dir.path().join("sqlite"), None).await?;
    let api = creates(&control, pods).await?;
    drop(control);
    let after = raw_sqlite(&dir.path().join("raw-after.db"), RAW_WRITES)?;
    println!("raw rusqlite single-row tx (1 in flight), after:  {after:7.0} writes/s");
    println!("  = {:.0}% of the raw rate before, {:.0}% after", 100.0 * api / before, 100.0 * api / after);

    println!("== etcd (one member on loopback, --datastore-endpoint), {pods} pod creates, {CLIENTS} clients");
    let etcd = tokio::task::spawn_blocking(|| EtcdCluster::start(1)).await??;
    let endpoints = etcd.endpoints();
    let raw_one = raw_etcd(&endpoints, 1).await?;
    println!("raw etcd put (1 in flight):                      {raw_one:7.0} writes/s");
    let raw_many = raw_etcd(&endpoints, CLIENTS).await?;
    println!("raw etcd put ({CLIENTS} in flight):                      {raw_many:7.0} writes/s");
    let control = Control::start(&dir.path().join("etcd"), Some(&endpoints)).await?;
    let api = creates(&control, pods).await?;
    drop(control);
    let raw_one = (raw_one + raw_etcd(&endpoints, 1).await?) / 2.0;
    let raw_many = (raw_many + raw_etcd(&endpoints, CLIENTS).await?) / 2.0;
    println!(
        "  = {:.0}% of the raw rate (1 in flight; mean of before and after), {:.0}% ({CLIENTS} in flight)",
        100.0 * api / raw_one,
        100.0 * api / raw_many
    );
    Ok(())
}

/// A pod the scheduler skips (it has a scheduling gate).
fn pod(prefix: &str, index: usize) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": format!("{prefix}{index}"), "labels": {"app": "bench"}},
        "spec": {
            "schedulingGates": [{"name": "bench/hold"}],
            "containers": [{"name": "c", "image": "busybox",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]
        }
    }))?)
}

/// `n` creates by `CLIENTS` clients taking indexes from one counter;
/// returns creates per second and prints the latency.
async fn create_all(api: &Api<Pod>, prefix: &'static str, n: usize) -> anyhow::Result<(f64, Vec<Duration>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (api, next) = (api.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return anyhow::Ok(latencies);
                    }
                    let pod = pod(prefix, i)?;
                    let sent = Instant::now();
                    api.create(&PostParams::default(), &pod).await?;
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for worker in workers {
        all.extend(worker.await??);
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok((rate, all))
}

async fn creates(control: &Control, n: usize) -> anyhow::Result<f64> {
    let api: Api<Pod> = Api::default_namespaced(control.client().await?);
    create_all(&api, "warm-", WARMUP).await?;
    let (rate, latencies) = create_all(&api, "p-", n).await?;
    println!(
        "pod creates through the API:                     {rate:7.0} /s  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile_ms(&latencies, 50),
        percentile_ms(&latencies, 99),
        percentile_ms(&latencies, 100)
    );
    Ok(rate)
}

/// Single-row transactions straight on rusqlite (WAL, `synchronous=FULL`),
/// one at a time; returns writes per second.
fn raw_sqlite(path: &std::path::Path, n: usize) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, v BLOB)")?;
    let start = Instant::now();
    for i in 0..n {
        conn.execute_batch("BEGIN")?;
        conn.execute(
            "INSERT INTO t (key, v) VALUES (?1, ?2)",
            rusqlite::params![format!("/raw/{i}"), vec![b'x'; 1024]],
        )?;
        conn.execute_batch("COMMIT")?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// `RAW_WRITES` puts of 1 KiB straight from an etcd client, `in_flight` at a
/// time; returns writes per second.
async fn raw_etcd(endpoints: &[String], in_flight: usize) -> anyhow::Result<f64> {
    let client = etcd_client::Client::connect(endpoints, None).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let writers: Vec<_> = (0..in_flight)
        .map(|w| {
            let (mut kv, next) = (client.kv_client(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= RAW_WRITES {
                        return anyhow::Ok(());
                    }
                    kv.put(format!("/raw/{in_flight}/{w}/{i}"), vec![b'x'; 1024], None).await?;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    Ok(RAW_WRITES as f64 / start.elapsed().as_secs_f64())
}
