//! bosun-netproxy: Services + EndpointSlices -> one nftables table.
//!
//! This crate owns kube-proxy's job on a bosun node: it watches Services and
//! EndpointSlices (all namespaces), computes which endpoints each service
//! port balances to, and programs one `ip` family nftables table (default
//! name `bosun`) so that connections to a ClusterIP, a node port, an
//! external IP or a load-balancer IP are DNATed to a ready endpoint. It does not manage pod networking or routes; of conntrack it only deletes the UDP/SCTP entries a sync made stale ([`conntrack`]),
//! and it never touches tables other than its own.
//!
//! # Pipeline (decide, then apply)
//! watch events -> [`tracker::ChangeTracker`] (slim cache + dirty Services)
//! -> [`model::ProxyState`] -> [`ruleset::render_ruleset`] (pure)
//! -> [`diff::diff`] against the last applied ruleset (pure)
//! -> [`script`] text (pure) -> [`nft::NftApply`] (`nft -f -`, one
//! transaction per sync), driven by the rate-limited loop in [`proxier`].
//! On the sync path the render and diff are incremental
//! ([`rendered::Rendered`]): only the changed Services are re-rendered and
//! diffed, so a sync costs O(changed Services), not O(all). The same sync
//! publishes each `externalTrafficPolicy: Local` LoadBalancer's local
//! endpoint count to the [`health`] servers (`healthCheckNodePort`).
//!
//! # Table layout
//! ```text
//! table ip bosun
//!   map service_ports    ip . proto . port -> goto buckets_<K>   (verdict map:
//!                          ClusterIPs, externalIPs, LB ingress IPs)
//!   map backends         ip . proto . port . bucket -> endpoint ip . port
//!   set no_endpoints     ip . proto . port                        (rejected)
//!   map node_ports       proto . port -> goto node_port_buckets_<K>
//!   map node_port_backends  proto . port . bucket -> endpoint ip . port
//!   set node_port_no_endpoints  proto . port                      (rejected)
//!   set no_local_endpoints / node_port_no_local_endpoints   (dropped:
//!                        a `Local` traffic policy, no endpoint on this node)
//!   set node_port_addresses  ipv4 intervals (static: --nodeport-addresses)
//!   set masquerade_addrs / masquerade_node_ports   (marked for masquerade)
//!   set lb_firewalled    ip . proto . port          (LB IPs with source ranges)
//!   set lb_source_ranges ip . proto . port . source-CIDR   (interval set)
//!   map affinity_ports / affinity_node_ports      frontend -> jump aff_<f>
//!   map affinity_record / affinity_record_node_ports  frontend -> jump recaff_<f>
//!   per ClientIP-affinity frontend f (created and deleted with it):
//!     map aff_<f>  client ip -> endpoint ip . port (dynamic, timeout)
//!     chain aff_<f>     dnat ip to ip saddr map @aff_<f>  (miss: return)
//!     chain recaff_<f>  update @aff_<f> { ip saddr : ip daddr . th dport }
//!   set hairpin          ip . ip   (endpoint to itself)
//!   chain services       masquerade_addrs -> mark 0x4000;
//!                        ip daddr . meta l4proto . th dport vmap @service_ports;
//!                        daddr in node_port_addresses, local, not 127/8:
//!                          jump node_port_dispatch
//!   chain node_port_dispatch  masquerade_node_ports -> mark 0x4000;
//!                        meta l4proto . th dport vmap @node_ports
//!   chain buckets_<K>    dnat ip to ip daddr . meta l4proto . th dport
//!                           . numgen random mod K map @backends
//!   chain node_port_buckets_<K>  dnat ip to meta l4proto . th dport
//!                           . numgen random mod K map @node_port_backends
//!                        (K = 16, 32, ... 65536: 13 fixed chains of each)
//!   chain nat_prerouting   nat, prerouting, dstnat:  jump services
//!   chain nat_output       nat, output, -100:        jump services
//!   chain nat_postrouting  nat, postrouting, srcnat: jump affinity_record_new
//!                          (original frontend vmap @affinity_record*),
//!                          masquerade rules
//!   chain lb_firewall      filter, prerouting, dstnat - 10: drop sources
//!                          outside lb_source_ranges for lb_firewalled
//!   chain reject_unserved  no_local_endpoints (both kinds) -> drop;
//!                          no_endpoints (both kinds) -> reject;
//!                          service CIDR -> reject
//!   chain filter_input / filter_forward / filter_output (filter, 0):
//!                          jump reject_unserved
//! ```
//! Each service port with endpoints gets K buckets (16, or the next power of
//! two above its endpoint count), filled round-robin, so every endpoint gets
//! K/n or K/n+1 buckets and `numgen random mod K` balances evenly. Every
//! frontend of a port (ClusterIP, node port, external and LB IPs) gets the
//! same buckets.
//!
//! **Why maps, not chains.** The upstream nftables proxier builds a chain per
//! service and per endpoint; loading 10,000 services x 10 endpoints that way
//! takes minutes, because the kernel and `nft` cost grows with chains and
//! rules. Here the chains and rules are fixed; services and endpoints are
//! only map elements, which load in about a second for 160,000 elements, and
//! a change is a handful of element adds and deletes in one transaction.
//!
//! **Node ports** are keyed by protocol and port only, so one element serves
//! every node address; which addresses answer is the static
//! `node_port_addresses` set (`--nodeport-addresses`; empty: every local
//! address), checked with `fib daddr type local` and never 127.0.0.0/8 (as
//! upstream's nftables proxier: loopback DNAT would need `route_localnet`).
//!
//! **Safety catch-all.** The filter chains run after the nat chains on every
//! path (input, forward, output). Any packet whose destination is still in
//! the service CIDR there was not DNATed: either its service has no
//! endpoints (in `no_endpoints`: TCP reset, else ICMP port unreachable, so
//! clients fail fast) or it hit no service at all; both are rejected. So
//! service-range traffic never follows the default route off the host.
//! Node ports and external / LB addresses without endpoints are rejected
//! the same way through their `no_endpoints` sets.
//!
//! **Masquerade.** In postrouting, a connection DNATed from a service
//! address (`ct status dnat ct original ip daddr <service CIDR>`) is
//! masqueraded if its source is outside the cluster CIDR (e.g. the host
//! itself, whose source address was picked for the default route), or if
//! source and destination are the same endpoint (hairpin: a pod reaching
//! itself through its service; matched with the `hairpin` set of
//! `ip . ip` pairs, since nft cannot compare two packet fields). Only
//! endpoints on this node (EndpointSlice `nodeName` equal to
//! [`ProxyConfig::node_name`], or unknown) can hairpin, so the set holds
//! local pods only, not every endpoint in the cluster. Traffic to a node
//! port, external IP or LB IP is marked (`meta mark | 0x4000`, upstream's
//! bit) before DNAT and every marked packet is masqueraded: the endpoint
//! may be on another node, and its reply must come back through this one
//! to be un-NATed (this includes a pod reaching itself through them).
//!
//! **Traffic policies.** With `externalTrafficPolicy: Local` the node
//! port, external and LB IPs balance over this node's endpoints only and
//! are not marked (the client's address is kept); with
//! `internalTrafficPolicy: Local` the ClusterIP does the same. With no
//! endpoint here (but some elsewhere) the frontend is in a
//! `no_local_endpoints` set and its traffic is dropped, as upstream.
//! Unlike upstream, pods and the node reaching an external-Local frontend
//! are not short-circuited to cluster-wide endpoints.
//!
//! **Session affinity** (`ClientIP`) is the one place with per-service
//! chains, as upstream's, but only for services that ask for it: a
//! frontend's lookup chain (jumped before the bucket dispatch) DNATs a known
//! client to its remembered endpoint; a miss falls through to the buckets,
//! and `nat_postrouting` (first packet of each connection) records the
//! endpoint the connection got, refreshing the timeout. The chains never
//! change while they exist; when an endpoint leaves, the map is flushed
//! (every client of that frontend chooses again; upstream keeps the pins to
//! the other endpoints), and a new endpoint keeps every pin. Pins are per
//! frontend (ClusterIP and node port pin independently) and do not survive
//! a full reload (agent restart).
//!
//! **LB source ranges.** `lb_firewall` runs in prerouting before DNAT,
//! while the destination is still the LB IP: a packet to a firewalled
//! `ip . proto . port` whose source is not in its ranges is dropped (as
//! upstream). Overlapping ranges are merged first (interval sets refuse
//! overlaps).
//!
//! The table is left in place when the loop stops (traffic keeps flowing
//! across restarts); [`cleanup`] deletes it.

pub mod conntrack;
pub mod diff;
pub mod health;
pub mod metrics;
pub mod model;
pub mod nft;
pub mod proxier;
pub mod rendered;
pub mod ruleset;
pub mod script;
pub mod table;
pub mod tracker;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio_util::sync::CancellationToken;

pub use nft::{NftApply, NftCommand, NftError};
pub use proxier::{ProxyEvent, SyncStats, SyncTiming};
pub use table::{ConfigError, TableSpec};

/// Errors that stop the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("netproxy configuration: {0}")]
    Config(#[from] ConfigError),
    /// Deleting the table failed.
    #[error("deleting nft table {table}: {source}")]
    Cleanup {
        /// Table name.
        table: String,
        /// What nft said.
        source: NftError,
    },
}

/// Settings of the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// ClusterIP range; traffic to it is DNATed or rejected.
    pub service_cidr: String,
    /// Pod range; DNATed traffic from outside it is masqueraded.
    pub cluster_cidr: String,
    /// This node's name: only endpoints on this node (or of unknown node)
    /// are hairpin candidates. Empty means unknown (all are).
    pub node_name: String,
    /// nft table name (family `ip`).
    pub table_name: String,
    /// CIDRs whose local addresses answer node ports (`--nodeport-addresses`);
    /// empty: every local address except 127.0.0.0/8.
    pub node_port_addresses: Vec<String>,
    /// Address the `healthCheckNodePort` servers listen on (`None`: none).
    pub health_check_bind: Option<IpAddr>,
    /// Least time between syncs.
    pub min_sync_interval: Duration,
    /// Longest time between syncs (periodic recompute and probe).
    pub max_sync_interval: Duration,
    /// Masquerade all ClusterIP traffic (`--masquerade-all`).
    pub masquerade_all: bool,
    /// The `nft` binary.
    pub nft: PathBuf,
    /// The `conntrack` binary that deletes stale UDP/SCTP flows after a
    /// sync (`None`: stale flows are left to time out).
    pub conntrack: Option<PathBuf>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            service_cidr: "10.96.0.0/16".into(),
            cluster_cidr: "10.244.0.0/16".into(),
            node_name: String::new(),
            table_name: "bosun".into(),
            node_port_addresses: Vec::new(),
            health_check_bind: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            min_sync_interval: Duration::from_millis(10),
            max_sync_interval: Duration::from_secs(30),
            masquerade_all: false,
            nft: PathBuf::from("nft"),
            conntrack: Some(PathBuf::from("conntrack")),
        }
    }
}

/// Watches Services and EndpointSlices and keeps the nft table in sync
/// until `token` is cancelled. Returns an error only for bad configuration;
/// watch and nft failures are logged and retried.
pub async fn run(client: kube::Client, config: ProxyConfig, token: CancellationToken) -> Result<(), Error> {
    let nft = Arc::new(NftCommand::new(&config.nft));
    run_with(client, config, nft, token).await
}

/// [`run`] with an injected nft applier (e.g. one running in a netns).
pub async fn run_with(
    client: kube::Client,
    config: ProxyConfig,
    nft: Arc<dyn NftApply>,
    token: CancellationToken,
) -> Result<(), Error> {
    let services = watcher(Api::<Service>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .filter_map(|event| async move { log_watch_error("services", event) })
        .map(ProxyEvent::service);
    let slices = watcher(Api::<EndpointSlice>::all(client), watcher::Config::default())
        .default_backoff()
        .filter_map(|event| async move { log_watch_error("endpointslices", event) })
        .map(ProxyEvent::slice);
    let events = futures::stream::select(services.boxed(), slices.boxed());
    run_events(events, config, nft, token).await
}

/// [`run_with`] fed by the caller's Service and EndpointSlice watch events
/// (e.g. a watch the agent shares with its cluster DNS).
pub async fn run_events(
    events: impl futures::Stream<Item = ProxyEvent> + Send,
    config: ProxyConfig,
    nft: Arc<dyn NftApply>,
    token: CancellationToken,
) -> Result<(), Error> {
    run_events_with_metrics(events, config, nft, metrics::ProxyMetrics::default(), token).await
}

/// [`run_events`] recording its syncs in `metrics`.
pub async fn run_events_with_metrics(
    events: impl futures::Stream<Item = ProxyEvent> + Send,
    config: ProxyConfig,
    nft: Arc<dyn NftApply>,
    metrics: metrics::ProxyMetrics,
    token: CancellationToken,
) -> Result<(), Error> {
    let spec = TableSpec::new(&config.table_name, &config.service_cidr, &config.cluster_cidr)?
        .with_node_port_addresses(&config.node_port_addresses)?
        .with_masquerade_all(config.masquerade_all);
    let timing = SyncTiming { min_interval: config.min_sync_interval, max_interval: config.max_sync_interval };
    tracing::info!(node = %config.node_name, table = %spec.name, service_cidr = %spec.service_cidr,
        cluster_cidr = %spec.cluster_cidr, "netproxy starting");
    let events = std::pin::pin!(events);
    let mut proxier = proxier::Proxier::new(spec, &config.node_name, nft).with_metrics(metrics);
    if let Some(bind) = config.health_check_bind {
        let (sender, receiver) = tokio::sync::watch::channel(health::HealthChecks::new());
        tokio::spawn(health::serve(bind, receiver, token.child_token()));
        proxier = proxier.with_health_checks(sender);
    }
    if let Some(program) = &config.conntrack {
        proxier = proxier.with_conntrack(Arc::new(conntrack::ConntrackCommand::new(program)));
    }
    let stats = proxier.run(events, timing, token).await;
    tracing::info!(stats = ?stats, "netproxy stopped");
    Ok(())
}

fn log_watch_error<E>(resource: &str, event: Result<E, watcher::Error>) -> Option<E> {
    match event {
        Ok(event) => Some(event),
        Err(error) => {
            tracing::warn!(resource, error = %error, "watch failed; retrying with backoff");
            None
        }
    }
}

/// Deletes the proxy table (no error if it does not exist).
pub fn cleanup(table_name: &str, nft: &Path) -> Result<(), Error> {
    cleanup_with(table_name, &NftCommand::new(nft))
}

/// [`cleanup`] with an injected nft applier.
pub fn cleanup_with(table_name: &str, nft: &dyn NftApply) -> Result<(), Error> {
    table::validate_table_name(table_name)?;
    nft.apply(&script::delete_script(table_name)).map_err(|source| Error::Cleanup { table: table_name.into(), source })
}
