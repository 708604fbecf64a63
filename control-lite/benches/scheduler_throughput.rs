//! Scheduler throughput with `NODES` simulated nodes (Node objects, no
//! agents) and `PODS` pods, and the memory of `bosun control` holding them:
//! `BOSUN_BIN=target/release/bosun cargo bench -p bosun-control --bench scheduler_throughput`.
//!
//! 1. Decisions only, in process: `scheduler::decision::schedule` for every
//!    pod against a snapshot of the nodes (the CPU ceiling, no I/O); with
//!    `DECISIONS_ONLY` set the bench stops there (for profiling).
//! 2. Backlog, end to end: `bosun control` (SQLite) gets the nodes and the
//!    pods through the API, the pods with a scheduling gate so nothing is
//!    placed yet. The control plane is stopped, the gates are removed in the
//!    store, and it is started again: the scheduler finds every pod pending
//!    at once. A watch counts bound pods; the rate is taken from the first
//!    to the last binding seen (and from the restart).
//! 3. Memory: RSS of `bosun control` with the pods bound and their
//!    `Scheduled` Events stored, after 10 s idle. With `RESTART_ONLY` set
//!    the bench instead restarts with the gates kept and prints the RSS
//!    (what a restart alone costs, for comparison).
//! 4. Steady state: `STEADY` more pods created by 8 clients while the
//!    scheduler runs; latency from the create request to the binding seen.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bosun_control::scheduler::{cache, decision};
use bosun_control::store::Store;
use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::PostParams;
use kube::runtime::watcher;
use kube::Api;
use serde_json::{json, Value};
use support::{count, memory, percentile_ms, Control};

/// Concurrent API clients.
const CLIENTS: usize = 8;
/// Longest wait for the scheduler to bind everything.
const DEADLINE: Duration = Duration::from_secs(600);

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let nodes = count("NODES", 1_000)?;
    let pods = count("PODS", 10_000)?;
    let steady = count("STEADY", 2_000)?;
    decisions_only(nodes, pods)?;
    if std::env::var_os("DECISIONS_ONLY").is_some() {
        return Ok(());
    }

    let dir = match std::env::var_os("BOSUN_BENCH_DIR") {
        Some(parent) => tempfile::tempdir_in(parent)?,
        None => tempfile::tempdir()?,
    };
    let control = Control::start(dir.path(), None).await?;
    let client = control.client().await?;
    let created = Instant::now();
    let node_api: Api<Node> = Api::all(client.clone());
    stream::iter(0..nodes)
        .map(|i| {
            let api = node_api.clone();
            async move { anyhow::Ok(api.create(&PostParams::default(), &serde_json::from_value(node(i))?).await.map(drop)?) }
        })
        .buffer_unordered(CLIENTS)
        .try_collect::<()>()
        .await?;
    let pod_api: Api<Pod> = Api::default_namespaced(client.clone());
    stream::iter(0..pods)
        .map(|i| {
            let api = pod_api.clone();
            async move {
                anyhow::Ok(
                    api.create(&PostParams::default(), &serde_json::from_value(pod("p", i, true))?).await.map(drop)?,
                )
            }
        })
        .buffer_unordered(CLIENTS)
        .try_collect::<()>()
        .await?;
    println!(
        "== {nodes} nodes and {pods} gated pods created through the API in {:.1} s",
        created.elapsed().as_secs_f64()
    );
    let (rss, peak) = memory(control.pid())?;
    println!(
        "bosun control RSS with {nodes} nodes and {pods} gated pods (no Events): {rss:.1} MiB (peak {peak:.1} MiB)"
    );
    control.stop()?;

    if std::env::var_os("RESTART_ONLY").is_some() {
        let control = Control::start(dir.path(), None).await?;
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let (rss, peak) = memory(control.pid())?;
            println!("restarted, pods still gated: RSS {rss:.1} MiB (peak {peak:.1} MiB)");
        }
        return Ok(());
    }
    let ungated = Instant::now();
    ungate(&dir.path().join("data/store.db")).await?;
    println!("gates removed in the store in {:.1} s", ungated.elapsed().as_secs_f64());

    let restarted = Instant::now();
    let control = Control::start(dir.path(), None).await?;
    let client = control.client().await?;
    let pod_api: Api<Pod> = Api::default_namespaced(client.clone());
    let bound = Bound::watch(pod_api.clone());
    bound.wait_for(pods).await?;
    let times = bound.times();
    let first = times.values().min().copied().context("no binding seen")?;
    let last = times.values().max().copied().context("no binding seen")?;
    let span = last.duration_since(first).as_secs_f64();
    println!(
        "backlog of {pods} pods on {nodes} nodes: bound {:.0} pods/s from first to last binding ({span:.2} s), {:.0} pods/s from the restart ({:.2} s)",
        pods as f64 / span,
        pods as f64 / last.duration_since(restarted).as_secs_f64(),
        last.duration_since(restarted).as_secs_f64()
    );
    let (rss, peak) = memory(control.pid())?;
    println!("bosun control RSS with {pods} pods bound: {rss:.1} MiB (peak {peak:.1} MiB)");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss, peak) = memory(control.pid())?;
    println!("bosun control RSS 10 s later (idle):        {rss:.1} MiB (peak {peak:.1} MiB)");

    steady_state(&pod_api, &bound, pods, steady).await?;
    let (rss, peak) = memory(control.pid())?;
    println!("bosun control RSS with {} pods:           {rss:.1} MiB (peak {peak:.1} MiB)", pods + steady);
    drop(control);
    Ok(())
}

fn node(index: usize) -> Value {
    let name = format!("n{index:05}");
    // A heartbeat an hour ahead keeps the node lifecycle controller from
    // marking these agent-less nodes unreachable while the bench runs.
    let heartbeat = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let resources = json!({"cpu": "32", "memory": "128Gi", "pods": "110"});
    json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
        "status": {
            "capacity": resources, "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat}]
        }
    })
}

fn pod(prefix: &str, index: usize, gated: bool) -> Value {
    let mut pod = json!({
        "metadata": {"name": format!("{prefix}{index}"), "namespace": "default", "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
    });
    if gated {
        pod["spec"]["schedulingGates"] = json!([{"name": "bench/hold"}]);
    }
    pod
}

/// Pure decisions: `pods` pods placed one after another on a snapshot of
/// `nodes` nodes, each placement added to its node as the scheduler does.
fn decisions_only(nodes: usize, pods: usize) -> anyhow::Result<()> {
    let node_objects: Vec<Arc<Node>> =
        (0..nodes).map(|i| Ok(Arc::new(serde_json::from_value(node(i))?))).collect::<anyhow::Result<_>>()?;
    let mut snapshot = decision::Snapshot {
        nodes: cache::node_infos(&node_objects, &[], &cache::AssumedCache::default()),
        namespaces: HashMap::new(),
    };
    let position: HashMap<String, usize> =
        snapshot.nodes.iter().enumerate().map(|(i, info)| (info.name().to_string(), i)).collect();
    let pod_objects: Vec<Pod> = (0..pods)
        .map(|i| {
            let mut pod = pod("p", i, false);
            pod["metadata"]["uid"] = json!(format!("uid-{i}"));
            Ok(serde_json::from_value(pod)?)
        })
        .collect::<anyhow::Result<_>>()?;
    let start = Instant::now();
    for pod in pod_objects {
        let node = decision::schedule(&pod, &snapshot).map_err(|e| anyhow::anyhow!("unschedulable: {e}"))?;
        let mut bound = pod;
        bound.spec.as_mut().context("spec")?.node_name = Some(node.clone());
        snapshot.nodes[position[&node]].add_pod(Arc::new(bound));
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "== decisions only (in process): {pods} pods on {nodes} nodes in {elapsed:.2} s = {:.0} pods/s",
        pods as f64 / elapsed
    );
    Ok(())
}

/// Removes every pod's scheduling gates, straight in the stored objects.
async fn ungate(db: &std::path::Path) -> anyhow::Result<()> {
    let store = Store::open(db)?;
    let (kvs, _) = store.list("/registry/core/pods/").await?;
    stream::iter(kvs)
        .map(|kv| {
            let store = store.clone();
            async move {
                let mut pod: Value = serde_json::from_slice(&kv.value)?;
                pod["spec"].as_object_mut().context("spec")?.remove("schedulingGates");
                store.update(&kv.key, pod.to_string().into_bytes(), Some(kv.mod_revision)).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(64)
        .try_collect::<()>()
        .await?;
    store.close().await;
    Ok(())
}

/// When the watch first showed each pod bound.
#[derive(Clone)]
struct Bound {
    times: Arc<Mutex<HashMap<String, Instant>>>,
    seen: Arc<AtomicUsize>,
}

impl Bound {
    fn watch(api: Api<Pod>) -> Bound {
        let bound = Bound { times: Arc::default(), seen: Arc::default() };
        let record = bound.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
            while let Some(Ok(event)) = events.next().await {
                let pod = match event {
                    watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => pod,
                    _ => continue,
                };
                if cache::node_name(&pod).is_none() {
                    continue;
                }
                let name = pod.metadata.name.unwrap_or_default();
                let mut times = record.times.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let std::collections::hash_map::Entry::Vacant(slot) = times.entry(name) {
                    slot.insert(Instant::now());
                    record.seen.store(times.len(), Ordering::SeqCst);
                }
            }
        });
        bound
    }

    async fn wait_for(&self, n: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + DEADLINE;
        while self.seen.load(Ordering::SeqCst) < n {
            if Instant::now() > deadline {
                bail!("only {} of {n} pods bound after {DEADLINE:?}", self.seen.load(Ordering::SeqCst));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    fn times(&self) -> HashMap<String, Instant> {
        self.times.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// `n` pods created by `CLIENTS` clients while the scheduler runs; latency
/// from each create request to its binding seen on the watch.
async fn steady_state(api: &Api<Pod>, bound: &Bound, already: usize, n: usize) -> anyhow::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let (api, sent) = (api.clone(), sent.clone());
            async move {
                let name = format!("s{i}");
                sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name, Instant::now());
                api.create(&PostParams::default(), &serde_json::from_value(pod("s", i, false))?).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CLIENTS)
        .try_collect::<()>()
        .await?;
    let created = start.elapsed().as_secs_f64();
    bound.wait_for(already + n).await?;
    let all = start.elapsed().as_secs_f64();
    let times = bound.times();
    let sent = sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let mut lags: Vec<Duration> =
        sent.iter().filter_map(|(name, at)| Some(times.get(name)?.duration_since(*at))).collect();
    lags.sort_unstable();
    println!(
        "steady state: {n} pods created by {CLIENTS} clients at {:.0}/s, all bound after {all:.2} s ({:.0} pods/s); create-to-bound p50 {:.1} ms, p99 {:.1} ms",
        n as f64 / created,
        n as f64 / all,
        percentile_ms(&lags, 50),
        percentile_ms(&lags, 99)
    );
    Ok(())
}
