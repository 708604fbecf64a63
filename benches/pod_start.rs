//! Pod start through the whole stack against the raw CRI floor (issue 8).
//!
//! On one `bosun up` cluster, each run creates a burst of 30 pods through
//! the API (POSTs 30 in flight; the scheduler binds, the agent starts them)
//! and times each from its POST to the moment a watch shows it Running;
//! beside it, the CRI floor (`support::cri_floor`: RunPodSandbox +
//! CreateContainer + StartContainer through the cri client alone) on the
//! same containerd, 30 in flight. Runs alternate which goes first. Prints
//! p50, p99 and total of both and the ratio of the totals, then the agent's
//! RSS with 110 running pods (the default max-pods).
//!
//! `flock /tmp/bosun-host.lock cargo bench -p bosun --bench pod_start`
//! (release build). Env: `BOSUN_BENCH_RUNS` (default 2), `BOSUN_BENCH_PODS`
//! (burst size, default 30), `BOSUN_BENCH_RSS_PODS` (default 110, 0 skips).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bosun_cri::{ClientOptions, CriClient};
use serde_json::{json, Value};
use support::cluster::{rss_mib, Cluster};
use support::cri_floor::{self, percentile};
use support::scale::Api;

const PODS: &str = "/api/v1/namespaces/default/pods";
const CONVERGE: Duration = Duration::from_secs(600);

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Burst {
    samples: Vec<Duration>,
    total: Duration,
}

impl Burst {
    fn print(&self, label: &str) {
        println!(
            "{label}: n={} p50={:.0}ms p99={:.0}ms total={:.0}ms",
            self.samples.len(),
            ms(percentile(&self.samples, 0.5)),
            ms(percentile(&self.samples, 0.99)),
            ms(self.total)
        );
    }
}

fn pod(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "pod-start"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "sleep", "image": image, "command": ["sleep", "3600"]}]
        }
    })
}

/// Creates `names` through the API (all POSTs in flight at once) and waits
/// until a watch shows each Running; per-pod POST -> Running times.
async fn api_burst(api: &Api, http: &reqwest::Client, base: &str, names: &[String], image: &str) -> Result<Burst> {
    let list = api.get(&format!("{PODS}?labelSelector=bench%3Dpod-start")).await?;
    let version = list["metadata"]["resourceVersion"].as_str().context("list resourceVersion")?.to_string();
    let watch =
        api.open_watch(&format!("{PODS}?watch=true&labelSelector=bench%3Dpod-start&resourceVersion={version}")).await?;
    let started = Instant::now();
    let mut posts = tokio::task::JoinSet::new();
    for name in names {
        let (http, url, body, name) = (http.clone(), format!("{base}{PODS}"), pod(name, image), name.clone());
        posts.spawn(async move {
            let sent = Instant::now();
            let response = http.post(url).json(&body).send().await?;
            ensure!(response.status().is_success(), "creating {name}: {}", response.status());
            anyhow::Ok((name, sent))
        });
    }
    let running = tokio::spawn(running_times(watch, names.len()));
    let mut sent = HashMap::new();
    while let Some(result) = posts.join_next().await {
        let (name, at) = result??;
        sent.insert(name, at);
    }
    let running = tokio::time::timeout(CONVERGE, running).await.context("pods Running in time")???;
    let mut samples = Vec::new();
    let mut last = started;
    for (name, at) in &running {
        let posted = sent.get(name).with_context(|| format!("{name} was not created by us"))?;
        samples.push(at.saturating_duration_since(*posted));
        last = last.max(*at);
    }
    Ok(Burst { samples, total: last.duration_since(started) })
}

/// Reads the watch until `count` pods were seen Running: when each was.
async fn running_times(mut response: reqwest::Response, count: usize) -> Result<HashMap<String, Instant>> {
    let mut seen = HashMap::new();
    let mut buffer = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else { continue };
            let pod = &event["object"];
            if pod["status"]["phase"] == "Running" {
                if let Some(name) = pod["metadata"]["name"].as_str() {
                    seen.entry(name.to_string()).or_insert_with(Instant::now);
                }
            }
            if seen.len() >= count {
                return Ok(seen);
            }
        }
    }
    bail!("watch ended after {} of {count} pods Running", seen.len())
}

/// Deletes every bench pod (grace 0) and waits until the API and the
/// runtime have none left.
async fn delete_all(api: &Api, http: &reqwest::Client, base: &str, cri: &CriClient) -> Result<()> {
    let list = api.get(&format!("{PODS}?labelSelector=bench%3Dpod-start")).await?;
    for item in list["items"].as_array().into_iter().flatten() {
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        let response = http.delete(format!("{base}{PODS}/{name}?gracePeriodSeconds=0")).send().await?;
        ensure!(response.status().is_success() || response.status() == 404, "deleting {name}: {}", response.status());
    }
    let deadline = Instant::now() + CONVERGE;
    loop {
        let left = api.get(&format!("{PODS}?labelSelector=bench%3Dpod-start")).await?;
        let in_api = left["items"].as_array().map_or(0, Vec::len);
        let in_runtime = cri.list_pod_sandboxes(None).await?.len();
        if in_api == 0 && in_runtime == 0 {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{in_api} pods in the API, {in_runtime} sandboxes left");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn floor_burst(
    cri: &CriClient,
    image: &str,
    logs: &std::path::Path,
    first: usize,
    count: usize,
) -> Result<Burst> {
    let (samples, total) = cri_floor::burst(cri, image, logs, first, count, count).await?;
    bosun_stack::teardown::remove_all_pods(cri, Duration::ZERO).await?;
    Ok(Burst { samples, total })
}

/// Where the agent's RSS is: anonymous (heap, stacks) vs file-backed (the
/// binary's text) pages, and its thread count, from `/proc/<pid>/status`.
fn memory_breakdown(pid: i32) -> Result<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    let mib =
        |name: &str| field(name).parse::<f64>().map_or_else(|_| "?".to_string(), |k| format!("{:.1}", k / 1024.0));
    Ok(format!("RssAnon {} MiB, RssFile {} MiB, threads {}", mib("RssAnon:"), mib("RssFile:"), field("Threads:")))
}

async fn run(cluster: &Cluster) -> Result<()> {
    let api = Api::new(cluster)?;
    let (http, base) = (api.http.clone(), api.base.clone());
    let cri = CriClient::connect(cluster.cri_socket(), ClientOptions::default()).await?;
    let image = format!("{}/{}:{}", cluster.registry, bosun_images::APP_REPOSITORY, bosun_images::APP_TAG);
    let logs = cluster.dir.join("bench-logs");
    let (runs, count) = (env_number("BOSUN_BENCH_RUNS", 2), env_number("BOSUN_BENCH_PODS", 30));

    // Warm-up: the agent pulls the image, both paths prime CNI.
    api_burst(&api, &http, &base, &["warm-up".to_string()], &image).await?;
    delete_all(&api, &http, &base, &cri).await?;
    floor_burst(&cri, &image, &logs, 0, 1).await?;

    let mut ratios = Vec::new();
    for run in 0..runs {
        let names: Vec<String> = (0..count).map(|i| format!("burst-{run}-{i}")).collect();
        let first = 1000 * (run + 1);
        let (agent, floor) = if run % 2 == 0 {
            let floor = floor_burst(&cri, &image, &logs, first, count).await?;
            let agent = api_burst(&api, &http, &base, &names, &image).await?;
            (agent, floor)
        } else {
            let agent = api_burst(&api, &http, &base, &names, &image).await?;
            delete_all(&api, &http, &base, &cri).await?;
            let floor = floor_burst(&cri, &image, &logs, first, count).await?;
            (agent, floor)
        };
        delete_all(&api, &http, &base, &cri).await?;
        let ratio = agent.total.as_secs_f64() / floor.total.as_secs_f64().max(1e-9);
        println!("run {run} ({} first):", if run % 2 == 0 { "floor" } else { "api" });
        agent.print(&format!("  api burst  ({count} pods, POST -> Running in watch)"));
        floor.print(&format!("  cri floor  ({count} pods, {count} in flight)"));
        println!("  ratio (total api / total floor): {ratio:.2}x");
        ratios.push(ratio);
    }
    if !ratios.is_empty() {
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        println!("mean ratio over {} runs: {mean:.2}x", ratios.len());
    }

    let rss_pods = env_number("BOSUN_BENCH_RSS_PODS", 110);
    if rss_pods > 0 {
        let (_, agent_pid) = cluster.component_pids()?;
        let idle = rss_mib(agent_pid)?;
        println!("  idle: {}", memory_breakdown(agent_pid)?);
        let names: Vec<String> = (0..rss_pods).map(|i| format!("rss-{i}")).collect();
        let burst = api_burst(&api, &http, &base, &names, &image).await?;
        burst.print(&format!("  api burst  ({rss_pods} pods)"));
        // Let the workers settle into their steady period.
        tokio::time::sleep(Duration::from_secs(15)).await;
        println!("agent RSS: {idle:.1} MiB with 0 pods, {:.1} MiB with {rss_pods} running pods", rss_mib(agent_pid)?);
        println!("  {}", memory_breakdown(agent_pid)?);
        delete_all(&api, &http, &base, &cri).await?;
    }
    Ok(())
}

fn main() -> Result<()> {
    // `cargo test --benches` runs benches with `--bench` absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let cluster = Cluster::start("bench-node")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run(&cluster))
}
