//! The bosun node agent (`bosun agent`): a kubelet, with the kube-proxy of
//! `bosun-netproxy` running in the same process.
//!
//! Owns: Node registration/heartbeat/lease (`node`), one worker per pod
//! (`pod_manager`, `pod_worker`) that observes the CRI runtime (`observed`),
//! decides (`actions`, `status`, pure) and applies through narrow traits
//! (`runtime`, `pod_api`, `events`); `pleg` turns containerd's task events
//! into worker wake-ups; `static_pods` runs manifests from a directory and
//! mirrors them to the API; `gc` removes dead containers, sandboxes and
//! unused images; `status_manager` is the one writer of
//! pod status; plus the kubelet HTTP API (`server`, `logs`). Probes run in
//! their own tasks (`prober`); probes and lifecycle hooks share one action
//! runner (`handlers`); `termination` times stops. Restart recovery rebuilds
//! every pod from the runtime's labels. `tls_bootstrap` gets the node's
//! client certificate; `cert_rotation` renews it (and, when asked, the
//! kubelet API's serving certificate) and swaps the shared API client.
//!
//! Must not: schedule pods or program Service rules itself (control-lite and
//! bosun-netproxy do).

pub mod actions;
pub mod admission;
pub mod airgap;
pub mod api_failover;
pub mod backoff;
pub mod cert_rotation;
pub mod cluster_dns;
pub mod cri_runtime;
pub mod dns;
pub mod enums;
pub mod env;
pub mod events;
pub mod eviction;
pub mod gc;
pub mod handlers;
pub mod host;
pub mod kubelet_auth;
pub mod kubelet_config;
pub mod kubelet_metrics;
pub mod kubelet_tls;
pub mod labels;
pub mod log_reader;
pub mod log_rotation;
pub mod log_tail;
pub mod logs;
pub mod node;
pub mod object_watch;
pub mod observed;
pub mod pleg;
pub mod pod_api;
pub mod pod_cgroups;
pub mod pod_manager;
pub mod pod_worker;
pub mod prober;
pub mod proxy_metrics;
pub mod pull_secrets;
pub mod readiness_gates;
pub mod recovery;
pub mod resize;
pub mod running_pods;
pub mod runtime;
pub mod runtime_spec;
pub mod security;
pub mod server;
pub mod service_links;
mod service_manager;
pub mod spec_hash;
pub mod static_pods;
pub mod stats;
pub mod status;
pub mod status_manager;
pub mod streaming;
pub mod termination;
pub mod termination_message;
#[cfg(test)]
mod test_fixtures;
pub mod tls_bootstrap;
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

/// Idle streaming sessions (exec, attach, port-forward) are closed after
/// this long, as the kubelet's `streamingConnectionIdleTimeout` default.
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 60 * 60);
use crate::pod_manager::{ManagerTiming, PodManager, PodRegistry};
use crate::pod_worker::{Timing, WorkerDeps};
use crate::runtime::Runtime;

/// `--proxy-table`: a name nft accepts (checked before anything starts).
fn parse_proxy_table(name: &str) -> Result<String, String> {
    bosun_netproxy::table::validate_table_name(name).map_err(|e| e.to_string())?;
    Ok(name.to_string())
}

/// Flags of `bosun agent`: bosun's own, and the kubelet's that test setups
/// pass (`--kubeconfig`, `--bootstrap-kubeconfig`, `--config`,
/// `--hostname-override`, `--container-runtime-endpoint`,
/// `--pod-manifest-path`, `--root-dir`, `--node-ip`, `--node-labels`,
/// `--register-with-taints`, `--max-pods`, `--cluster-dns`,
/// `--cluster-domain`, `--port`, `--address`, `--rotate-server-certificates`).
/// A flag wins over the
/// `--config` file ([`kubelet_config::resolve`]); an unknown flag is an
/// error naming it.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// Kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig with bootstrap credentials (a bootstrap token): when the
    /// --kubeconfig file does not exist, the agent asks with them for its
    /// client certificate (a CertificateSigningRequest), waits for it and
    /// writes --kubeconfig, then runs with that (`tls_bootstrap`).
    #[arg(long)]
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// Apiservers to use, in order of preference, instead of the
    /// kubeconfig's server (`https://host:port`, comma-separated or
    /// repeated); the agent fails over to the next when one is unreachable
    /// (with the kubeconfig's credentials and CA for each).
    #[arg(long, value_delimiter = ',')]
    pub api_servers: Vec<String>,
    /// A KubeletConfiguration file (kubelet.config.k8s.io/v1beta1); flags win over it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Name of this Node (default: the host name).
    #[arg(long, visible_alias = "hostname-override")]
    pub node_name: Option<String>,
    /// CRI endpoint of the container runtime (`unix:///path` or a path;
    /// default /run/containerd/containerd.sock).
    #[arg(long, visible_alias = "container-runtime-endpoint")]
    pub cri_socket: Option<String>,
    /// Directory of static pod manifests, run without an API server and
    /// mirrored to it (re-read every second).
    #[arg(long)]
    pub pod_manifest_path: Option<PathBuf>,
    /// State directory (pod logs under `<root>/pods`; default /var/lib/bosun/agent).
    #[arg(long)]
    pub root_dir: Option<PathBuf>,
    /// Node IP (default: first IPv4 of the default-route interface).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// This node's pod range (Node spec.podCIDR; default 10.244.0.0/24).
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// The whole cluster's pod range (for the proxy).
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// ClusterIP range (for the proxy).
    #[arg(long, default_value = "10.96.0.0/16")]
    pub service_cidr: String,
    /// Port of the kubelet API (default 10250).
    #[arg(long, visible_alias = "port")]
    pub kubelet_port: Option<u16>,
    /// Bind address of the kubelet API (default: the node IP).
    #[arg(long, visible_alias = "address")]
    pub kubelet_address: Option<IpAddr>,
    /// The kubelet API's serving certificate (PEM; default: a self-signed
    /// one made at first start in `<root-dir>/pki`).
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// Ask for the kubelet API's serving certificate with a
    /// CertificateSigningRequest (signer `kubernetes.io/kubelet-serving`,
    /// for the Node's name and IP) and renew it, as the kubelet's flag;
    /// the self-signed one serves until it is approved and issued. Ignored
    /// with `--tls-cert-file`.
    #[arg(long)]
    pub rotate_server_certificates: bool,
    /// The key of `--tls-cert-file` (PEM).
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// CA that signs the client certificates the kubelet API accepts
    /// (default: the cluster CA of the agent's kubeconfig).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Port of the plain-HTTP `/healthz` endpoint (0 turns it off).
    #[arg(long, default_value_t = server::DEFAULT_HEALTHZ_PORT)]
    pub healthz_port: u16,
    /// Address of the `/healthz` endpoint.
    #[arg(long, default_value = "127.0.0.1")]
    pub healthz_bind_address: IpAddr,
    /// Pod capacity of this node (default 110).
    #[arg(long)]
    pub max_pods: Option<u32>,
    /// Labels the Node registers with: `key=value,...`.
    #[arg(long)]
    pub node_labels: Option<String>,
    /// Taints the Node registers with: `key=value:Effect,...`.
    #[arg(long)]
    pub register_with_taints: Option<String>,
    /// Cluster DNS server IPs for pods' resolv.conf, comma-separated
    /// (default: the agent's own cluster DNS server, unless --no-cluster-dns).
    #[arg(long)]
    pub cluster_dns: Option<String>,
    /// The resolver file pods with dnsPolicy Default get and the cluster DNS
    /// forwards to (default /etc/resolv.conf; "" turns host DNS off for pods).
    #[arg(long)]
    pub resolv_conf: Option<String>,
    /// Address the in-agent cluster DNS server listens on, port 53 (default:
    /// the pod bridge's gateway, the first address of the pod CIDR).
    #[arg(long)]
    pub cluster_dns_address: Option<IpAddr>,
    /// Do not run the in-agent cluster DNS server.
    #[arg(long)]
    pub no_cluster_dns: bool,
    /// Cluster domain (accepted; default cluster.local).
    #[arg(long)]
    pub cluster_domain: Option<String>,
    /// Rotate a container's log file above this size (e.g. 10Mi; default 10Mi).
    #[arg(long)]
    pub container_log_max_size: Option<String>,
    /// Log files kept per container, the current one included (default 5).
    #[arg(long)]
    pub container_log_max_files: Option<u32>,
    /// Hard eviction thresholds: `memory.available<100Mi,nodefs.available<10%,...`.
    #[arg(long)]
    pub eviction_hard: Option<String>,
    /// Soft eviction thresholds (each needs a grace period).
    #[arg(long)]
    pub eviction_soft: Option<String>,
    /// Grace periods of the soft thresholds: `memory.available=1m30s,...`.
    #[arg(long)]
    pub eviction_soft_grace_period: Option<String>,
    /// How long a pressure condition stays after its threshold clears (default 5m).
    #[arg(long)]
    pub eviction_pressure_transition_period: Option<String>,
    /// Do not run the in-process Service proxy.
    #[arg(long)]
    pub no_proxy: bool,
    /// Masquerade all traffic sent to ClusterIPs, from pods too (as
    /// kube-proxy's flag).
    #[arg(long)]
    pub masquerade_all: bool,
    /// The nftables table (family `ip`) the proxy owns; clusters that share
    /// a host each need their own.
    #[arg(long, default_value = "bosun", value_parser = parse_proxy_table)]
    pub proxy_table: String,
    /// CIDRs whose local addresses answer NodePorts, comma-separated, as
    /// kube-proxy's flag (default: the node IP; never 127.0.0.0/8).
    #[arg(long, value_delimiter = ',')]
    pub nodeport_addresses: Option<Vec<String>>,
    /// Where the proxy's Prometheus metrics are served (`/metrics`), as
    /// kube-proxy's `--metrics-bind-address`; "" turns them off.
    #[arg(long, visible_alias = "metrics-bind-address", default_value = proxy_metrics::DEFAULT_ADDRESS)]
    pub proxy_metrics_address: String,
    /// Import the OCI archives (`*.tar`) of this directory into the runtime at start.
    #[arg(long)]
    pub images_dir: Option<PathBuf>,
    /// Period of the runtime relist in ms: the safety net under containerd's
    /// event stream, which wakes pod workers at once.
    #[arg(long, env = "BOSUN_RELIST_PERIOD_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub relist_period_ms: u64,
    /// Garbage collection (kubelet flags and bosun's periods).
    #[command(flatten)]
    pub gc: gc::config::Flags,
    /// The pod cgroup tree's flags (kubelet names).
    #[command(flatten)]
    pub cgroups: pod_cgroups::config::CgroupFlags,
}

impl AgentArgs {
    fn kubelet_flags(&self) -> kubelet_config::Flags {
        kubelet_config::Flags {
            address: self.kubelet_address,
            port: self.kubelet_port,
            max_pods: self.max_pods,
            pod_cidr: self.pod_cidr.clone(),
            cluster_dns: self.cluster_dns.clone(),
            cluster_domain: self.cluster_domain.clone(),
            resolv_conf: self.resolv_conf.clone(),
            pod_manifest_path: self.pod_manifest_path.clone(),
            runtime_endpoint: self.cri_socket.clone(),
            register_with_taints: self.register_with_taints.clone(),
            node_labels: self.node_labels.clone(),
            root_dir: self.root_dir.clone(),
            container_log_max_size: self.container_log_max_size.clone(),
            container_log_max_files: self.container_log_max_files,
            gc: self.gc.clone(),
            cgroups: self.cgroups.clone(),
            eviction: eviction::config::EvictionFlags {
                hard: self.eviction_hard.clone(),
                soft: self.eviction_soft.clone(),
                soft_grace: self.eviction_soft_grace_period.clone(),
                transition: self.eviction_pressure_transition_period.clone(),
            },
            api_access: kubelet_tls::config::ApiAccessFlags {
                tls_cert_file: self.tls_cert_file.clone(),
                tls_private_key_file: self.tls_private_key_file.clone(),
                client_ca_file: self.client_ca_file.clone(),
            },
        }
    }

    /// Flags and the `--config` file combined; the file's fields the agent
    /// does not honour are reported here, once.
    fn settings(&self) -> anyhow::Result<kubelet_config::Settings> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading kubelet config {}", path.display()))?;
                let file = kubelet_config::parse_config_file(&text)
                    .with_context(|| format!("kubelet config {}", path.display()))?;
                if !file.ignored.is_empty() {
                    tracing::warn!(
                        file = %path.display(),
                        fields = %file.ignored.join(", "),
                        honoured = %kubelet_config::HONOURED_FIELDS.join(", "),
                        "kubelet config fields not honoured by bosun"
                    );
                }
                file.settings
            }
            None => kubelet_config::FileSettings::default(),
        };
        Ok(kubelet_config::resolve(&self.kubelet_flags(), &file)?)
    }

    /// The kubeconfig to use: --kubeconfig, or --bootstrap-kubeconfig while
    /// the former does not exist.
    fn kubeconfig_path(&self) -> Option<&PathBuf> {
        match (&self.kubeconfig, &self.bootstrap_kubeconfig) {
            (Some(path), Some(bootstrap)) if !path.exists() => {
                tracing::info!(bootstrap = %bootstrap.display(), missing = %path.display(), "using the bootstrap kubeconfig");
                Some(bootstrap)
            }
            (None, Some(bootstrap)) => Some(bootstrap),
            (path, _) => path.as_ref(),
        }
    }
}

async fn kube_client(kubeconfig: Option<&PathBuf>, servers: &[String]) -> anyhow::Result<kube::Client> {
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
    let servers = api_failover::parse_servers(servers).context("--api-servers")?;
    api_failover::client(config, &servers).context("building kube client")
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

/// The pod cgroup tree, `kubepods` limited to node allocatable; disabled
/// (pods stay in the runtime's default cgroup) when it cannot be built.
fn start_pod_cgroups(settings: &pod_cgroups::config::CgroupSettings) -> pod_cgroups::PodCgroups {
    let host = host::HostInfo::read();
    let cpu_milli = i64::try_from(host.cpus).unwrap_or(i64::MAX).saturating_mul(1000);
    let memory = i64::try_from(host.memory_kib).unwrap_or(i64::MAX).saturating_mul(1024);
    let kubepods = pod_cgroups::kubepods_limits(cpu_milli, memory, settings.reserved);
    match pod_cgroups::PodCgroups::start(settings, std::path::Path::new(pod_cgroups::CGROUPFS), &kubepods) {
        Ok(cgroups) => cgroups,
        Err(error) => {
            tracing::warn!(%error, "no pod cgroups: pods run in the runtime's default cgroup");
            pod_cgroups::PodCgroups::disabled()
        }
    }
}

/// The in-agent cluster DNS server (bound, not yet serving; `None` with
/// `--no-cluster-dns`) and what pods' resolv.conf is built from: the
/// cluster DNS is `--cluster-dns`, else this server's address.
fn cluster_dns_server(
    args: &AgentArgs,
    settings: &kubelet_config::Settings,
) -> anyhow::Result<(Option<bosun_dns::DnsServer>, dns::PodDnsSettings)> {
    let host = settings.resolv_conf.as_deref().map(cluster_dns::read_resolv_conf);
    let listen = match (args.no_cluster_dns, args.cluster_dns_address) {
        (true, _) => None,
        (false, Some(ip)) => Some(ip),
        (false, None) => Some(
            cluster_dns::gateway_of(&settings.pod_cidr)
                .with_context(|| format!("no cluster DNS address in pod CIDR {:?}", settings.pod_cidr))?,
        ),
    };
    let server = match listen {
        Some(ip) => {
            let fallback = std::path::Path::new(cluster_dns::SYSTEMD_RESOLVED_CONF);
            let fallback = fallback.exists().then(|| cluster_dns::read_resolv_conf(fallback));
            let upstreams = cluster_dns::upstreams(&host.clone().unwrap_or_default(), fallback.as_ref());
            if upstreams.is_empty() {
                tracing::warn!("cluster DNS has no upstream resolver: names outside the cluster get SERVFAIL");
            }
            let config = bosun_dns::DnsConfig {
                listen: SocketAddr::new(ip, bosun_dns::resolv::DNS_PORT),
                domain: settings.cluster_domain.clone(),
                upstreams,
                forward_timeout: bosun_dns::FORWARD_TIMEOUT,
            };
            Some(
                bosun_dns::DnsServer::bind(&config)
                    .context("starting the cluster DNS (--no-cluster-dns turns it off)")?,
            )
        }
        None => None,
    };
    let cluster_dns = match (&settings.cluster_dns, listen) {
        (list, Some(ip)) if list.is_empty() => vec![ip],
        (list, _) => list.clone(),
    };
    let pod_dns = dns::PodDnsSettings { cluster_dns, cluster_domain: settings.cluster_domain.clone(), host };
    Ok((server, pod_dns))
}

/// Runs the agent until `token` is cancelled. Pods keep running when the
/// agent stops; a restarted agent picks them up from the runtime.
pub async fn run(args: AgentArgs, token: CancellationToken) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let node_name = args.node_name.clone().unwrap_or_else(host::hostname);
    let node_ip = match args.node_ip {
        Some(ip) => ip,
        None => IpAddr::V4(host::detect_node_ip().context("no IPv4 address found for the node; pass --node-ip")?),
    };
    std::fs::create_dir_all(settings.root_dir.join("pods"))
        .with_context(|| format!("creating {}", settings.root_dir.display()))?;
    // The runtime needs absolute log paths.
    let root_dir = std::fs::canonicalize(&settings.root_dir)
        .with_context(|| format!("resolving {}", settings.root_dir.display()))?;
    if let (Some(kubeconfig), Some(bootstrap)) = (&args.kubeconfig, &args.bootstrap_kubeconfig) {
        tls_bootstrap::ensure_kubeconfig(kubeconfig, bootstrap, &node_name, tls_bootstrap::DEFAULT_WAIT, &token)
            .await
            .context("TLS bootstrap")?;
    }
    let client = kube_client(args.kubeconfig_path(), &args.api_servers).await?;
    let (client_slot, client) = cert_rotation::reload::ClientSlot::new(client);
    let cri_socket = settings.runtime_endpoint.clone();
    let cri = connect_runtime(&cri_socket, &token).await?;
    if let Err(error) = cri.update_runtime_config(&settings.pod_cidr).await {
        tracing::warn!(%error, "could not pass the pod CIDR to the runtime");
    }
    if let Some(dir) = &args.images_dir {
        let count = airgap::import_all(dir, &cri_socket).await?;
        tracing::info!(count, dir = %dir.display(), "imported air-gapped images");
    }
    let stats_cri = cri.clone();
    // One registry for the process: the kubelet API and the proxy's
    // metrics address both serve it.
    let mut metrics_registry = prometheus_client::registry::Registry::default();
    let metrics = kubelet_metrics::register(&mut metrics_registry, &node_name);
    let proxy_metrics =
        (!args.no_proxy).then(|| bosun_netproxy::metrics::ProxyMetrics::register(&mut metrics_registry));
    let metrics_registry = Arc::new(metrics_registry);
    let runtime: Arc<dyn Runtime> =
        Arc::new(kubelet_metrics::MeteredRuntime::new(Arc::new(cri), metrics.runtime.clone()));
    tracing::info!(node = %node_name, ip = %node_ip, cri = %cri_socket.display(), "agent starting");

    let bind = SocketAddr::new(settings.address.unwrap_or(node_ip), settings.port);
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| server::Error::Bind { addr: bind.to_string(), source })?;
    let (tls, serving_slot) =
        kubelet_api_tls(&args, &settings.api_access, &node_name, &[node_ip, bind.ip()], &root_dir)?;
    let tasks = tokio_util::task::TaskTracker::new();
    spawn_healthz(&args, &tasks, &token).await;
    let (dns_server, pod_dns) = cluster_dns_server(&args, &settings)?;
    let host_info = host::HostInfo::read();
    let memory_capacity = i64::try_from(host_info.memory_kib).unwrap_or(i64::MAX).saturating_mul(1024);
    let reserved =
        pod_cgroups::config::node_reserved(&settings.cgroups, settings.eviction.hard_memory(memory_capacity));
    let allocatable = node::NodeAllocatable::of(&host_info, reserved);
    let node_config = NodeConfig {
        name: node_name.clone(),
        node_ip: node_ip.to_string(),
        pod_cidr: settings.pod_cidr.clone(),
        kubelet_port: settings.port,
        max_pods: settings.max_pods,
        labels: settings.node_labels.clone(),
        taints: settings.taints.clone(),
        allocatable,
    };
    let (pressure, pressure_rx) = tokio::sync::watch::channel(eviction::manager::Pressure::new());
    let (registered_tx, registered) = tokio::sync::watch::channel(false);
    let node_agent = NodeAgent::new(client.clone(), runtime.clone(), node_config, host_info)
        .with_pressure(pressure_rx)
        .with_registered(registered_tx);
    let node_task = tasks.spawn(node_agent.run(Duration::from_secs(10), token.clone()));

    let registry = PodRegistry::default();
    let mirror_uids = static_pods::status::MirrorUids::default();
    let api: Arc<dyn pod_api::PodApi> = Arc::new(static_pods::status::MirrorStatusApi::new(
        Arc::new(pod_api::KubePodApi::new(client.clone())),
        mirror_uids.clone(),
    ));
    let (status_manager, status) = status_manager::StatusManager::new(api.clone(), Default::default());
    tasks.spawn(status_manager.run(token.clone()));
    let events: Arc<dyn events::EventSink> = Arc::new(events::KubeEvents::new(client.clone(), &node_name));
    let cgroups = start_pod_cgroups(&settings.cgroups);
    let eviction = eviction::manager::EvictionManager {
        client: client.clone(),
        runtime: runtime.clone(),
        api: api.clone(),
        events: events.clone(),
        node: node_name.clone(),
        thresholds: settings.eviction.clone(),
        memory_capacity,
        root_dir: root_dir.clone(),
        pressure,
        metrics: metrics.eviction.clone(),
    };
    tasks.spawn(eviction.run(eviction::manager::INTERVAL, token.clone()));
    let deps = Arc::new(WorkerDeps {
        runtime: runtime.clone(),
        api,
        status,
        events: events.clone(),
        root_dir: root_dir.clone(),
        host_ip: node_ip.to_string(),
        dns: pod_dns,
        allocatable,
        timing: Timing::default(),
        mounter: Arc::new(volumes::NixMounter),
        objects: Some(object_watch::ObjectWatches::new(
            Arc::new(object_watch::KubeObjectSource::new(client.clone())),
            token.clone(),
        )),
        cgroups: cgroups.clone(),
        metrics: metrics.pods.clone(),
    });
    let selector = format!("spec.nodeName={node_name}");
    let pods = watcher(kube::Api::<Pod>::all(client.clone()), watcher::Config::default().fields(&selector))
        .default_backoff()
        .boxed();
    // Evented PLEG: containerd's task events wake pod workers at once.
    let (signals, lifecycle) = tokio::sync::mpsc::channel(1024);
    let subscription =
        pleg::Subscription { metrics: metrics.pods.clone(), ..pleg::Subscription::new(cri_socket.clone()) };
    tasks.spawn(pleg::run(subscription, signals, token.clone()));
    let manager_timing =
        ManagerTiming { relist: Duration::from_millis(args.relist_period_ms), ..ManagerTiming::default() };
    let mut manager = PodManager::new(deps, &node_name, registry.clone(), manager_timing).with_lifecycle(lifecycle);
    if let Some(dir) = &settings.pod_manifest_path {
        // Read once before the manager starts, so its first orphan sweep
        // (restart recovery) already knows the static pods.
        let (read_dir, read_node) = (dir.clone(), node_name.clone());
        let initial = tokio::task::spawn_blocking(move || static_pods::read_dir(&read_dir, &read_node).0)
            .await
            .unwrap_or_default();
        let (statics_tx, statics) = tokio::sync::watch::channel(initial.into_iter().map(Arc::new).collect());
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
    let manager_task = tasks.spawn(manager.run(pods, token.clone()));

    let gc_deps = gc::Deps {
        runtime: runtime.clone(),
        pods: Arc::new(registry.clone()),
        image_fs: Arc::new(gc::apply::RuntimeImageFs(runtime.clone())),
        events,
        node_name: node_name.clone(),
    };
    tasks.spawn(gc::run(gc_deps, settings.gc.clone(), args.gc.periods(), token.clone()));

    if let Some(kubeconfig) = args.kubeconfig.clone().filter(|path| path.exists()) {
        let servers = args.api_servers.clone();
        let build: cert_rotation::BuildClient = Arc::new(move |path: PathBuf| {
            let servers = servers.clone();
            Box::pin(async move { kube_client(Some(&path), &servers).await })
        });
        let rotation = cert_rotation::Rotation { kubeconfig, node: node_name.clone(), slot: client_slot, build };
        tasks.spawn(rotation.run(token.clone()));
    }
    match (args.rotate_server_certificates, &settings.api_access.serving) {
        (true, None) => {
            let rotation = cert_rotation::serving::ServingRotation {
                client: client.clone(),
                node: node_name.clone(),
                dns: vec![node_name.clone()],
                ips: vec![node_ip],
                pki_dir: root_dir.join("pki"),
                slot: serving_slot,
                registered: registered.clone(),
            };
            tasks.spawn(rotation.run(token.clone()));
        }
        (true, Some(_)) => tracing::warn!("--rotate-server-certificates is ignored with --tls-cert-file"),
        (false, _) => {}
    }
    tasks.spawn(log_rotation::run(runtime.clone(), settings.log_limits, Duration::from_secs(10), token.clone()));

    let stats_cgroups = cgroups;
    let stats = stats::wire(stats_cri, runtime.clone(), registry.clone(), stats_cgroups, &node_name, &token, &tasks);
    let state = server::ServerState {
        stats,
        metrics: metrics_registry.clone(),
        registry,
        root_dir: root_dir.clone(),
        runtime,
        token: token.clone(),
        follow_poll: Duration::from_millis(250),
        stream_idle_timeout: STREAM_IDLE_TIMEOUT,
    };
    let auth =
        Arc::new(kubelet_auth::KubeletAuth::new(&node_name, Arc::new(kubelet_auth::KubeReviews::new(client.clone()))));
    let server_task = tasks.spawn(server::serve(listener, tls, state, auth, token.clone()));

    // One Service/EndpointSlice watch feeds both the proxy and the DNS.
    let watch =
        cluster_dns::spawn_service_watch(client.clone(), !args.no_proxy, dns_server.is_some(), &tasks, token.clone());
    if let Some(events) = watch.proxy {
        let config = bosun_netproxy::ProxyConfig {
            service_cidr: args.service_cidr.clone(),
            cluster_cidr: args.cluster_cidr.clone(),
            node_name: node_name.clone(),
            node_port_addresses: node_port_addresses(args.nodeport_addresses.as_deref(), node_ip),
            health_check_bind: Some(node_ip),
            masquerade_all: args.masquerade_all,
            table_name: args.proxy_table.clone(),
            ..Default::default()
        };
        let nft = Arc::new(bosun_netproxy::NftCommand::new(&config.nft));
        let events = tokio_stream::wrappers::ReceiverStream::new(events);
        let metrics = proxy_metrics.unwrap_or_default();
        if !args.proxy_metrics_address.is_empty() {
            let addr: SocketAddr =
                args.proxy_metrics_address.parse().context("--proxy-metrics-address is not an address:port")?;
            let (registry, metrics_token) = (metrics_registry.clone(), token.clone());
            tasks.spawn(async move {
                if let Err(error) = proxy_metrics::serve(addr, registry, metrics_token).await {
                    tracing::error!(%error, %addr, "proxy metrics server stopped");
                }
            });
        }
        let proxy_token = token.clone();
        tasks.spawn(async move {
            let run = bosun_netproxy::run_events_with_metrics(events, config, nft, metrics, proxy_token);
            if let Err(error) = run.await {
                tracing::error!(%error, "service proxy stopped");
            }
        });
    }
    if let (Some(server), Some(events)) = (dns_server, watch.dns) {
        tasks.spawn(server.run(tokio_stream::wrappers::ReceiverStream::new(events), token.clone()));
    }

    let essential = [("kubelet API", server_task), ("node status", node_task), ("pod manager", manager_task)];
    service_manager::serve_until_cancelled(registered, &essential, &bind, &node_name, &token).await;
    tasks.close();
    tasks.wait().await;
    tracing::info!("agent stopped");
    Ok(())
}

/// The kubelet API's TLS: the serving certificate (given by flag or file,
/// or self-signed in `<root>/pki` for the node's names and `ips`) and the
/// client CA (given, or the kubeconfig's).
fn kubelet_api_tls(
    args: &AgentArgs,
    access: &kubelet_tls::config::ApiAccess,
    node_name: &str,
    ips: &[IpAddr],
    root_dir: &std::path::Path,
) -> anyhow::Result<(Arc<rustls::ServerConfig>, kubelet_tls::ServingSlot)> {
    let names = kubelet_tls::cert::ServingNames::new(node_name, &host::hostname(), ips);
    let given = access.serving.as_ref().map(|(cert, key)| (cert.as_path(), key.as_path()));
    let serving =
        kubelet_tls::cert::serving(given, &root_dir.join("pki"), &names).context("kubelet API serving certificate")?;
    let client_ca =
        kubelet_tls::cert::client_ca(access.client_ca_file.as_deref(), args.kubeconfig_path().map(|p| p.as_path()))
            .context("kubelet API client CA")?;
    if client_ca.is_none() {
        tracing::warn!(
            "no client CA (--client-ca-file, or a CA in the kubeconfig): the kubelet API accepts only bearer tokens"
        );
    }
    kubelet_tls::server_config(&serving, client_ca.as_deref()).context("kubelet API TLS")
}

/// Serves plain `/healthz` on `--healthz-bind-address:--healthz-port`
/// (none with port 0); a port that cannot be bound is logged, not fatal.
async fn spawn_healthz(args: &AgentArgs, tasks: &tokio_util::task::TaskTracker, token: &CancellationToken) {
    if args.healthz_port == 0 {
        return;
    }
    let addr = SocketAddr::new(args.healthz_bind_address, args.healthz_port);
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            let token = token.clone();
            tasks.spawn(async move {
                if let Err(error) = server::serve_healthz(listener, token).await {
                    tracing::warn!(%error, "healthz server stopped");
                }
            });
        }
        Err(error) => {
            tracing::warn!(%error, %addr, "healthz port not bound; /healthz is served on the kubelet API only")
        }
    }
}

/// The proxy's node-port ranges: `--nodeport-addresses`, or the node IP as
/// a /32 (upstream's "primary" default; an IPv6 node IP leaves the IPv4
/// proxy on every local address).
fn node_port_addresses(flag: Option<&[String]>, node_ip: IpAddr) -> Vec<String> {
    match (flag, node_ip) {
        (Some(ranges), _) => {
            ranges.iter().map(|range| range.trim().to_owned()).filter(|range| !range.is_empty()).collect()
        }
        (None, IpAddr::V4(ip)) => vec![format!("{ip}/32")],
        (None, IpAddr::V6(_)) => Vec::new(),
    }
}
