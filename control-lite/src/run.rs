//! `bosun control`: wiring of store, apiserver, scheduler and controllers.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::apiserver::kubeconfig::{kube_config, write_kubeconfig};
use crate::apiserver::kubelet_client::KubeletClient;
use crate::apiserver::pod_security::config::{parse_admission_config, PodSecurityConfig};
use crate::apiserver::{self, clusterip::Cidr, ApiConfig, ApiState};
use crate::auth::sa_token::key::SigningKey;
use crate::auth::{ca::Ca, files, serving};
use crate::controllers::loadbalancer::plan::{Pool, Pools};
use crate::controllers::shared::Informers;
use crate::store::{spawn_compactor, EtcdOptions, Options as StoreOptions, Retention, Store};
use crate::supervisor::{supervise, Backoff};

/// Flags of `bosun control`.
#[derive(Debug, Clone, clap::Args)]
pub struct ControlArgs {
    /// Directory holding the store database (`store.db`) and the cluster
    /// CA (`pki/`, generated at the first start); made 0700.
    #[arg(long, default_value = "/var/lib/bosun/control")]
    pub data_dir: PathBuf,
    /// Address the apiserver listens on (HTTPS).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// The address pods reach this apiserver at (upstream's
    /// `--advertise-address`): the `kubernetes` Service's endpoint, an IP
    /// SAN of the serving certificate, and listened on too (at `--listen`'s
    /// port) unless `--listen` covers it. Default: `--listen`'s address if
    /// it is neither loopback nor a wildcard; otherwise the `kubernetes`
    /// Service gets no endpoints.
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    /// Addresses `type: LoadBalancer` Services get their ingress IP from
    /// (IPv4 CIDRs or `first-last` ranges, comma-separated or repeated).
    /// Empty (the default): no load balancer; such Services stay pending.
    #[arg(long, value_delimiter = ',')]
    pub load_balancer_pool: Vec<String>,
    /// Addresses several `type: LoadBalancer` Services share, each on its
    /// own ports (as k3s's ServiceLB shares node IPs), used once
    /// `--load-balancer-pool` has none left. `bosun up` passes the node's
    /// IP here unless told otherwise.
    #[arg(long, value_delimiter = ',')]
    pub load_balancer_shared_pool: Vec<String>,
    /// Ports no Service may take on a shared address (the node's own
    /// services: ssh, etcd, the apiserver, the kubelet's ports).
    #[arg(long, value_delimiter = ',', default_values_t = crate::controllers::loadbalancer::plan::DEFAULT_RESERVED_PORTS.to_vec())]
    pub load_balancer_reserved_ports: Vec<i32>,
    /// The key set's URL in the ServiceAccount issuer's discovery document
    /// (`/.well-known/openid-configuration`). Default: this apiserver's
    /// `/openid/v1/jwks` at the advertised address.
    #[arg(long)]
    pub service_account_jwks_uri: Option<String>,
    /// An `AdmissionConfiguration` file (as kube-apiserver's): the
    /// `PodSecurity` plugin's inline `PodSecurityConfiguration` gives the
    /// levels of namespaces without labels and the exempt usernames,
    /// namespaces and runtime classes.
    #[arg(long)]
    pub admission_control_config_file: Option<PathBuf>,
    /// CIDR Service ClusterIPs are allocated from (`.1` is the `kubernetes` Service).
    #[arg(long, default_value = "10.96.0.0/16")]
    pub service_cidr: String,
    /// Write an admin kubeconfig (user `bosun-admin` in `system:masters`)
    /// for `https://<listen>` here (0600).
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
    /// Write a kubeconfig for node `--node-name` (user `system:node:<name>`
    /// in `system:nodes`), for its agent, here (0600).
    #[arg(long)]
    pub node_kubeconfig_out: Option<PathBuf>,
    /// The node `--node-kubeconfig-out` is for (default: the host name,
    /// lowercased, as the agent's default node name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Static bearer tokens: CSV lines `token,user,uid,"group1,group2"`.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// CA that signs the kubelets' serving certificates. Without it (the
    /// default, as upstream's) the apiserver does not verify which kubelet
    /// it reaches: connections are encrypted but not authenticated.
    #[arg(long)]
    pub kubelet_certificate_authority: Option<PathBuf>,
    /// Keep the store in this etcd v3 cluster instead of SQLite in
    /// `--data-dir`: client URLs of its members (`http://host:2379`,
    /// comma-separated or repeated). Keys are the `/registry/...` keys.
    #[arg(long, value_delimiter = ',')]
    pub datastore_endpoint: Vec<String>,
    /// Run the scheduler and controllers only while holding the Lease
    /// `kube-system/bosun-control-lite`, so several `bosun control`
    /// processes can share one etcd (`--leader-elect=false` to turn off).
    /// Default: on with `--datastore-endpoint`, off on SQLite.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub leader_elect: Option<bool>,
    /// How long a leader's Lease is valid after its last renewal: a
    /// standby takes over at most this long after the leader died
    /// (upstream's default is 15 s; 12 s keeps a takeover, and the pods the
    /// new leader then creates and schedules, within 15 s of a crash).
    #[arg(long, default_value = "12s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader keeps failing to renew before it stops leading.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// How often the leader renews and a standby reads the Lease.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// The longest lifetime of the certificates the CSR signer issues
    /// (upstream's flag, default 8760h = 1 year), and the lifetime of the
    /// node certificate of `--node-kubeconfig-out`, which the agent renews
    /// at 70–90% of it. At least 1m (short values are for tests of
    /// rotation), at most 87600h.
    #[arg(long, default_value = "8760h", value_parser = parse_signing_duration)]
    pub cluster_signing_duration: Duration,
    /// Approve kubelet serving certificate requests (signer
    /// `kubernetes.io/kubelet-serving`) that a node made for itself and
    /// whose names are all addresses of its Node object. Off by default, as
    /// upstream: such requests otherwise wait for `kubectl certificate approve`.
    #[arg(long)]
    pub approve_kubelet_serving_certificates: bool,
}

/// The shortest `--cluster-signing-duration`: the agent renews at 70–90%
/// of a certificate's life, so a minute still leaves it ~6 s to do so.
pub const MIN_SIGNING_DURATION: Duration = Duration::from_secs(60);
/// The longest `--cluster-signing-duration`: the CA's own lifetime.
pub const MAX_SIGNING_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `--cluster-signing-duration`: a duration within
/// [[`MIN_SIGNING_DURATION`], [`MAX_SIGNING_DURATION`]].
fn parse_signing_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration < MIN_SIGNING_DURATION || duration > MAX_SIGNING_DURATION {
        return Err(format!(
            "{text:?} is out of range: the signing duration must be between {}s and {}h",
            MIN_SIGNING_DURATION.as_secs(),
            MAX_SIGNING_DURATION.as_secs() / 3600
        ));
    }
    Ok(duration)
}

/// A duration flag as kube-controller-manager's (`15s`, `1m30s`, `500ms`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text.parse().map_err(|e| format!("{text:?}: {e}"))?;
    Duration::try_from(signed).map_err(|_| format!("{text:?} is negative"))
}

impl ControlArgs {
    /// Whether leader election is on: the flag, else whether the store is etcd.
    fn leader_elect(&self) -> bool {
        self.leader_elect.unwrap_or(!self.datastore_endpoint.is_empty())
    }

    /// The leader-election timing of the flags, for this host.
    fn election(&self) -> anyhow::Result<crate::leader::Config> {
        let config = crate::leader::Config {
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
            ..crate::leader::Config::new(&host_name())
        };
        config.validate()?;
        Ok(config)
    }
}

/// History kept watchable by the compactor: the last 10,000 revisions, and
/// beyond that every revision younger than 5 minutes (upstream etcd's
/// window, so a bulk create does not force quiet watchers into a 410 and a
/// relist), but never more than 100,000 revisions. The cap bounds the
/// on-disk log and the history one watch replay may load into memory (at
/// most that many events of one prefix, about 100-300 MiB of pod objects in
/// the worst case); beyond it, compaction falls back to the count.
const RETENTION: Retention = Retention { keep: 10_000, keep_for: Duration::from_secs(300), max_keep: 100_000 };
/// How often the compactor samples the revision and compacts.
const COMPACT_EVERY: Duration = Duration::from_secs(30);

/// The store `args` ask for: etcd with `--datastore-endpoint`, else SQLite
/// in the data dir.
async fn open_store(args: &ControlArgs, options: StoreOptions) -> anyhow::Result<Store> {
    if !args.datastore_endpoint.is_empty() {
        let etcd = EtcdOptions::new(args.datastore_endpoint.clone());
        let store = Store::connect_etcd(etcd, options).await.context("--datastore-endpoint")?;
        tracing::info!(endpoints = ?args.datastore_endpoint, "store: etcd");
        return Ok(store);
    }
    let db = args.data_dir.join("store.db");
    // SQLite gives its -wal and -shm files the database file's mode.
    files::ensure_private_file(&db).with_context(|| format!("store {}", db.display()))?;
    Store::open_with(&db, options).with_context(|| format!("open store {}", db.display()))
}

/// Runs the control plane until `token` is cancelled.
pub async fn run(args: ControlArgs, token: CancellationToken) -> anyhow::Result<()> {
    files::private_dir(&args.data_dir).with_context(|| format!("create data dir {}", args.data_dir.display()))?;
    // One registry for the process, served by the apiserver on `/metrics`.
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = crate::metrics::register(&mut registry);
    let options = StoreOptions { commit_duration: Some(metrics.store_commit.clone()), ..StoreOptions::default() };
    let store = open_store(&args, options).await?;
    let cidr: Cidr = args.service_cidr.parse().context("--service-cidr")?;
    let pools = load_balancer_pools(&args)?;
    let ca = Ca::load_or_create(&args.data_dir.join("pki")).context("cluster CA")?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listen on {}", args.listen))?;
    let addr = listener.local_addr().context("local address")?;
    let advertise = advertised(addr, args.advertise_address);
    let mut listeners = vec![listener];
    if let Some(extra) = advertise.and_then(|ip| extra_listen(addr, ip)) {
        let listener =
            tokio::net::TcpListener::bind(extra).await.with_context(|| format!("listen on {extra} (advertised)"))?;
        listeners.push(listener);
    }
    let sa_key = Arc::new(SigningKey::load_or_create(&args.data_dir.join("pki")).context("service-account key")?);
    let security =
        serving::security(&ca, addr, advertise, cidr.nth(1), args.token_auth_file.as_deref(), sa_key.clone())
            .context("apiserver TLS")?;
    let server_url = serving::server_url(addr);
    write_kubeconfigs(&args, &ca, &server_url)?;
    let compactor = spawn_compactor(store.clone(), COMPACT_EVERY, RETENTION, token.clone());
    let state = ApiState::new(store.clone(), cidr, addr.to_string(), token.clone())
        .with_config(ApiConfig::default())
        .with_kubelet_client(kubelet_client(&args, &ca)?)
        .with_service_account_key(sa_key)
        .with_issuer_discovery(&jwks_uri(&args, addr, advertise))
        .with_pod_security(pod_security_config(&args)?)
        .with_root_ca(ca.cert_pem().to_string());
    registry.register_collector(Box::new(crate::metrics::OpenWatches(state.open_watches.clone())));
    registry.register_collector(Box::new(crate::metrics::StorageObjects(store.object_counts())));
    let queues = crate::controllers::queue_metrics::QueueMetrics::default();
    registry.register_collector(Box::new(crate::controllers::queue_metrics::WorkqueueCollector(queues.clone())));
    let state = Arc::new(state.with_metrics(metrics.api.clone(), Arc::new(registry)));
    let server_token = token.clone();
    let server = tokio::spawn(async move {
        apiserver::serve_all(listeners, state, security, server_token).await.context("apiserver")
    });

    // Scheduler and controllers are plain API clients of the apiserver (the
    // listener is bound already, so their first requests just queue). Each
    // runs under its own supervisor: a failed component is restarted alone
    // while the apiserver keeps serving.
    let loopback = serving::loopback(&ca).context("loopback client certificate")?;
    let config = kube_config(&server_url, ca.cert_pem(), &loopback).await.context("loopback client config")?;
    let client = kube::Client::try_from(config).context("kube client")?;
    let leader = Leader {
        client: client.clone(),
        queues,
        scheduler_metrics: metrics.scheduler.clone(),
        advertise,
        port: addr.port(),
        pools: Arc::new(pools),
        ca: Arc::new(ca),
        signing_duration: args.cluster_signing_duration,
        approve_serving: args.approve_kubelet_serving_certificates,
    };
    let components = if args.leader_elect() {
        let election = args.election().context("--leader-elect-*")?;
        tracing::info!(identity = election.identity, "leader election on");
        let token = token.clone();
        tokio::spawn(crate::leader::run(client, election, token, move |leading| leader.clone().run(leading)))
    } else {
        tokio::spawn(leader.run(token.clone()))
    };

    // The listener is bound and the store open: tell systemd we serve
    // (requests that arrive first wait in the listen queue, not refused).
    let notifier = bosun_notify::Notifier::from_env();
    let store_at = match args.datastore_endpoint.is_empty() {
        true => args.data_dir.join("store.db").display().to_string(),
        false => format!("etcd {}", args.datastore_endpoint.join(",")),
    };
    notifier.ready(&format!("serving {server_url}, store {store_at}"));

    // Only cancellation or an apiserver failure ends the control plane.
    // Meanwhile the watchdog is fed while the store answers a read.
    let mut server = server;
    let served = tokio::select! {
        joined = &mut server => joined,
        () = notifier.watchdog(|| store_answers(store.clone()), &token) => server.await,
    };
    notifier.stopping();
    let served = served.context("apiserver task panicked").and_then(|r| r);
    if let Err(error) = &served {
        tracing::error!(error = format!("{error:#}"), "apiserver failed");
    }
    token.cancel();
    if let Err(error) = components.await {
        tracing::warn!(%error, "controllers task");
    }
    let _ = compactor.await;
    store.close().await;
    served
}

/// What the leader runs: the scheduler and every controller, each under its
/// own supervisor (a failed component is restarted alone while the
/// apiserver keeps serving), all on one set of informers made for this term.
#[derive(Clone)]
struct Leader {
    client: kube::Client,
    queues: crate::controllers::queue_metrics::QueueMetrics,
    scheduler_metrics: crate::metrics::SchedulerMetrics,
    advertise: Option<IpAddr>,
    port: u16,
    pools: Arc<Pools>,
    ca: Arc<Ca>,
    signing_duration: Duration,
    approve_serving: bool,
}

impl Leader {
    /// Runs the components until `token` is cancelled.
    async fn run(self, token: CancellationToken) {
        let client = self.client;
        // One informer per kind for the scheduler and every controller.
        let informers = Informers::new(client.clone(), token.clone()).with_queue_metrics(self.queues);
        let scheduler = {
            let (client, informers, metrics) = (client.clone(), informers.clone(), self.scheduler_metrics);
            supervise("scheduler", token.clone(), Backoff::default(), move |t| {
                crate::scheduler::run_with_metrics(client.clone(), informers.clone(), metrics.clone(), t)
            })
        };
        let endpoints = kubernetes_endpoints(&client, &informers, self.advertise, self.port, &token);
        let load_balancer = load_balancer(&client, &informers, self.pools, &token);
        let controllers = crate::controllers::run_all(
            client,
            informers,
            self.ca,
            self.signing_duration,
            self.approve_serving,
            token.clone(),
        );
        let (_, _, _, done) = tokio::join!(scheduler, endpoints, load_balancer, controllers);
        if let Err(error) = done {
            tracing::warn!(error = format!("{error:#}"), "controllers");
        }
    }
}

/// The address the `kubernetes` Service points at: the flag, else the
/// bound address when pods could reach it (not loopback, not a wildcard).
fn advertised(bound: SocketAddr, flag: Option<IpAddr>) -> Option<IpAddr> {
    flag.or_else(|| Some(bound.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified()))
}

/// Pod Security's configuration: `--admission-control-config-file`, else
/// upstream's defaults (privileged, no exemption).
fn pod_security_config(args: &ControlArgs) -> anyhow::Result<PodSecurityConfig> {
    let Some(path) = &args.admission_control_config_file else {
        return Ok(PodSecurityConfig::default());
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_admission_config(&text).with_context(|| format!("--admission-control-config-file {}", path.display()))
}

/// Where the issuer's discovery document says its keys are: the flag, else
/// this apiserver at the address pods and other hosts reach it by.
fn jwks_uri(args: &ControlArgs, bound: SocketAddr, advertise: Option<IpAddr>) -> String {
    let address = SocketAddr::new(advertise.unwrap_or(bound.ip()), bound.port());
    if args.service_account_jwks_uri.is_none() && address.ip().is_unspecified() {
        tracing::warn!(
            %address,
            "the issuer's jwks_uri names a wildcard address: pass --advertise-address or --service-account-jwks-uri"
        );
    }
    args.service_account_jwks_uri
        .clone()
        .unwrap_or_else(|| crate::apiserver::oidc::default_jwks_uri(&address.to_string()))
}

/// The second address to listen on for advertise address `ip`: none when
/// the bound address already covers it (the same address, or a wildcard:
/// `[::]` is dual-stack on Linux by default).
fn extra_listen(bound: SocketAddr, ip: IpAddr) -> Option<SocketAddr> {
    let covered = bound.ip() == ip || bound.ip().is_unspecified();
    (!covered).then_some(SocketAddr::new(ip, bound.port()))
}

/// The `kubernetes` Service's endpoints reconciler for `advertise` (none
/// without an address pods could reach), under its own supervisor.
fn kubernetes_endpoints(
    client: &kube::Client,
    informers: &Informers,
    advertise: Option<IpAddr>,
    port: u16,
    token: &CancellationToken,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    use crate::controllers::kubernetes_endpoints::{plan::Desired, run};
    let Some(desired) = advertise.and_then(|ip| Desired::new([ip], port)) else {
        tracing::warn!(
            "no --advertise-address: the kubernetes Service has no endpoints, pods cannot reach the apiserver"
        );
        return Box::pin(std::future::ready(()));
    };
    let (client, informers) = (client.clone(), informers.clone());
    Box::pin(supervise("kubernetes-endpoints", token.clone(), Backoff::default(), move |t| {
        run(client.clone(), informers.clone(), desired.clone(), t)
    }))
}

/// The load balancer's address pools, from the flags.
fn load_balancer_pools(args: &ControlArgs) -> anyhow::Result<Pools> {
    let parse = |entries: &[String]| Pool::parse(entries.iter().map(String::as_str));
    Ok(Pools {
        dedicated: parse(&args.load_balancer_pool).context("--load-balancer-pool")?,
        shared: parse(&args.load_balancer_shared_pool).context("--load-balancer-shared-pool")?,
        reserved_ports: args.load_balancer_reserved_ports.iter().copied().collect(),
    })
}

/// The bare-metal load balancer for `pools`, under its own supervisor
/// (none when they hold no address).
fn load_balancer(
    client: &kube::Client,
    informers: &Informers,
    pools: Arc<Pools>,
    token: &CancellationToken,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    if pools.is_empty() {
        return Box::pin(std::future::ready(()));
    }
    let (client, informers) = (client.clone(), informers.clone());
    Box::pin(supervise("service-lb-controller", token.clone(), Backoff::default(), move |t| {
        crate::controllers::loadbalancer::run(client.clone(), informers.clone(), pools.clone(), t)
    }))
}

/// The admin's and the node's kubeconfigs, where the flags ask for them
/// (fresh client certificates at every start).
fn write_kubeconfigs(args: &ControlArgs, ca: &Ca, server_url: &str) -> anyhow::Result<()> {
    if let Some(path) = &args.kubeconfig_out {
        let admin = serving::admin(ca).context("admin client certificate")?;
        write_kubeconfig(path, server_url, ca.cert_pem(), &admin)?;
    }
    if let Some(path) = &args.node_kubeconfig_out {
        let node = args.node_name.clone().unwrap_or_else(host_name);
        let lifetime = args.cluster_signing_duration;
        let cred = serving::node(ca, &node, lifetime).context("node client certificate")?;
        write_kubeconfig(path, server_url, ca.cert_pem(), &cred)?;
    }
    Ok(())
}

/// How the apiserver dials kubelets: its kubelet client certificate (fresh
/// at every start), verifying them only with `--kubelet-certificate-authority`.
fn kubelet_client(args: &ControlArgs, ca: &Ca) -> anyhow::Result<KubeletClient> {
    let identity = serving::kubelet_client(ca).context("kubelet client certificate")?;
    let kubelet_ca = match &args.kubelet_certificate_authority {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    KubeletClient::new(Some(&identity), kubelet_ca.as_deref()).context("kubelet client TLS")
}

/// This host's name, lowercased.
fn host_name() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().to_lowercase()).unwrap_or_else(|_| "localhost".into())
}

/// The watchdog's health check: the store answers a point read (a wedged
/// store would stall every request, so systemd should restart us).
async fn store_answers(store: Store) -> Result<(), String> {
    store.get(WATCHDOG_KEY).await.map(drop).map_err(|error| format!("store read failed: {error}"))
}

/// A key no object has, read by the watchdog's health check.
const WATCHDOG_KEY: &str = "/bosun/watchdog";

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_signing_duration_is_bounded() {
        assert_eq!(parse_signing_duration("8760h"), Ok(Duration::from_secs(365 * 24 * 3600)));
        assert_eq!(parse_signing_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_signing_duration("1m"), Ok(MIN_SIGNING_DURATION));
        for bad in ["59s", "0s", "-1h", "87601h", "soon", ""] {
            assert!(parse_signing_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_signing_duration("30s").unwrap_err().contains("between 60s and 87600h"));
    }

    #[test]
    fn the_advertise_address_is_the_flag_or_a_reachable_bind() {
        assert_eq!(advertised(addr("127.0.0.1:6443"), Some(ip("192.0.2.2"))), Some(ip("192.0.2.2")));
        assert_eq!(advertised(addr("192.0.2.2:6443"), None), Some(ip("192.0.2.2")));
        assert_eq!(advertised(addr("127.0.0.1:6443"), None), None, "pods cannot reach loopback");
        assert_eq!(advertised(addr("0.0.0.0:6443"), None), None, "a wildcard names no address");
    }

    #[test]
    fn the_advertise_address_gets_a_listener_unless_the_bind_covers_it() {
        assert_eq!(extra_listen(addr("127.0.0.1:7000"), ip("192.0.2.2")), Some(addr("192.0.2.2:7000")));
        assert_eq!(extra_listen(addr("192.0.2.2:7000"), ip("192.0.2.2")), None);
        assert_eq!(extra_listen(addr("0.0.0.0:7000"), ip("192.0.2.2")), None);
        assert_eq!(extra_listen(addr("[::]:7000"), ip("192.0.2.2")), None);
    }
}
