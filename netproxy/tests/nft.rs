//! Real nftables tests, each inside throwaway network namespaces.
//!
//! Topology of the packet test (all addresses live only in the namespaces):
//! ```text
//!   pod1 (10.244.1.2, "pod-a")  --veth--+
//!   pod2 (10.244.1.3, "pod-b")  --veth--+-- node (10.244.1.1 on each pod veth,
//!                                       |        runs the proxy table)
//!   outside (203.0.113.2, also          +--veth-- default route of node
//!            10.96.0.99 "outside")
//! ```
//! `outside` stands for the real uplink: without the table, node traffic to
//! the service range would follow the default route there.

#[path = "support/netns.rs"]
mod netns;

use std::io::{ErrorKind, Read};
use std::net::{SocketAddrV4, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use bosun_netproxy::model::SERVICE_NAME_LABEL;
use bosun_netproxy::proxier::Proxier;
use bosun_netproxy::ruleset::render_ruleset;
use bosun_netproxy::{cleanup_with, script, NftApply, NftCommand, ProxyEvent, TableSpec};
use kube::runtime::watcher::Event;
use netns::Namespaces;
use serde_json::json;

const TABLE: &str = "bosun_test";

fn spec() -> TableSpec {
    TableSpec::new(TABLE, "10.96.0.0/16", "10.244.0.0/16").expect("valid spec")
}

fn service(name: &str, cluster_ip: &str) -> ProxyEvent {
    let object = json!({
        "metadata": {"namespace": "default", "name": name},
        "spec": {"clusterIP": cluster_ip, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    });
    ProxyEvent::service(Event::Apply(serde_json::from_value(object).expect("valid Service")))
}

fn slice(service: &str, ips: &[&str]) -> ProxyEvent {
    let endpoints: Vec<_> = ips.iter().map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}})).collect();
    let object = json!({
        "metadata": {"namespace": "default", "name": format!("{service}-x1"),
                     "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints
    });
    ProxyEvent::slice(Event::Apply(serde_json::from_value(object).expect("valid EndpointSlice")))
}

fn initial_lists() -> [ProxyEvent; 4] {
    [
        ProxyEvent::service(Event::Init),
        ProxyEvent::service(Event::InitDone),
        ProxyEvent::slice(Event::Init),
        ProxyEvent::slice(Event::InitDone),
    ]
}

/// Connects, reads the greeting. Runs inside whatever netns the thread is in.
fn ask(addr: &str) -> std::io::Result<String> {
    let addr: SocketAddrV4 = addr.parse().map_err(std::io::Error::other)?;
    let mut stream = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.trim().to_owned())
}

/// Connects `count` times, stopping at the first failure.
fn ask_many(addr: &str, count: usize) -> std::io::Result<Vec<String>> {
    (0..count).map(|_| ask(addr)).collect()
}

/// Counts (pod-a answers, pod-b answers).
fn tally(answers: std::io::Result<Vec<String>>) -> anyhow::Result<(usize, usize)> {
    let mut counts = (0, 0);
    for answer in answers? {
        match answer.as_str() {
            "pod-a" => counts.0 += 1,
            "pod-b" => counts.1 += 1,
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    }
    Ok(counts)
}

/// How pods are attached to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attach {
    /// One routed veth per pod (/32 routes, like calico).
    Routed,
    /// Veths on a bridge with the gateway address, like the CNI `bridge`
    /// plugin (bridged traffic passes netfilter via br_netfilter).
    Bridged,
}

/// Names of the four namespaces of one topology (distinct per attach mode
/// so both tests can run at once).
struct Topology {
    ns: Namespaces,
    node: String,
    pod1: String,
}

fn build_topology(attach: Attach) -> anyhow::Result<Topology> {
    let tag = if attach == Attach::Routed { "r" } else { "b" };
    let [node, pod1, pod2, out] = ["node", "pod1", "pod2", "out"].map(|n| format!("{tag}{n}"));
    let mut ns = Namespaces::create(&[&node, &pod1, &pod2, &out])?;
    ns.exec(&node, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    if attach == Attach::Bridged {
        ns.exec(&node, &["ip", "link", "add", "cni0", "type", "bridge"])?;
        ns.exec(&node, &["ip", "addr", "add", "10.244.1.1/24", "dev", "cni0"])?;
        ns.exec(&node, &["ip", "link", "set", "cni0", "up"])?;
    }
    for (pod, ip, answer) in [(&pod1, "10.244.1.2", "pod-a"), (&pod2, "10.244.1.3", "pod-b")] {
        let host_if = format!("h{pod}");
        let pod_ns = ns.name(pod);
        ns.exec(&node, &["ip", "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &pod_ns])?;
        ns.exec(pod, &["ip", "link", "set", "eth0", "up"])?;
        match attach {
            Attach::Routed => {
                ns.exec(&node, &["ip", "addr", "add", "10.244.1.1/32", "dev", &host_if])?;
                ns.exec(&node, &["ip", "link", "set", &host_if, "up"])?;
                ns.exec(&node, &["ip", "route", "add", &format!("{ip}/32"), "dev", &host_if])?;
                ns.exec(pod, &["ip", "addr", "add", &format!("{ip}/32"), "dev", "eth0"])?;
                ns.exec(pod, &["ip", "route", "add", "10.244.1.1/32", "dev", "eth0"])?;
            }
            Attach::Bridged => {
                ns.exec(&node, &["ip", "link", "set", &host_if, "master", "cni0", "up"])?;
                // What the CNI bridge plugin's `hairpinMode` does.
                ns.exec(&node, &["ip", "link", "set", &host_if, "type", "bridge_slave", "hairpin", "on"])?;
                ns.exec(pod, &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
            }
        }
        ns.exec(pod, &["ip", "route", "add", "default", "via", "10.244.1.1", "dev", "eth0"])?;
        ns.spawn(pod, &["busybox", "nc", "-ll", "-p", "8080", "-e", "echo", answer])?;
    }
    let out_ns = ns.name(&out);
    ns.exec(&node, &["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", &out_ns])?;
    ns.exec(&node, &["ip", "addr", "add", "203.0.113.1/24", "dev", "up0"])?;
    ns.exec(&node, &["ip", "link", "set", "up0", "up"])?;
    ns.exec(&node, &["ip", "route", "add", "default", "via", "203.0.113.2"])?;
    ns.exec(&out, &["ip", "addr", "add", "203.0.113.2/24", "dev", "up1"])?;
    ns.exec(&out, &["ip", "addr", "add", "10.96.0.99/32", "dev", "lo"])?;
    ns.exec(&out, &["ip", "link", "set", "up1", "up"])?;
    ns.exec(&out, &["ip", "route", "add", "10.244.0.0/16", "via", "203.0.113.1"])?;
    ns.spawn(&out, &["busybox", "nc", "-ll", "-p", "80", "-e", "echo", "outside"])?;
    wait_for_servers(&ns, &node)?;
    Ok(Topology { ns, node, pod1 })
}

/// Waits until the three busybox servers accept connections.
fn wait_for_servers(ns: &Namespaces, node: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let up = ns.enter(node, || {
            ask("10.244.1.2:8080").is_ok() && ask("10.244.1.3:8080").is_ok() && ask("10.96.0.99:80").is_ok()
        })?;
        if up {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "test servers did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A proxier that has fully loaded `web` (10.96.0.10, two endpoints) and
/// `empty` (10.96.0.11, no endpoints) through `nft`.
async fn load_web_and_empty(nft: &NftCommand) -> anyhow::Result<Proxier> {
    let mut proxier = Proxier::new(spec(), "", Arc::new(nft.clone()));
    for event in initial_lists().into_iter().chain([
        service("web", "10.96.0.10"),
        slice("web", &["10.244.1.2", "10.244.1.3"]),
        service("empty", "10.96.0.11"),
    ]) {
        proxier.observe(event);
    }
    proxier.sync(false).await;
    ensure!(proxier.stats().applied == 1, "full load failed: {:?}", proxier.stats());
    Ok(proxier)
}

#[tokio::test]
async fn table_loads_updates_and_is_cleaned_up_in_a_netns() -> anyhow::Result<()> {
    let ns = Namespaces::create(&["load"])?;
    let nft = NftCommand::with_prefix("nft", ns.prefix("load"));
    let mut proxier = load_web_and_empty(&nft).await?;
    let listing = nft.run(&["list", "table", "ip", TABLE])?;
    for expected in [
        "10.96.0.10 . tcp . 80 : goto buckets_16",
        "10.96.0.10 . tcp . 80 . 15 : 10.244.1.3 . 8080",
        "elements = { 10.96.0.11 . tcp . 80 }",
        "chain buckets_65536",
        "type nat hook output priority -100; policy accept;",
    ] {
        ensure!(listing.contains(expected), "missing {expected:?} in:\n{listing}");
    }

    proxier.observe(slice("web", &["10.244.1.2"]));
    proxier.observe(slice("empty", &["10.244.1.4"]));
    proxier.sync(false).await;
    ensure!(proxier.stats().applied == 2 && proxier.stats().full == 1, "diff failed: {:?}", proxier.stats());
    let listing = nft.run(&["list", "table", "ip", TABLE])?;
    ensure!(!listing.contains("10.244.1.3"), "removed endpoint still listed:\n{listing}");
    ensure!(listing.contains("10.96.0.11 . tcp . 80 . 0 : 10.244.1.4 . 8080"), "{listing}");

    // Growing past 16 endpoints moves the service to the 32-bucket chain.
    let many: Vec<String> = (2..=18).map(|i| format!("10.244.1.{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    proxier.observe(slice("web", &many));
    proxier.sync(false).await;
    ensure!(proxier.stats().applied == 3 && proxier.stats().full == 1, "diff failed: {:?}", proxier.stats());
    let listing = nft.run(&["list", "table", "ip", TABLE])?;
    ensure!(listing.contains("10.96.0.10 . tcp . 80 : goto buckets_32"), "{listing}");
    ensure!(listing.contains("10.96.0.10 . tcp . 80 . 31 : 10.244.1.16 . 8080"), "{listing}");

    // A full reload over an existing table replaces it in one transaction.
    let ruleset = render_ruleset(&bosun_netproxy::model::ProxyState::default());
    nft.apply(&script::full_script(&spec(), &ruleset))?;
    ensure!(!nft.run(&["list", "table", "ip", TABLE])?.contains("10.244.1.2"));

    cleanup_with(TABLE, &nft)?;
    ensure!(nft.run(&["list", "table", "ip", TABLE]).is_err(), "table still exists");
    cleanup_with(TABLE, &nft).context("cleanup of a missing table is not an error")?;
    Ok(())
}

#[tokio::test]
async fn routed_pods_are_balanced_rejected_and_never_leak() -> anyhow::Result<()> {
    check_packets(Attach::Routed).await
}

#[tokio::test]
async fn bridged_pods_are_balanced_rejected_and_never_leak() -> anyhow::Result<()> {
    check_packets(Attach::Bridged).await
}

/// Balancing from the node and from a pod (incl. hairpin), fast rejects,
/// no leak of the service range, and endpoint removal by a diff sync.
async fn check_packets(attach: Attach) -> anyhow::Result<()> {
    let Topology { ns, node, pod1 } = build_topology(attach)?;
    let (node, pod1) = (node.as_str(), pod1.as_str());
    // Without the table, the service range follows the default route out.
    let leaked = ns.enter(node, || ask("10.96.0.99:80"))?;
    ensure!(leaked.ok().as_deref() == Some("outside"), "topology check: uplink unreachable");

    let nft = NftCommand::with_prefix("nft", ns.prefix(node));
    let mut proxier = load_web_and_empty(&nft).await?;

    let from_node = tally(ns.enter(node, || ask_many("10.96.0.10:80", 40))?).context("node->service")?;
    ensure!(from_node.0 > 0 && from_node.1 > 0, "node->service not balanced: {from_node:?}");
    // From a pod: half the connections hairpin back to the pod itself.
    let from_pod = tally(ns.enter(pod1, || ask_many("10.96.0.10:80", 40))?).context("pod->service")?;
    ensure!(from_pod.0 > 0 && from_pod.1 > 0, "pod->service not balanced: {from_pod:?}");

    for (what, addr) in [("no endpoints", "10.96.0.11:80"), ("no service", "10.96.0.99:80")] {
        let started = Instant::now();
        let answer = ns.enter(node, || ask(addr))?;
        let refused = matches!(&answer, Err(e) if e.kind() == ErrorKind::ConnectionRefused);
        ensure!(refused, "{what}: expected connection refused, got {answer:?}");
        ensure!(started.elapsed() < Duration::from_millis(500), "{what}: slow reject");
        let from_pod = ns.enter(pod1, || ask(addr))?;
        let refused = matches!(&from_pod, Err(e) if e.kind() == ErrorKind::ConnectionRefused);
        ensure!(refused, "{what} from a pod: expected connection refused, got {from_pod:?}");
    }

    proxier.observe(slice("web", &["10.244.1.2"]));
    proxier.sync(false).await;
    ensure!(proxier.stats().applied == 2 && proxier.stats().full == 1, "diff failed: {:?}", proxier.stats());
    let after = tally(ns.enter(node, || ask_many("10.96.0.10:80", 20))?).context("after removal")?;
    ensure!(after == (20, 0), "removed endpoint still gets traffic: {after:?}");

    cleanup_with(TABLE, &nft)?;
    Ok(())
}
