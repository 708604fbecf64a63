//! Memory of `bosun control` at scale: 1,000 pods (bound to a fake node,
//! status Running/Ready with a pod IP), 10,000 Services each selecting one of
//! them, and the 10,000 EndpointSlices the controller publishes for them.
//! Prints the control plane's RSS (and peak) after each stage, the time the
//! EndpointSlice controller took to catch up, and the store's size.
//!
//! Runs a separate `bosun` binary so only the control plane is measured:
//! `BOSUN_BIN=$CARGO_TARGET_DIR/debug/bosun cargo bench -p bosun-control --bench memory`
//! (`SERVICES`, `PODS` override the counts; `MALLOC_ARENA_MAX` etc. are passed
//! through to the child).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::json;
use support::{count, memory, wait_for_file};

mod support;

/// Requests in flight while creating objects.
const CONCURRENCY: usize = 16;
/// Longest wait for the EndpointSlice controller to catch up.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(1_200);

/// Kills the control plane when the bench ends, however it ends.
struct Control(Child);

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn report(pid: u32, stage: &str, started: Instant) -> anyhow::Result<()> {
    let (rss, peak) = memory(pid)?;
    println!("{stage:<44} RSS {rss:7.1} MiB  peak {peak:7.1} MiB  (t = {:6.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

fn pod(index: usize) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": format!("p{index}"), "labels": {"app": format!("a{index}")}},
        "spec": {"nodeName": "fake-node", "containers": [{"name": "c", "image": "busybox"}]}
    }))?)
}

fn pod_status(index: usize) -> serde_json::Value {
    json!({"status": {
        "phase": "Running",
        "podIP": format!("10.244.{}.{}", index / 250, index % 250 + 1),
        "conditions": [{"type": "Ready", "status": "True"}]
    }})
}

fn service(index: usize, pods: usize) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": format!("s{index}")},
        "spec": {"selector": {"app": format!("a{}", index % pods)}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))?)
}

async fn count_slices(client: &Client) -> anyhow::Result<usize> {
    let api: Api<EndpointSlice> = Api::all(client.clone());
    let mut total = 0;
    let mut params = ListParams::default().limit(2_000);
    loop {
        let page = api.list_metadata(&params).await?;
        total += page.items.len();
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(total),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let services = count("SERVICES", 10_000)?;
    let pods = count("PODS", 1_000)?.max(1);
    let bin = PathBuf::from(std::env::var("BOSUN_BIN").context("set BOSUN_BIN to a built `bosun` binary")?);
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    let child = Command::new(&bin)
        .args(["control", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let control = Control(child);
    let pid = control.0.id();
    let started = Instant::now();
    wait_for_file(&kubeconfig).await?;
    let config =
        kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(&kubeconfig)?, &KubeConfigOptions::default())
            .await?;
    let client = Client::try_from(config)?;
    println!("bosun control ({}), {pods} pods, {services} services", bin.display());
    report(pid, "started", started)?;

    let pod_api: Api<Pod> = Api::default_namespaced(client.clone());
    stream::iter(0..pods)
        .map(|i| {
            let api = pod_api.clone();
            async move {
                api.create(&PostParams::default(), &pod(i)?).await?;
                api.patch_status(&format!("p{i}"), &PatchParams::default(), &Patch::Merge(pod_status(i))).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await?;
    report(pid, "pods created, Running and Ready", started)?;

    let service_api: Api<Service> = Api::default_namespaced(client.clone());
    let created = Instant::now();
    stream::iter(0..services)
        .map(|i| {
            let api = service_api.clone();
            async move {
                api.create(&PostParams::default(), &service(i, pods)?).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await?;
    println!("{:<44} {:.1} s", "services created in", created.elapsed().as_secs_f64());
    report(pid, "services created", started)?;

    let deadline = Instant::now() + CONVERGE_DEADLINE;
    let mut slices = count_slices(&client).await?;
    while slices < services {
        if Instant::now() > deadline {
            println!("EndpointSlices: only {slices} of {services} after {CONVERGE_DEADLINE:?}");
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        slices = count_slices(&client).await?;
    }
    println!("{:<44} {slices} after {:.1} s", "endpointslices published", created.elapsed().as_secs_f64());
    report(pid, "converged", started)?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    report(pid, "10 s later (idle)", started)?;
    let db: u64 = std::fs::read_dir(dir.path().join("data"))?
        .filter_map(|entry| entry.ok()?.metadata().ok())
        .map(|meta| meta.len())
        .sum();
    println!("{:<44} {:.1} MiB", "store files on disk", db as f64 / (1024.0 * 1024.0));
    drop(control);
    Ok(())
}
