//! The agent's cluster DNS: where the in-process server (`bosun-dns`)
//! listens, what it forwards to, and the one Service/EndpointSlice watch it
//! shares with the Service proxy.
//!
//! **Address.** The server listens on the pod bridge's gateway address, the
//! first address of the node's pod CIDR (`10.244.0.1` for `10.244.0.0/24`;
//! host-local IPAM gives the bridge that address), port 53. Every pod
//! reaches it through its default route without any routing or nft rule,
//! it is not reachable from the node's outside network (the node is no
//! open resolver), and it needs no extra interface (this kernel has no
//! `dummy` links). The sockets use `IP_FREEBIND`, since the bridge appears
//! only with the first pod. `--cluster-dns-address` picks another address;
//! `--no-cluster-dns` turns the server off.
//!
//! **Feed.** One list+watch per kind for the whole agent: [`spawn_service_watch`]
//! runs the two watchers once and hands each event to the proxy and to DNS
//! (each keeps its own slim view: the proxy's drops headless Services and
//! endpoint hostnames, which DNS needs).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use bosun_dns::{ResolvConf, WatchEvent};
use bosun_netproxy::ProxyEvent;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// systemd-resolved's list of real upstreams, used when the configured
/// resolv.conf lists only its loopback stub (as kubeadm configures kubelets).
pub const SYSTEMD_RESOLVED_CONF: &str = "/run/systemd/resolve/resolv.conf";
/// Watch events buffered per consumer.
const CHANNEL_DEPTH: usize = 1024;

/// The pod bridge's gateway: the first address of the pod CIDR.
pub fn gateway_of(pod_cidr: &str) -> Option<IpAddr> {
    match pod_cidr.trim().parse::<ipnet::IpNet>().ok()? {
        ipnet::IpNet::V4(net) if net.prefix_len() <= 30 => {
            Some(IpAddr::V4(u32::from(net.network()).checked_add(1)?.into()))
        }
        ipnet::IpNet::V6(net) if net.prefix_len() <= 126 => {
            Some(IpAddr::V6(u128::from(net.network()).checked_add(1)?.into()))
        }
        _ => None,
    }
}

/// The upstreams for forwarded names: `conf`'s non-loopback nameservers,
/// else (only loopback stubs listed) `fallback`'s.
pub fn upstreams(conf: &ResolvConf, fallback: Option<&ResolvConf>) -> Vec<SocketAddr> {
    match conf.upstreams() {
        list if list.is_empty() => fallback.map(ResolvConf::upstreams).unwrap_or_default(),
        list => list,
    }
}

/// Reads a resolv.conf; a missing or unreadable file reads as empty.
pub fn read_resolv_conf(path: &Path) -> ResolvConf {
    match std::fs::read_to_string(path) {
        Ok(text) => ResolvConf::parse(&text),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read resolv.conf; no host nameservers");
            ResolvConf::default()
        }
    }
}

/// Receivers of the shared watch, for whoever asked.
pub struct ServiceWatch {
    /// Events for the proxy.
    pub proxy: Option<mpsc::Receiver<ProxyEvent>>,
    /// Events for DNS.
    pub dns: Option<mpsc::Receiver<WatchEvent>>,
}

/// Starts one Service and one EndpointSlice watch and fans their events out
/// to the consumers asked for (none: nothing is started).
pub fn spawn_service_watch(
    client: kube::Client,
    proxy: bool,
    dns: bool,
    tasks: &TaskTracker,
    token: CancellationToken,
) -> ServiceWatch {
    let (proxy_tx, proxy_rx) = if proxy { channel() } else { (None, None) };
    let (dns_tx, dns_rx) = if dns { channel() } else { (None, None) };
    if proxy || dns {
        tasks.spawn(fan_out(client, proxy_tx, dns_tx, token));
    }
    ServiceWatch { proxy: proxy_rx, dns: dns_rx }
}

fn channel<T>() -> (Option<mpsc::Sender<T>>, Option<mpsc::Receiver<T>>) {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    (Some(tx), Some(rx))
}

enum Either {
    Service(Box<watcher::Event<Service>>),
    Slice(Box<watcher::Event<EndpointSlice>>),
}

async fn fan_out(
    client: kube::Client,
    mut proxy: Option<mpsc::Sender<ProxyEvent>>,
    mut dns: Option<mpsc::Sender<WatchEvent>>,
    token: CancellationToken,
) {
    let services = watcher(kube::Api::<Service>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .filter_map(|event| async move { logged("services", event) })
        .map(|e| Either::Service(Box::new(e)));
    let slices = watcher(kube::Api::<EndpointSlice>::all(client), watcher::Config::default())
        .default_backoff()
        .filter_map(|event| async move { logged("endpointslices", event) })
        .map(|e| Either::Slice(Box::new(e)));
    let mut events = futures::stream::select(services.boxed(), slices.boxed());
    loop {
        let event = tokio::select! {
            () = token.cancelled() => return,
            event = events.next() => match event { Some(event) => event, None => return },
        };
        let (to_proxy, to_dns) = (proxy.is_some(), dns.is_some());
        let (for_proxy, for_dns) = match event {
            Either::Service(e) => {
                let (p, d) = split(e, to_proxy, to_dns);
                (p.map(ProxyEvent::Service), d.map(WatchEvent::Service))
            }
            Either::Slice(e) => {
                let (p, d) = split(e, to_proxy, to_dns);
                (p.map(ProxyEvent::Slice), d.map(WatchEvent::Slice))
            }
        };
        if let (Some(tx), Some(event)) = (&proxy, for_proxy) {
            if tx.send(event).await.is_err() {
                proxy = None;
            }
        }
        if let (Some(tx), Some(event)) = (&dns, for_dns) {
            if tx.send(event).await.is_err() {
                dns = None;
            }
        }
        if proxy.is_none() && dns.is_none() {
            return;
        }
    }
}

/// The event for each consumer; copied only when both consume.
fn split<E: Clone>(event: E, proxy: bool, dns: bool) -> (Option<E>, Option<E>) {
    match (proxy, dns) {
        (true, true) => (Some(event.clone()), Some(event)),
        (true, false) => (Some(event), None),
        (false, _) => (None, Some(event)),
    }
}

fn logged<E>(resource: &str, event: Result<E, watcher::Error>) -> Option<E> {
    match event {
        Ok(event) => Some(event),
        Err(error) => {
            tracing::warn!(resource, %error, "watch failed; retrying with backoff");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_listens_on_the_bridge_gateway() {
        assert_eq!(gateway_of("10.244.0.0/24"), Some("10.244.0.1".parse().unwrap()));
        assert_eq!(gateway_of(" 10.202.7.0/24"), Some("10.202.7.1".parse().unwrap()));
        assert_eq!(gateway_of("fd00:10::/64"), Some("fd00:10::1".parse().unwrap()));
        assert_eq!(gateway_of("10.244.0.0/31"), None);
        assert_eq!(gateway_of("bogus"), None);
    }

    #[test]
    fn a_loopback_stub_falls_back_to_systemd_resolved_upstreams() {
        let stub = ResolvConf::parse("nameserver 127.0.0.53\n");
        let real = ResolvConf::parse("nameserver 192.0.2.1\nnameserver 127.0.0.1\n");
        assert_eq!(upstreams(&stub, Some(&real)), vec!["192.0.2.1:53".parse::<SocketAddr>().unwrap()]);
        assert_eq!(upstreams(&stub, None), Vec::<SocketAddr>::new());
        let direct = ResolvConf::parse("nameserver 198.51.100.1\n");
        assert_eq!(upstreams(&direct, Some(&real)), vec!["198.51.100.1:53".parse::<SocketAddr>().unwrap()]);
    }
}
