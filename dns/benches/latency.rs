//! Cluster DNS query latency and memory, printed.
//!
//! `cargo bench -p bosun-dns --bench latency`
//!
//! Binds the server on loopback, fills its zone with 10,000 ClusterIP
//! Services and 1,000 headless Services of 10 endpoints each (as watch
//! events), and sends queries one at a time from a UDP client: cluster A
//! names, SRV of named ports, headless A (10 records), NXDOMAIN, and names
//! forwarded to an in-process upstream on loopback. Prints p50/p99 per kind
//! and the process's RSS before the zone was filled and after the queries
//! (what the DNS server and its zone add to the agent).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bosun_dns::{DnsConfig, DnsServer};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const SERVICES: usize = 10_000;
const HEADLESS: usize = 1_000;
const QUERIES: usize = 5_000;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn fake_upstream() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
    let addr = socket.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
            let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
            reply.add_queries(request.queries.iter().cloned());
            reply.metadata.response_code = ResponseCode::NXDomain;
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, from);
            }
        }
    });
    addr
}

fn fill(server: &DnsServer) {
    let zone = server.zone();
    let mut zone = zone.write().expect("zone");
    for i in 0..SERVICES {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": format!("svc-{i}"), "namespace": format!("ns-{}", i % 100)},
            "spec": {"clusterIP": format!("10.96.{}.{}", i / 250, i % 250 + 1),
                     "ports": [{"name": "http", "port": 80}]}}))
        .expect("service");
        zone.service_event(Event::Apply(service));
    }
    for i in 0..HEADLESS {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": format!("db-{i}"), "namespace": "data"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}))
        .expect("headless");
        zone.service_event(Event::Apply(service));
        let endpoints: Vec<_> =
            (0..10).map(|e| json!({"addresses": [format!("10.{}.{}.{}", 200 + i / 250, i % 250, e + 1)]})).collect();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": format!("db-{i}-x"), "namespace": "data",
                         "labels": {"kubernetes.io/service-name": format!("db-{i}")}},
            "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432}], "endpoints": endpoints}))
        .expect("slice");
        zone.slice_event(Event::Apply(slice));
    }
}

fn measure(client: &UdpSocket, server: SocketAddr, names: &[(String, RecordType)]) -> Vec<Duration> {
    let mut buf = [0u8; 4096];
    let mut took = Vec::with_capacity(names.len());
    for (name, qtype) in names {
        let mut request = Message::query();
        request.add_query(Query::query(Name::from_ascii(name).expect("name"), *qtype));
        let bytes = request.to_vec().expect("encode");
        let started = Instant::now();
        client.send_to(&bytes, server).expect("send");
        let n = client.recv(&mut buf).expect("reply");
        took.push(started.elapsed());
        let reply = Message::from_vec(&buf[..n]).expect("decode");
        assert_eq!(reply.metadata.id, request.metadata.id);
    }
    took.sort();
    took
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let _guard = runtime.enter();
    let rss_before = rss_mib();
    let upstream = fake_upstream();
    let config = DnsConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        domain: "cluster.local".into(),
        upstreams: vec![upstream],
        forward_timeout: Duration::from_secs(2),
    };
    let server = DnsServer::bind(&config).expect("bind");
    let addr = server.local_addr().expect("addr");
    let fill_started = Instant::now();
    fill(&server);
    let fill_took = fill_started.elapsed();
    let token = CancellationToken::new();
    let task = runtime.spawn(server.run(futures::stream::pending(), token.clone()));
    let client = UdpSocket::bind("127.0.0.1:0").expect("client");
    client.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let kinds: Vec<(&str, Vec<(String, RecordType)>)> = vec![
        (
            "ClusterIP A",
            (0..QUERIES)
                .map(|i| {
                    (
                        format!("svc-{}.ns-{}.svc.cluster.local.", i * 7 % SERVICES, i * 7 % SERVICES % 100),
                        RecordType::A,
                    )
                })
                .collect(),
        ),
        (
            "SRV named port",
            (0..QUERIES)
                .map(|i| {
                    (format!("_http._tcp.svc-{}.ns-{}.svc.cluster.local.", i % SERVICES, i % 100), RecordType::SRV)
                })
                .collect(),
        ),
        (
            "headless A (10 IPs)",
            (0..QUERIES).map(|i| (format!("db-{}.data.svc.cluster.local.", i % HEADLESS), RecordType::A)).collect(),
        ),
        ("NXDOMAIN", (0..QUERIES).map(|i| (format!("nope-{i}.default.svc.cluster.local."), RecordType::A)).collect()),
        (
            "forwarded (loopback upstream)",
            (0..QUERIES / 5).map(|i| (format!("host-{i}.example.org."), RecordType::A)).collect(),
        ),
    ];
    // Warm-up.
    measure(&client, addr, &kinds[0].1[..200]);
    println!(
        "cluster DNS: {SERVICES} ClusterIP Services + {HEADLESS} headless x 10 endpoints, zone filled in {:.0} ms",
        fill_took.as_secs_f64() * 1e3
    );
    for (kind, names) in &kinds {
        let took = measure(&client, addr, names);
        println!(
            "  {kind:<32} {:>6} queries  p50 {:>7.1} us  p99 {:>7.1} us",
            names.len(),
            pct(&took, 0.5),
            pct(&took, 0.99)
        );
    }
    let rss_after = rss_mib();
    println!(
        "  RSS: {rss_before:.1} MiB before the server, {rss_after:.1} MiB after (delta {:.1} MiB)",
        rss_after - rss_before
    );
    token.cancel();
    let _ = runtime.block_on(task);
}
