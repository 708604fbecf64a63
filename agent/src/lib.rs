//! The bosun node agent (`bosun agent`): a kubelet, with the kube-proxy of
//! `bosun-netproxy` running in the same process.
//!
//! Owns: Node registration/heartbeat/lease (`node`), one worker per pod
//! (`pod_manager`, `pod_worker`) that observes the CRI runtime (`observed`),
//! decides (`actions`, `status`, pure) and applies through narrow traits
//! (`runtime`, `pod_api`, `events`); `pleg` turns containerd's task events
//! into worker wake-ups; `static_pods` runs manifests from a directory and
//! mirrors them to the API; `status_manager` is the one writer of
//! pod status; plus the kubelet HTTP API (`server`, `logs`). Probes run in
//! their own tasks (`prober`); probes and lifecycle hooks share one action
//! runner (`handlers`); `termination` times stops. Restart recovery rebuilds
//! every pod from the runtime's labels.
//!
//! Must not: schedule pods or program Service rules itself (control-lite and
//! bosun-netproxy do).

pub mod actions;
pub mod admission;
pub mod airgap;
pub mod backoff;
pub mod cri_runtime;
pub mod dns;
pub mod enums;
pub mod env;
pub mod events;
pub mod handlers;
pub mod host;
pub mod labels;
pub mod logs;
pub mod node;
pub mod observed;
pub mod pleg;
pub mod pod_api;
pub mod pod_manager;
pub mod pod_worker;
pub mod prober;
pub mod runtime;
pub mod runtime_spec;
pub mod security;
pub mod server;
pub mod spec_hash;
pub mod static_pods;
pub mod status;
pub mod status_manager;
pub mod termination;
pub mod termination_message;
#[cfg(test)]
mod test_fixtures;
pub mod volumes;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{watcher, WatchStreamExt};
use tokio_util::sync::CancellationToken;

use crate::node::{NodeAgent, NodeConfig};
use crate::pod_manager::{ManagerTiming, PodManager, PodRegistry};
use crate::pod_worker::{Timing, WorkerDeps};
use crate::runtime::Runtime;

/// Flags of `bosun agent`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// Kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Name of this Node (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// CRI socket of the container runtime.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    pub cri_socket: PathBuf,
    /// State directory (pod logs under `<root>/pods`).
    #[arg(long, default_value = "/var/lib/bosun/agent")]
    pub root_dir: PathBuf,
    /// Node IP (default: first IPv4 of the default-route interface).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// This node's pod range (Node spec.podCIDR).
    #[arg(long, default_value = "10.244.0.0/24")]
    pub pod_cidr: String,
    /// The whole cluster's pod range (for the proxy).
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// ClusterIP range (for the proxy).
    #[arg(long, default_value = "10.96.0.0/16")]
    pub service_cidr: String,
    /// Port of the kubelet API.
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Bind address of the kubelet API (default: the node IP).
    #[arg(long)]
    pub kubelet_address: Option<IpAddr>,
    /// Pod capacity of this node.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Do not run the in-process Service proxy.
    #[arg(long)]
    pub no_proxy: bool,
    /// Import the OCI archives (`*.tar`) of this directory into the runtime at start.
    #[arg(long)]
    pub images_dir: Option<PathBuf>,
    /// Period of the runtime relist in ms: the safety net under containerd's
    /// event stream, which wakes pod workers at once.
    #[arg(long, env = "BOSUN_RELIST_PERIOD_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub relist_period_ms: u64,
    /// Directory of static pod manifests, run without an API server and
    /// mirrored to it (re-read every second).
    #[arg(long)]
    pub pod_manifest_path: Option<PathBuf>,
}

async fn kube_client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer().await.context("inferring kube config")?,
    };
    kube::Client::try_from(config).context("building kube client")
}

/// Connects to the CRI socket, waiting (1 s apart) while it is missing.
async fn connect_runtime(socket: &std::path::Path, token: &CancellationToken) -> anyhow::Result<bosun_cri::CriClient> {
    let mut logged = false;
    loop {
        match bosun_cri::CriClient::connect(socket, bosun_cri::ClientOptions::default()).await {
            Ok(client) => return Ok(client),
            Err(error) => {
                if !logged {
                    tracing::warn!(%error, "container runtime not reachable yet; retrying");
                    logged = true;
                }
            }
        }
        tokio::select! {
            () = token.cancelled() => anyhow::bail!("cancelled while waiting for the CRI socket {}", socket.display()),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Runs the agent until `token` is cancelled. Pods keep running when the
/// agent stops; a restarted agent picks them up from the runtime.
pub async fn run(args: AgentArgs, token: CancellationToken) -> anyhow::Result<()> {
    let node_name = args.node_name.clone().unwrap_or_else(host::hostname);
    let node_ip = match args.node_ip {
        Some(ip) => ip,
        None => IpAddr::V4(host::detect_node_ip().context("no IPv4 address found for the node; pass --node-ip")?),
    };
    std::fs::create_dir_all(args.root_dir.join("pods"))
        .with_context(|| format!("creating {}", args.root_dir.display()))?;
    // The runtime needs absolute log paths.
    let root_dir =
        std::fs::canonicalize(&args.root_dir).with_context(|| format!("resolving {}", args.root_dir.display()))?;
    let client = kube_client(args.kubeconfig.as_ref()).await?;
    let cri = connect_runtime(&args.cri_socket, &token).await?;
    if let Err(error) = cri.update_runtime_config(&args.pod_cidr).await {
        tracing::warn!(%error, "could not pass the pod CIDR to the runtime");
    }
    if let Some(dir) = &args.images_dir {
        let count = airgap::import_all(dir, &args.cri_socket).await?;
        tracing::info!(count, dir = %dir.display(), "imported air-gapped images");
    }
    let runtime: Arc<dyn Runtime> = Arc::new(cri);
    tracing::info!(node = %node_name, ip = %node_ip, cri = %args.cri_socket.display(), "agent starting");

    let bind = SocketAddr::new(args.kubelet_address.unwrap_or(node_ip), args.kubelet_port);
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| server::Error::Bind { addr: bind.to_string(), source })?;
    let tasks = tokio_util::task::TaskTracker::new();
    let node_config = NodeConfig {
        name: node_name.clone(),
        node_ip: node_ip.to_string(),
        pod_cidr: args.pod_cidr.clone(),
        kubelet_port: args.kubelet_port,
        max_pods: args.max_pods,
    };
    let node_agent = NodeAgent::new(client.clone(), runtime.clone(), node_config, host::HostInfo::read());
    tasks.spawn(node_agent.run(Duration::from_secs(10), token.clone()));

    let registry = PodRegistry::default();
    let mirror_uids = static_pods::status::MirrorUids::default();
    let api: Arc<dyn pod_api::PodApi> = Arc::new(static_pods::status::MirrorStatusApi::new(
        Arc::new(pod_api::KubePodApi::new(client.clone())),
        mirror_uids.clone(),
    ));
    let (status_manager, status) = status_manager::StatusManager::new(api.clone(), Default::default());
    tasks.spawn(status_manager.run(token.clone()));
    let deps = Arc::new(WorkerDeps {
        runtime: runtime.clone(),
        api,
        status,
        events: Arc::new(events::KubeEvents::new(client.clone(), &node_name)),
        root_dir: root_dir.clone(),
        host_ip: node_ip.to_string(),
        timing: Timing::default(),
        mounter: Arc::new(volumes::NixMounter),
    });
    let selector = format!("spec.nodeName={node_name}");
    let pods = watcher(kube::Api::<Pod>::all(client.clone()), watcher::Config::default().fields(&selector))
        .default_backoff()
        .boxed();
    // Evented PLEG: containerd's task events wake pod workers at once.
    let (signals, lifecycle) = tokio::sync::mpsc::channel(1024);
    tasks.spawn(pleg::run(pleg::Subscription::new(args.cri_socket.clone()), signals, token.clone()));
    let manager_timing =
        ManagerTiming { relist: Duration::from_millis(args.relist_period_ms), ..ManagerTiming::default() };
    let mut manager = PodManager::new(deps, &node_name, registry.clone(), manager_timing).with_lifecycle(lifecycle);
    if let Some(dir) = &args.pod_manifest_path {
        let (statics_tx, statics) = tokio::sync::watch::channel(Vec::new());
        let period = Duration::from_secs(1);
        tasks.spawn(static_pods::watch_dir(dir.clone(), node_name.clone(), period, statics_tx, token.clone()));
        let mirrors: Arc<dyn static_pods::mirror::MirrorApi> =
            Arc::new(static_pods::mirror::KubeMirrorApi::new(client.clone()));
        let mirror_period = Duration::from_secs(2);
        tasks.spawn(static_pods::mirror::run(
            mirrors,
            mirror_uids,
            node_name.clone(),
            statics.clone(),
            mirror_period,
            token.clone(),
        ));
        manager = manager.with_static_pods(statics);
    }
    tasks.spawn(manager.run(pods, token.clone()));

    let state = server::ServerState {
        registry,
        root_dir: root_dir.clone(),
        runtime,
        token: token.clone(),
        follow_poll: Duration::from_millis(250),
    };
    let server_token = token.clone();
    tasks.spawn(async move {
        if let Err(error) = server::serve(listener, state, server_token).await {
            tracing::error!(%error, "kubelet API stopped");
        }
    });

    if !args.no_proxy {
        let config = bosun_netproxy::ProxyConfig {
            service_cidr: args.service_cidr.clone(),
            cluster_cidr: args.cluster_cidr.clone(),
            node_name: node_name.clone(),
            ..Default::default()
        };
        let proxy_client = client.clone();
        let proxy_token = token.clone();
        tasks.spawn(async move {
            if let Err(error) = bosun_netproxy::run(proxy_client, config, proxy_token).await {
                tracing::error!(%error, "service proxy stopped");
            }
        });
    }

    token.cancelled().await;
    tasks.close();
    tasks.wait().await;
    tracing::info!("agent stopped");
    Ok(())
}
