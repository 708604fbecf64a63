//! Relays a query for a name outside the cluster domain to the node's
//! upstream resolvers and returns their reply as it came.
//!
//! Each query gets its own connected UDP socket, so replies cannot be
//! confused between queries and the client's message ID stays untouched.
//! Upstreams are tried in order, each for at most `timeout`. A truncated
//! UDP reply to a client that asked over TCP is fetched again over TCP.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Largest message we accept from an upstream over UDP.
const MAX_UDP_REPLY: usize = 4096;
/// Header bit `TC` (truncated) in the third byte.
const TC_BIT: u8 = 0x02;

/// Why a query could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host's resolv.conf names no usable (non-loopback) resolver.
    #[error("no upstream resolver (the host's resolv.conf lists none that is not loopback)")]
    NoUpstreams,
    /// Every upstream failed; the last failure.
    #[error("upstream {upstream}: {source}")]
    Io {
        /// The upstream that failed last.
        upstream: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// Every upstream timed out (or failed); the last one tried.
    #[error("upstream {upstream} did not answer within {timeout:?}")]
    Timeout {
        /// The upstream tried last.
        upstream: SocketAddr,
        /// The per-upstream timeout.
        timeout: Duration,
    },
}

/// The upstream resolvers and how long to wait for each.
#[derive(Debug, Clone)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
}

impl Forwarder {
    /// Forwards to `upstreams` in order, `timeout` each.
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration) -> Self {
        Self { upstreams, timeout }
    }

    /// The upstreams, in order.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Forwards `query` (wire format); `over_tcp` if the client asked over
    /// TCP (then a truncated UDP reply is fetched again over TCP).
    pub async fn forward(&self, query: &[u8], over_tcp: bool) -> Result<Vec<u8>, Error> {
        let mut last = Error::NoUpstreams;
        for upstream in &self.upstreams {
            let attempt = async {
                let reply = udp_exchange(*upstream, query).await?;
                if over_tcp && reply.get(2).is_some_and(|b| b & TC_BIT != 0) {
                    return tcp_exchange(*upstream, query).await;
                }
                Ok(reply)
            };
            match tokio::time::timeout(self.timeout, attempt).await {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(source)) => last = Error::Io { upstream: *upstream, source },
                Err(_) => last = Error::Timeout { upstream: *upstream, timeout: self.timeout },
            }
        }
        Err(last)
    }
}

async fn udp_exchange(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; MAX_UDP_REPLY];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Only the reply to this query (same ID) counts.
        if n >= 12 && buf.get(..2) == query.get(..2) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp_exchange(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    let len = u16::try_from(query.len()).map_err(|_| std::io::Error::other("query longer than 65535 bytes"))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    read_framed(&mut stream).await
}

/// Reads one length-prefixed DNS message (RFC 1035 4.2.2).
pub async fn read_framed<R: AsyncReadExt + Unpin>(stream: &mut R) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn relays_the_reply_with_the_same_id_and_tries_the_next_upstream() {
        let dead = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let live = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (dead_addr, live_addr) = (dead.local_addr().unwrap(), live.local_addr().unwrap());
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = live.recv_from(&mut buf).await.unwrap();
            // A stray datagram with another ID first, then the reply.
            live.send_to(&[9, 9, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0], from).await.unwrap();
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80;
            live.send_to(&reply, from).await.unwrap();
        });
        let forwarder = Forwarder::new(vec![dead_addr, live_addr], Duration::from_millis(300));
        let query = [0x12, 0x34, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let reply = forwarder.forward(&query, false).await.unwrap();
        assert_eq!(reply[..3], [0x12, 0x34, 0x81]);
        drop(dead);
    }

    #[tokio::test]
    async fn fails_without_upstreams() {
        let forwarder = Forwarder::new(Vec::new(), Duration::from_millis(10));
        assert!(matches!(forwarder.forward(&[0; 12], false).await, Err(Error::NoUpstreams)));
    }
}
