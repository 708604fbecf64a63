//! Node ports, external IPs and load-balancer IPs with real nft, inside
//! throwaway network namespaces.
//!
//! ```text
//!   pod1 (10.244.1.2, "pod-a") --veth--+
//!   pod2 (10.244.1.3, "pod-b") --veth--+-- node (10.244.1.1 on each pod veth;
//!                                      |    192.0.2.1 and 198.18.0.1 on up0;
//!                                      |    runs the proxy table)
//!   client (192.0.2.2, off the node) --+-- up0/up1
//! ```
//! The pods have no default route, only routes to the node (10.244.1.1,
//! 192.0.2.1) and the LB range: a reply to the off-node client reaches it
//! only if the node masqueraded the connection, which is what the
//! masquerade rules are for (in a real cluster the endpoint may sit on
//! another node).

#[path = "support/netns.rs"]
mod netns;

use std::io::{ErrorKind, Read};
use std::net::{SocketAddrV4, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use bosun_netproxy::conntrack::ConntrackCommand;
use bosun_netproxy::health::HealthChecks;
use bosun_netproxy::model::SERVICE_NAME_LABEL;
use bosun_netproxy::proxier::Proxier;
use bosun_netproxy::{cleanup_with, NftCommand, ProxyEvent, TableSpec};
use kube::runtime::watcher::Event;
use netns::Namespaces;
use serde_json::{json, Value};

const TABLE: &str = "bosun_ext";

fn service_event(name: &str, spec: Value, status: Value) -> ProxyEvent {
    let object = json!({"metadata": {"namespace": "default", "name": name}, "spec": spec, "status": status});
    ProxyEvent::service(Event::Apply(serde_json::from_value(object).expect("valid Service")))
}

/// `web`: NodePort 30080, an external IP and an LB IP open to `ranges`.
fn web(ranges: &[&str]) -> ProxyEvent {
    let spec = json!({
        "type": "LoadBalancer", "clusterIP": "10.96.0.10", "externalIPs": ["203.0.113.10"],
        "loadBalancerSourceRanges": ranges,
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}]
    });
    service_event("web", spec, json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.20"}]}}))
}

/// `local`: LoadBalancer with `externalTrafficPolicy: Local` and a
/// health-check node port.
fn local(health_port: u16) -> ProxyEvent {
    let spec = json!({
        "type": "LoadBalancer", "clusterIP": "10.96.0.12", "externalTrafficPolicy": "Local",
        "healthCheckNodePort": health_port,
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30082}]
    });
    service_event("local", spec, json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.30"}]}}))
}

/// A slice of `service` with each endpoint on the given node.
fn slice_on(service: &str, endpoints: &[(&str, &str)]) -> ProxyEvent {
    let endpoints: Vec<_> = endpoints.iter().map(|(ip, node)| json!({"addresses": [ip], "nodeName": node})).collect();
    let object = json!({
        "metadata": {"namespace": "default", "name": format!("{service}-x1"), "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints
    });
    ProxyEvent::slice(Event::Apply(serde_json::from_value(object).expect("valid EndpointSlice")))
}

/// GETs the health check; returns the status code and the JSON body.
async fn health(port: u16) -> anyhow::Result<(u16, Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n").await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.split(' ').nth(1).context("status line")?.parse()?;
    let body = response.split("\r\n\r\n").nth(1).context("body")?;
    Ok((status, serde_json::from_str(body).with_context(|| format!("body of {response:?}"))?))
}

/// Waits until the health check answers `status` with `count`.
async fn expect_health(port: u16, status: u16, count: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = health(port).await;
        if let Ok((got, body)) = &answer {
            if *got == status && body["localEndpoints"] == count {
                ensure!(body["service"] == json!({"namespace": "default", "name": "local"}), "{body}");
                return Ok(());
            }
        }
        ensure!(Instant::now() < deadline, "health check on {port}: want {status} with {count}, got {answer:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `sticky`: NodePort 30083 with ClientIP affinity.
fn sticky() -> ProxyEvent {
    let spec = json!({
        "type": "NodePort", "clusterIP": "10.96.0.13", "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30083}]
    });
    service_event("sticky", spec, json!({}))
}

/// Asks `count` times; every answer must come from the same pod.
fn expect_pinned(ns: &Namespaces, from: &str, addr: &str, count: usize) -> anyhow::Result<String> {
    let answers = ns.enter(from, || (0..count).map(|_| ask(addr)).collect::<std::io::Result<Vec<_>>>())?;
    let answers = answers.with_context(|| format!("{from} -> {addr}"))?;
    ensure!(answers.iter().all(|answer| *answer == answers[0]), "{from} -> {addr}: not pinned: {answers:?}");
    Ok(answers[0].clone())
}

/// `empty`: a NodePort service with no endpoints.
fn empty() -> ProxyEvent {
    let spec = json!({"type": "NodePort", "clusterIP": "10.96.0.11",
                      "ports": [{"name": "http", "port": 80, "nodePort": 30081}]});
    service_event("empty", spec, json!({}))
}

fn slice(service: &str, ips: &[&str]) -> ProxyEvent {
    let endpoints: Vec<_> = ips.iter().map(|ip| json!({"addresses": [ip], "nodeName": "node-1"})).collect();
    let object = json!({
        "metadata": {"namespace": "default", "name": format!("{service}-x1"), "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints
    });
    ProxyEvent::slice(Event::Apply(serde_json::from_value(object).expect("valid EndpointSlice")))
}

fn ask(addr: &str) -> std::io::Result<String> {
    let addr: SocketAddrV4 = addr.parse().map_err(std::io::Error::other)?;
    let mut stream = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.trim().to_owned())
}

/// Asks `count` times; both pods must answer, nothing else.
fn expect_balanced(ns: &Namespaces, from: &str, addr: &str, count: usize) -> anyhow::Result<()> {
    let answers = ns.enter(from, || (0..count).map(|_| ask(addr)).collect::<std::io::Result<Vec<_>>>())?;
    let answers = answers.with_context(|| format!("{from} -> {addr}"))?;
    let a = answers.iter().filter(|answer| *answer == "pod-a").count();
    let b = answers.iter().filter(|answer| *answer == "pod-b").count();
    ensure!(a + b == count && a > 0 && b > 0, "{from} -> {addr}: not balanced over both pods: {answers:?}");
    Ok(())
}

fn expect_refused(ns: &Namespaces, from: &str, addr: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let answer = ns.enter(from, || ask(addr))?;
    let refused = matches!(&answer, Err(e) if e.kind() == ErrorKind::ConnectionRefused);
    ensure!(refused, "{from} -> {addr}: expected connection refused, got {answer:?}");
    ensure!(started.elapsed() < Duration::from_millis(500), "{from} -> {addr}: slow reject");
    Ok(())
}

fn build(ns: &mut Namespaces) -> anyhow::Result<()> {
    ns.exec("node", &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    for (pod, ip, answer) in [("pod1", "10.244.1.2", "pod-a"), ("pod2", "10.244.1.3", "pod-b")] {
        let host_if = format!("h{pod}");
        let pod_ns = ns.name(pod);
        ns.exec("node", &["ip", "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &pod_ns])?;
        ns.exec("node", &["ip", "addr", "add", "10.244.1.1/32", "dev", &host_if])?;
        ns.exec("node", &["ip", "link", "set", &host_if, "up"])?;
        ns.exec("node", &["ip", "route", "add", &format!("{ip}/32"), "dev", &host_if])?;
        ns.exec(pod, &["ip", "link", "set", "eth0", "up"])?;
        ns.exec(pod, &["ip", "addr", "add", &format!("{ip}/32"), "dev", "eth0"])?;
        ns.exec(pod, &["ip", "route", "add", "10.244.1.1/32", "dev", "eth0"])?;
        // The node IP and the LB range, but not the client's network.
        for dst in ["192.0.2.1/32", "203.0.113.0/24"] {
            ns.exec(pod, &["ip", "route", "add", dst, "via", "10.244.1.1", "dev", "eth0"])?;
        }
        ns.spawn(pod, &["busybox", "nc", "-ll", "-p", "8080", "-e", "echo", answer])?;
    }
    let client_ns = ns.name("client");
    ns.exec("node", &["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", &client_ns])?;
    ns.exec("node", &["ip", "addr", "add", "192.0.2.1/24", "dev", "up0"])?;
    ns.exec("node", &["ip", "addr", "add", "198.18.0.1/32", "dev", "up0"])?;
    ns.exec("node", &["ip", "link", "set", "up0", "up"])?;
    ns.exec("node", &["ip", "route", "add", "default", "via", "192.0.2.2"])?;
    ns.exec("client", &["ip", "addr", "add", "192.0.2.2/24", "dev", "up1"])?;
    ns.exec("client", &["ip", "link", "set", "up1", "up"])?;
    ns.exec("client", &["ip", "route", "add", "198.18.0.1/32", "dev", "up1"])?;
    ns.exec("client", &["ip", "route", "add", "203.0.113.0/24", "via", "192.0.2.1"])?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ns.enter("node", || ask("10.244.1.2:8080").is_ok() && ask("10.244.1.3:8080").is_ok())? {
        ensure!(Instant::now() < deadline, "test servers did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ports_external_and_lb_ips_reach_both_pods_and_lb_ranges_filter() -> anyhow::Result<()> {
    let mut ns = Namespaces::create(&["node", "pod1", "pod2", "client"])?;
    build(&mut ns)?;
    let spec = TableSpec::new(TABLE, "10.96.0.0/16", "10.244.0.0/16")?.with_node_port_addresses(&["192.0.2.1/32"])?;
    let nft = NftCommand::with_prefix("nft", ns.prefix("node"));
    let conntrack = ConntrackCommand::with_prefix("conntrack", ns.prefix("node"));
    let mut proxier = Proxier::new(spec, "node-1", Arc::new(nft.clone())).with_conntrack(Arc::new(conntrack));
    for event in [
        ProxyEvent::service(Event::Init),
        ProxyEvent::service(Event::InitDone),
        ProxyEvent::slice(Event::Init),
        ProxyEvent::slice(Event::InitDone),
        web(&["192.0.2.0/24"]),
        slice("web", &["10.244.1.2", "10.244.1.3"]),
        empty(),
    ] {
        proxier.observe(event);
    }
    proxier.sync(false).await;
    ensure!(proxier.stats().applied == 1, "full load failed: {:?}", proxier.stats());

    // Off-node client: node port, external IP, LB IP (source in range).
    for addr in ["192.0.2.1:30080", "203.0.113.10:80", "203.0.113.20:80"] {
        expect_balanced(&ns, "client", addr, 30)?;
    }
    // The node itself (output path) and a pod reaching itself (hairpin).
    expect_balanced(&ns, "node", "192.0.2.1:30080", 30)?;
    expect_balanced(&ns, "pod1", "192.0.2.1:30080", 30)?;
    expect_balanced(&ns, "pod1", "203.0.113.10:80", 30)?;
    // Not on loopback, not on an address outside --nodeport-addresses, and
    // a node port without endpoints is rejected fast.
    expect_refused(&ns, "node", "127.0.0.1:30080")?;
    expect_refused(&ns, "client", "198.18.0.1:30080")?;
    expect_refused(&ns, "client", "192.0.2.1:30081")?;

    // Narrow the LB's source ranges: the client is dropped at the LB IP,
    // while the node port and external IP stay open.
    proxier.observe(web(&["10.0.0.0/8", "10.1.0.0/16"]));
    proxier.sync(false).await;
    ensure!(proxier.stats().applied == 2 && proxier.stats().full == 1, "diff failed: {:?}", proxier.stats());
    let dropped = ns.enter("client", || ask("203.0.113.20:80"))?;
    ensure!(matches!(&dropped, Err(e) if e.kind() == ErrorKind::TimedOut), "expected a drop, got {dropped:?}");
    expect_balanced(&ns, "client", "192.0.2.1:30080", 10)?;
    expect_balanced(&ns, "client", "203.0.113.10:80", 10)?;

    // Back to a range with the client; then the service loses its endpoints.
    proxier.observe(web(&["192.0.2.2/32"]));
    proxier.observe(slice("web", &[]));
    proxier.sync(false).await;
    ensure!(proxier.stats().full == 1 && proxier.stats().failed == 0, "diff failed: {:?}", proxier.stats());
    for addr in ["192.0.2.1:30080", "203.0.113.10:80", "203.0.113.20:80"] {
        expect_refused(&ns, "client", addr)?;
    }
    proxier.observe(slice("web", &["10.244.1.2", "10.244.1.3"]));
    proxier.sync(false).await;
    expect_balanced(&ns, "client", "203.0.113.20:80", 20)?;

    check_affinity(&ns, &mut proxier).await?;
    let udp_servers = UdpServers::start(&ns)?;
    check_udp_flows(&ns, &mut proxier).await?;
    check_local_policy(&ns, proxier).await?;
    cleanup_with(TABLE, &nft)?;
    check_masquerade_all(&ns, &nft).await?;
    cleanup_with(TABLE, &nft)?;
    drop(udp_servers);
    Ok(())
}

/// ClientIP affinity, added by a diff sync: the node port and the
/// ClusterIP each pin the client; when its endpoint goes, it is re-pinned
/// to the other one.
async fn check_affinity(ns: &Namespaces, proxier: &mut Proxier) -> anyhow::Result<()> {
    proxier.observe(sticky());
    proxier.observe(slice("sticky", &["10.244.1.2", "10.244.1.3"]));
    proxier.sync(false).await;
    ensure!(proxier.stats().full == 1 && proxier.stats().failed == 0, "diff failed: {:?}", proxier.stats());
    let pinned = expect_pinned(ns, "client", "192.0.2.1:30083", 20)?;
    expect_pinned(ns, "node", "10.96.0.13:80", 20)?;
    let (left, other) = if pinned == "pod-a" { ("10.244.1.3", "pod-b") } else { ("10.244.1.2", "pod-a") };
    proxier.observe(slice("sticky", &[left]));
    proxier.sync(false).await;
    ensure!(proxier.stats().full == 1 && proxier.stats().failed == 0, "diff failed: {:?}", proxier.stats());
    let repinned = expect_pinned(ns, "client", "192.0.2.1:30083", 10)?;
    ensure!(repinned == other, "after its endpoint left, the client went to {repinned}, not {other}");
    // Both endpoints back: the client stays where it is.
    proxier.observe(slice("sticky", &["10.244.1.2", "10.244.1.3"]));
    proxier.sync(false).await;
    ensure!(expect_pinned(ns, "client", "192.0.2.1:30083", 20)? == other, "a new endpoint must not move a client");
    Ok(())
}

/// `dns`: a UDP ClusterIP service, port 53 -> 5353.
fn dns(endpoints: &[&str]) -> [ProxyEvent; 2] {
    let spec = json!({"clusterIP": "10.96.0.53", "ports": [{"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}]});
    let endpoints: Vec<_> = endpoints.iter().map(|ip| json!({"addresses": [ip], "nodeName": "node-1"})).collect();
    let object = json!({
        "metadata": {"namespace": "default", "name": "dns-x1", "labels": {SERVICE_NAME_LABEL: "dns"}},
        "addressType": "IPv4",
        "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}],
        "endpoints": endpoints
    });
    let slice = ProxyEvent::slice(Event::Apply(serde_json::from_value(object).expect("valid EndpointSlice")));
    [service_event("dns", spec, json!({})), slice]
}

/// Sends a datagram from `client` to `addr` until one is answered.
fn ask_udp(client: &UdpSocket, addr: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 64];
    loop {
        client.send_to(b"q", addr)?;
        match client.recv(&mut buf) {
            Ok(n) => return Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
        ensure!(Instant::now() < deadline, "no answer from {addr}");
    }
}

/// UDP servers in pod1 and pod2 on port 5353 answering `pod-a <peer ip>`
/// and `pod-b <peer ip>`; stopped on drop.
struct UdpServers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl UdpServers {
    fn start(ns: &Namespaces) -> anyhow::Result<Self> {
        let mut servers = Self { stop: Arc::new(AtomicBool::new(false)), threads: Vec::new() };
        for (pod, name) in [("pod1", "pod-a"), ("pod2", "pod-b")] {
            let socket = ns.enter(pod, || UdpSocket::bind("0.0.0.0:5353"))??;
            socket.set_read_timeout(Some(Duration::from_millis(100)))?;
            let stop = servers.stop.clone();
            servers.threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                        let _ = socket.send_to(format!("{name} {}", peer.ip()).as_bytes(), peer);
                    }
                }
            }));
        }
        Ok(servers)
    }
}

impl Drop for UdpServers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A UDP client keeps its source port while the service's endpoint is
/// replaced: its next datagram reaches the new endpoint only because the
/// sync deleted the old flow's conntrack entry (the old endpoint still
/// answers, so a kept entry would show). A pod's ClusterIP traffic keeps
/// its source address (no `--masquerade-all`).
async fn check_udp_flows(ns: &Namespaces, proxier: &mut Proxier) -> anyhow::Result<()> {
    let client = ns.enter("node", || UdpSocket::bind("0.0.0.0:40053"))??;
    client.set_read_timeout(Some(Duration::from_millis(500)))?;
    for event in dns(&["10.244.1.2"]) {
        proxier.observe(event);
    }
    proxier.sync(false).await;
    let answer = ask_udp(&client, "10.96.0.53:53")?;
    ensure!(answer.starts_with("pod-a "), "first answer not from pod-a: {answer}");
    for event in dns(&["10.244.1.3"]) {
        proxier.observe(event);
    }
    proxier.sync(false).await;
    ensure!(proxier.stats().full == 1 && proxier.stats().failed == 0, "diff failed: {:?}", proxier.stats());
    let answer = ask_udp(&client, "10.96.0.53:53")?;
    ensure!(answer.starts_with("pod-b "), "the same UDP flow still goes to {answer} after its endpoint left");
    // As a pod's default route would: pod1 reaches the service range, and
    // pod2 answers pod1 through the node.
    ns.exec("pod1", &["ip", "route", "add", "10.96.0.0/16", "via", "10.244.1.1", "dev", "eth0"])?;
    ns.exec("pod2", &["ip", "route", "add", "10.244.1.2/32", "via", "10.244.1.1", "dev", "eth0"])?;
    let from_pod = ns.enter("pod1", || UdpSocket::bind("0.0.0.0:0"))??;
    from_pod.set_read_timeout(Some(Duration::from_millis(500)))?;
    let answer = ask_udp(&from_pod, "10.96.0.53:53")?;
    ensure!(answer == "pod-b 10.244.1.2", "pod to pod through the ClusterIP: {answer}");
    Ok(())
}

/// `--masquerade-all`: the same pod-to-ClusterIP datagram arrives from the
/// node's address (a fresh table with the flag).
async fn check_masquerade_all(ns: &Namespaces, nft: &NftCommand) -> anyhow::Result<()> {
    let spec = TableSpec::new(TABLE, "10.96.0.0/16", "10.244.0.0/16")?.with_masquerade_all(true);
    let mut proxier = Proxier::new(spec, "node-1", Arc::new(nft.clone()));
    let lists = [
        ProxyEvent::service(Event::Init),
        ProxyEvent::service(Event::InitDone),
        ProxyEvent::slice(Event::Init),
        ProxyEvent::slice(Event::InitDone),
    ];
    for event in lists.into_iter().chain(dns(&["10.244.1.3"])) {
        proxier.observe(event);
    }
    proxier.sync(false).await;
    ensure!(proxier.stats().applied == 1, "full load failed: {:?}", proxier.stats());
    let from_pod = ns.enter("pod1", || UdpSocket::bind("0.0.0.0:0"))??;
    from_pod.set_read_timeout(Some(Duration::from_millis(500)))?;
    let answer = ask_udp(&from_pod, "10.96.0.53:53")?;
    ensure!(answer == "pod-b 10.244.1.1", "with --masquerade-all, pod to pod through the ClusterIP: {answer}");
    Ok(())
}

/// `externalTrafficPolicy: Local`: only this node's endpoint serves the
/// node port and LB IP, without masquerading (so pod1 gets a route back to
/// the client, as a real pod's default route); none here: dropped; and the
/// health check reports the count.
async fn check_local_policy(ns: &Namespaces, proxier: Proxier) -> anyhow::Result<()> {
    ns.exec("pod1", &["ip", "route", "add", "192.0.2.2/32", "via", "10.244.1.1", "dev", "eth0"])?;
    let health_port = 39_000 + (std::process::id() % 1_000) as u16;
    let (sender, receiver) = tokio::sync::watch::channel(HealthChecks::new());
    let token = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(bosun_netproxy::health::serve("127.0.0.1".parse()?, receiver, token.clone()));
    let mut proxier = proxier.with_health_checks(sender);
    proxier.observe(local(health_port));
    proxier.observe(slice_on("local", &[("10.244.1.2", "node-1"), ("10.244.1.3", "node-2")]));
    proxier.sync(false).await;
    for addr in ["192.0.2.1:30082", "203.0.113.30:80"] {
        let answers = ns.enter("client", || (0..10).map(|_| ask(addr)).collect::<std::io::Result<Vec<_>>>())?;
        ensure!(answers.as_ref().ok() == Some(&vec!["pod-a".to_owned(); 10]), "{addr}: only pod-a: {answers:?}");
    }
    expect_health(health_port, 200, 1).await?;

    proxier.observe(slice_on("local", &[("10.244.1.2", "node-2"), ("10.244.1.3", "node-2")]));
    proxier.sync(false).await;
    ensure!(proxier.stats().failed == 0, "diff failed: {:?}", proxier.stats());
    let dropped = ns.enter("client", || ask("192.0.2.1:30082"))?;
    ensure!(matches!(&dropped, Err(e) if e.kind() == ErrorKind::TimedOut), "expected a drop, got {dropped:?}");
    expect_health(health_port, 503, 0).await?;
    token.cancel();
    server.await?;
    Ok(())
}
