//! The sockets: one UDP socket and one TCP listener on the same address,
//! and the loops that answer on them until cancelled.
//!
//! Cluster names are answered inline from the zone (a read lock held for
//! the lookup only, never across an `.await`); forwarded queries run as
//! their own tasks, at most [`MAX_FORWARDS`] at once (beyond that the
//! client gets SERVFAIL at once rather than a growing queue). TCP
//! connections are bounded too and closed after [`TCP_IDLE`] without a
//! query.
//!
//! The sockets are bound with `IP_FREEBIND`, so the server can listen on
//! the pod bridge's gateway address before the CNI plugin has created the
//! bridge (it appears with the first pod).

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::answer::{decide, encode, udp_limit, ClusterDomain, Decision};
use crate::forward::{read_framed, Forwarder};
use crate::zone::Zone;

/// Forwarded queries in flight at most.
pub const MAX_FORWARDS: usize = 1024;
/// TCP connections open at most.
pub const MAX_TCP_CONNECTIONS: usize = 128;
/// A TCP connection without a query for this long is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// Largest DNS message over TCP.
const MAX_TCP_MESSAGE: usize = 65535;

/// What the loops share.
pub struct Shared {
    /// The cluster zone (one writer: the watch fold).
    pub zone: Arc<RwLock<Zone>>,
    /// The cluster domain.
    pub domain: ClusterDomain,
    /// Where other names go.
    pub forwarder: Forwarder,
    forwards: Arc<Semaphore>,
}

impl Shared {
    /// Shared state of one server.
    pub fn new(zone: Arc<RwLock<Zone>>, domain: ClusterDomain, forwarder: Forwarder) -> Self {
        Self { zone, domain, forwarder, forwards: Arc::new(Semaphore::new(MAX_FORWARDS)) }
    }
}

/// Binds a UDP socket with `IP_FREEBIND` (the address may not exist yet).
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
    set_freebind(&socket, addr)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Binds a TCP listener with `IP_FREEBIND` and `SO_REUSEADDR`.
pub fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    set_freebind(&socket, addr)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

fn set_freebind(socket: &socket2::Socket, addr: SocketAddr) -> std::io::Result<()> {
    match addr {
        SocketAddr::V4(_) => socket.set_freebind_v4(true),
        SocketAddr::V6(_) => socket.set_freebind_v6(true),
    }
}

/// The outcome of one datagram or TCP message.
enum Handled {
    Reply(Vec<u8>),
    Forward(Message),
    Nothing,
}

fn handle(shared: &Shared, bytes: &[u8], over_udp: bool) -> Handled {
    let Ok(request) = Message::from_vec(bytes) else {
        return Handled::Nothing;
    };
    let decision = {
        let zone = shared.zone.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        decide(&request, &zone, &shared.domain)
    };
    match decision {
        Decision::Reply(reply) => {
            let limit = if over_udp { udp_limit(&request) } else { MAX_TCP_MESSAGE };
            encode(&reply, limit).map_or(Handled::Nothing, Handled::Reply)
        }
        Decision::Forward => Handled::Forward(request),
        Decision::Ignore => Handled::Nothing,
    }
}

/// SERVFAIL for a query that could not be forwarded.
fn servfail(request: &Message) -> Option<Vec<u8>> {
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.response_code = ResponseCode::ServFail;
    reply.add_queries(request.queries.iter().cloned());
    reply.to_vec().ok()
}

async fn forward(shared: &Shared, request: &Message, bytes: &[u8], over_tcp: bool) -> Option<Vec<u8>> {
    match shared.forwarder.forward(bytes, over_tcp).await {
        Ok(reply) => Some(reply),
        Err(error) => {
            let name = request.queries.first().map(|q| q.name().to_ascii()).unwrap_or_default();
            tracing::debug!(%error, %name, "forwarding failed");
            servfail(request)
        }
    }
}

/// Answers datagrams on `socket` until `token` is cancelled.
pub async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>, token: CancellationToken) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, client) = tokio::select! {
            () = token.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(error) => {
                    tracing::debug!(%error, "dns: udp receive failed");
                    continue;
                }
            },
        };
        let bytes = buf.get(..n).unwrap_or_default();
        match handle(&shared, bytes, true) {
            Handled::Reply(reply) => {
                let _ = socket.send_to(&reply, client).await;
            }
            Handled::Forward(request) => {
                let Ok(permit) = shared.forwards.clone().try_acquire_owned() else {
                    if let Some(reply) = servfail(&request) {
                        let _ = socket.send_to(&reply, client).await;
                    }
                    continue;
                };
                let (socket, shared, bytes) = (socket.clone(), shared.clone(), bytes.to_vec());
                tokio::spawn(async move {
                    if let Some(reply) = forward(&shared, &request, &bytes, false).await {
                        let _ = socket.send_to(&reply, client).await;
                    }
                    drop(permit);
                });
            }
            Handled::Nothing => {}
        }
    }
}

/// Accepts TCP connections on `listener` until `token` is cancelled.
pub async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>, token: CancellationToken) {
    let connections = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            () = token.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::debug!(%error, "dns: tcp accept failed");
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else { continue };
        let (shared, token) = (shared.clone(), token.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = serve_connection(stream, &shared) => {}
            }
            drop(permit);
        });
    }
}

async fn serve_connection(mut stream: TcpStream, shared: &Shared) {
    loop {
        let Ok(Ok(bytes)) = tokio::time::timeout(TCP_IDLE, read_framed(&mut stream)).await else { return };
        let reply = match handle(shared, &bytes, false) {
            Handled::Reply(reply) => reply,
            Handled::Forward(request) => match forward(shared, &request, &bytes, true).await {
                Some(reply) => reply,
                None => return,
            },
            Handled::Nothing => return,
        };
        let Ok(len) = u16::try_from(reply.len()) else { return };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}
