//! bosun-dns: the cluster DNS server the node agent runs in-process, so
//! Services resolve by name with nothing deployed (upstream needs CoreDNS).
//!
//! It owns: Kubernetes' DNS schema for Services and pods in the cluster
//! domain ([`names`], [`answer`]: A/AAAA, SRV for named ports, headless
//! Services with per-endpoint names, ExternalName CNAMEs, NXDOMAIN/NODATA
//! with the zone's SOA), a slim cache of Services and EndpointSlices fed by
//! the caller's watch events ([`zone`]), forwarding of every other name to
//! the node's upstream resolvers ([`forward`], upstreams from the host's
//! `resolv.conf` via [`resolv`]), and the UDP/TCP sockets ([`server`]).
//! It must not watch the API itself (the agent shares one Service and
//! EndpointSlice watch between the proxy and DNS), write pods' resolv.conf
//! (the agent does), or cache upstream answers.
//!
//! Pipeline: watch events -> [`zone::Zone`] (one writer) -> per query
//! [`answer::decide`] (pure) -> reply bytes, or [`forward::Forwarder`].
//! Wire format via `hickory-proto`; the server loop is our own (about 150
//! lines) rather than `hickory-server`'s catalog/authority framework,
//! whose zones are static record sets, not a live view of Services.

pub mod answer;
pub mod forward;
pub mod names;
pub mod resolv;
pub mod server;
pub mod zone;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;
use tokio_util::sync::CancellationToken;

pub use answer::ClusterDomain;
pub use forward::Forwarder;
pub use resolv::ResolvConf;
pub use zone::Zone;

/// Per-upstream timeout of a forwarded query (glibc's default retrans).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// Errors that keep the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster domain is not a DNS name.
    #[error("cluster domain {0:?} is not a valid DNS name")]
    Domain(String),
    /// A socket could not be bound.
    #[error("binding the cluster DNS {protocol} socket on {addr}: {source}")]
    Bind {
        /// `udp` or `tcp`.
        protocol: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A Service or EndpointSlice watch event (boxed: Service events are large).
#[derive(Debug)]
pub enum WatchEvent {
    /// Service event.
    Service(Box<Event<Service>>),
    /// EndpointSlice event.
    Slice(Box<Event<EndpointSlice>>),
}

/// Settings of the server.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Where to listen (UDP and TCP); port 0 picks one (tests).
    pub listen: SocketAddr,
    /// The cluster domain, e.g. `cluster.local`.
    pub domain: String,
    /// Upstream resolvers for other names.
    pub upstreams: Vec<SocketAddr>,
    /// Per-upstream timeout.
    pub forward_timeout: Duration,
}

/// A bound server, not yet serving.
pub struct DnsServer {
    udp: Arc<tokio::net::UdpSocket>,
    tcp: tokio::net::TcpListener,
    shared: Arc<server::Shared>,
}

impl DnsServer {
    /// Binds UDP and TCP on `config.listen` (the same port for both).
    pub fn bind(config: &DnsConfig) -> Result<Self, Error> {
        let domain = ClusterDomain::new(&config.domain).ok_or_else(|| Error::Domain(config.domain.clone()))?;
        let udp = server::bind_udp(config.listen).map_err(|source| Error::Bind {
            protocol: "udp",
            addr: config.listen,
            source,
        })?;
        let addr = udp.local_addr().map_err(|source| Error::Bind { protocol: "udp", addr: config.listen, source })?;
        let tcp = server::bind_tcp(addr).map_err(|source| Error::Bind { protocol: "tcp", addr, source })?;
        let forwarder = Forwarder::new(config.upstreams.clone(), config.forward_timeout);
        let shared = server::Shared::new(Arc::default(), domain, forwarder);
        Ok(Self { udp: Arc::new(udp), tcp, shared: Arc::new(shared) })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// The zone it answers from (e.g. to fill it without a watch).
    pub fn zone(&self) -> Arc<RwLock<Zone>> {
        self.shared.zone.clone()
    }

    /// Serves, folding `events` into the zone, until `token` is cancelled.
    pub async fn run(self, events: impl Stream<Item = WatchEvent> + Send, token: CancellationToken) {
        let Self { udp, tcp, shared } = self;
        tracing::info!(listen = ?udp.local_addr().ok(), domain = %shared.domain.name(),
            upstreams = ?shared.forwarder.upstreams(), "cluster DNS serving");
        let udp_task = tokio::spawn(server::serve_udp(udp, shared.clone(), token.clone()));
        let tcp_task = tokio::spawn(server::serve_tcp(tcp, shared.clone(), token.clone()));
        let mut events = std::pin::pin!(events);
        loop {
            let event = tokio::select! {
                () = token.cancelled() => break,
                event = events.next() => match event {
                    Some(event) => event,
                    None => { token.cancelled().await; break; }
                },
            };
            let mut zone = shared.zone.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            match event {
                WatchEvent::Service(event) => zone.service_event(*event),
                WatchEvent::Slice(event) => zone.slice_event(*event),
            }
        }
        let _ = tokio::join!(udp_task, tcp_task);
        tracing::info!("cluster DNS stopped");
    }
}
