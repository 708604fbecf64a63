//! Watch latency: how long from an EndpointSlice write to the proxy's nft
//! update, with the control plane idle and busy.
//!
//! Runs the real control plane (`bosun_control::run`: SQLite store,
//! apiserver, scheduler, controllers) and the proxy (`bosun_netproxy::run_with`,
//! as the agent runs it) in separate runtimes of this process, the proxy
//! with a recording nft applier. Each trial patches one slice's endpoint and
//! times (a) until the write is acknowledged and (b) until an nft script with
//! the new endpoint is applied. Busy modes keep 64 writers going: creating
//! ConfigMaps (load the proxy does not watch) or patching 200 other
//! EndpointSlices (load on the proxy's own watch).
//! Run with `cargo bench -p bosun-netproxy --bench watch_latency`.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bosun_control::ControlArgs;
use bosun_netproxy::model::SERVICE_NAME_LABEL;
use bosun_netproxy::{NftApply, NftError, ProxyConfig};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const TRIALS: usize = 30;
const WRITERS: usize = 64;
const OTHER_SLICES: usize = 200;
const DEADLINE: Duration = Duration::from_secs(60);

/// Records applied scripts and wakes whoever waits for one.
#[derive(Default)]
struct Recorder {
    scripts: Mutex<Vec<(Instant, String)>>,
    applied: Condvar,
}

impl NftApply for Recorder {
    fn apply(&self, script: &str) -> Result<(), NftError> {
        let mut scripts = self.scripts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        scripts.push((Instant::now(), script.to_owned()));
        self.applied.notify_all();
        Ok(())
    }
}

impl Recorder {
    /// When the first script containing `needle` was applied.
    fn wait_for(&self, needle: &str) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + DEADLINE;
        let mut scripts = self.scripts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some((at, _)) = scripts.iter().find(|(_, script)| script.contains(needle)) {
                return Ok(*at);
            }
            let left = deadline.checked_duration_since(Instant::now()).context("nft never saw the change")?;
            scripts = self.applied.wait_timeout(scripts, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }
}

fn slice(name: &str, service: &str, ip: Ipv4Addr) -> anyhow::Result<EndpointSlice> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}]
    }))?)
}

fn endpoints_patch(ip: Ipv4Addr) -> Patch<serde_json::Value> {
    Patch::Merge(json!({"endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}]}))
}

fn ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 244, 0, 0)) + n)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn print(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label:<44} p50 {:7.2} ms  p90 {:7.2} ms  max {:7.2} ms",
        ms(percentile(&samples, 50)),
        ms(percentile(&samples, 90)),
        ms(samples[samples.len() - 1])
    );
}

#[derive(Clone, Copy, PartialEq)]
enum Load {
    Idle,
    ConfigMaps,
    Slices,
}

/// Keeps `WRITERS` writers busy until `stop`; counts completed writes.
async fn load(client: Client, kind: Load, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) -> anyhow::Result<()> {
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let (client, stop, done) = (client.clone(), stop.clone(), done.clone());
        writers.spawn(async move {
            let maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
            let slices: Api<EndpointSlice> = Api::default_namespaced(client);
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if kind == Load::ConfigMaps {
                    let map: ConfigMap = serde_json::from_value(
                        json!({"metadata": {"name": format!("load-{writer}-{n}")}, "data": {"k": "v".repeat(512)}}),
                    )?;
                    maps.create(&PostParams::default(), &map).await?;
                } else {
                    let target = (writer + WRITERS * n as usize) % OTHER_SLICES;
                    let address = ip(100_000 + n * WRITERS as u32 + writer as u32);
                    slices
                        .patch(&format!("other-{target}"), &PatchParams::default(), &endpoints_patch(address))
                        .await?;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = writers.join_next().await {
        joined??;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    let token = CancellationToken::new();
    let args = ControlArgs {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse()?,
        service_cidr: "10.96.0.0/16".into(),
        kubeconfig_out: Some(kubeconfig.clone()),
        node_kubeconfig_out: None,
        node_name: None,
        token_auth_file: None,
        kubelet_certificate_authority: None,
        advertise_address: None,
        load_balancer_pool: Vec::new(),
        load_balancer_shared_pool: Vec::new(),
        load_balancer_reserved_ports: Vec::new(),
        service_account_jwks_uri: None,
        admission_control_config_file: None,
        datastore_endpoint: Vec::new(),
        leader_elect: None,
        leader_elect_lease_duration: std::time::Duration::from_secs(12),
        leader_elect_renew_deadline: std::time::Duration::from_secs(8),
        leader_elect_retry_period: std::time::Duration::from_secs(2),
        cluster_signing_duration: bosun_control::controllers::csr::sign::DEFAULT_MAX_LIFETIME,
        approve_kubelet_serving_certificates: false,
    };
    let control_token = token.clone();
    let control = std::thread::spawn(move || {
        tokio::runtime::Runtime::new().map_err(anyhow::Error::from)?.block_on(bosun_control::run(args, control_token))
    });
    let deadline = Instant::now() + DEADLINE;
    while !kubeconfig.exists() {
        if Instant::now() > deadline || control.is_finished() {
            bail!("control plane did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    // The load generator and the measurements run here; the proxy in its
    // own runtime, as in the agent.
    let runtime = tokio::runtime::Runtime::new()?;
    let client = runtime.block_on(async {
        let config =
            kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(&kubeconfig)?, &KubeConfigOptions::default())
                .await?;
        anyhow::Ok(Client::try_from(config)?)
    })?;
    let recorder = Arc::new(Recorder::default());
    runtime.block_on(async {
        let services: Api<Service> = Api::default_namespaced(client.clone());
        let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
        for index in 0..=OTHER_SLICES {
            let name = if index == 0 { "probe".to_string() } else { format!("other-{}", index - 1) };
            let service: Service = serde_json::from_value(
                json!({"metadata": {"name": name}, "spec": {"ports": [{"name": "http", "port": 80}]}}),
            )?;
            services.create(&PostParams::default(), &service).await?;
            slices.create(&PostParams::default(), &slice(&name, &name, ip(50_000 + index as u32))?).await?;
        }
        anyhow::Ok(())
    })?;

    let proxy_token = token.clone();
    let (proxy_client, proxy_nft) = (client.clone(), recorder.clone());
    let proxy = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let config = ProxyConfig { node_name: "bench-node".into(), ..ProxyConfig::default() };
        runtime.block_on(bosun_netproxy::run_with(proxy_client, config, proxy_nft, proxy_token))?;
        anyhow::Ok(())
    });
    recorder.wait_for(&format!(": {} . 8080", ip(50_000)))?;
    println!("control plane + proxy up; {} services, {} slices", OTHER_SLICES + 1, OTHER_SLICES + 1);

    let probe: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    let mut next = 0u32;
    for (label, kind) in [
        ("idle", Load::Idle),
        ("busy: 64 writers creating ConfigMaps", Load::ConfigMaps),
        ("busy: 64 writers patching 200 slices", Load::Slices),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let background =
            (kind != Load::Idle).then(|| runtime.spawn(load(client.clone(), kind, stop.clone(), done.clone())));
        let (mut acked, mut applied) = (Vec::new(), Vec::new());
        let started = Instant::now();
        for _ in 0..TRIALS {
            next += 1;
            let address = ip(next);
            let sent = Instant::now();
            runtime.block_on(probe.patch("probe", &PatchParams::default(), &endpoints_patch(address)))?;
            acked.push(sent.elapsed());
            let at = recorder.wait_for(&format!(": {address} . 8080"))?;
            applied.push(at.saturating_duration_since(sent));
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(background) = background {
            runtime.block_on(background)??;
        }
        let writes = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        println!("{label} ({writes:.0} background writes/s)");
        print("  slice write acknowledged", acked);
        print("  slice write -> nft script applied", applied);
    }
    token.cancel();
    proxy.join().map_err(|_| anyhow::anyhow!("proxy thread panicked"))??;
    control.join().map_err(|_| anyhow::anyhow!("control thread panicked"))??;
    Ok(())
}
