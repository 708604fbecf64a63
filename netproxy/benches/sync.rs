//! Sync benchmark: 10,000 services x 10 endpoints in a throwaway netns.
//!
//! Prints the full load time, the diff sync time of a one-service add and of
//! a one-endpoint change (render + diff + script + `nft` process), the
//! periodic probe time, and the pure render and diff times (full and
//! incremental); then the same through the whole pipeline (watch events ->
//! tracker -> incremental render -> nft), once with a no-op applier (the
//! in-process cost alone) and once with the real `nft`.
//! Run with `cargo bench -p bosun-netproxy`.

#[path = "../tests/support/netns.rs"]
mod netns;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use std::sync::Arc;

use anyhow::ensure;
use bosun_netproxy::diff::diff;
use bosun_netproxy::model::ServiceName;
use bosun_netproxy::model::SERVICE_NAME_LABEL;
use bosun_netproxy::model::{Endpoint, Protocol, ProxyState, ServiceKey, ServicePort, ServicePortState};
use bosun_netproxy::proxier::Proxier;
use bosun_netproxy::rendered::Rendered;
use bosun_netproxy::ruleset::render_ruleset;
use bosun_netproxy::script::{full_script, ops_script};
use bosun_netproxy::ProxyEvent;
use bosun_netproxy::{NftApply, NftCommand, NftError, TableSpec};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;
use serde_json::json;

const SERVICES: u32 = 10_000;
const ENDPOINTS: u32 = 10;
const TABLE: &str = "bosun_bench";

fn ip(base: [u8; 4], offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::from(base)) + offset)
}

fn service(index: u32) -> (ServiceKey, ServicePortState) {
    let key =
        ServiceKey { namespace: format!("ns{}", index % 100), name: format!("svc{index}"), port_name: "http".into() };
    let endpoints =
        (0..ENDPOINTS).map(|e| Endpoint { ip: ip([10, 244, 0, 0], index * ENDPOINTS + e), port: 8080 }).collect();
    let state = ServicePortState {
        port: ServicePort { cluster_ip: ip([10, 96, 0, 0], index + 1), port: 80, protocol: Protocol::Tcp },
        endpoints,
        // Endpoints are spread over the cluster; none is on this node.
        local_ips: Vec::new(),
        ..Default::default()
    };
    (key, state)
}

fn ms(duration: Duration) -> String {
    format!("{:9.2} ms", duration.as_secs_f64() * 1e3)
}

/// Times render + diff + script + apply from `old` to `new`.
fn diff_sync(nft: &NftCommand, label: &str, old: &ProxyState, new: &ProxyState) -> anyhow::Result<()> {
    let before = render_ruleset(old);
    let started = Instant::now();
    let after = render_ruleset(new);
    let rendered = started.elapsed();
    let ops = diff(&before, &after);
    let script = ops_script(TABLE, &ops);
    let decided = started.elapsed();
    nft.apply(&script)?;
    let total = started.elapsed();
    println!(
        "{label:<28} {} total ({} ops; render {}, render+diff+script {}, nft {})",
        ms(total),
        ops.len(),
        ms(rendered),
        ms(decided),
        ms(total - decided)
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let ns = netns::Namespaces::create(&["bench"])?;
    let nft = NftCommand::with_prefix("nft", ns.prefix("bench"));
    let spec = TableSpec::new(TABLE, "10.96.0.0/16", "10.244.0.0/16")?;

    let mut state = ProxyState::default();
    state.services.extend((0..SERVICES).map(service));
    println!("{SERVICES} services x {ENDPOINTS} endpoints, 16 buckets each");

    let started = Instant::now();
    let ruleset = render_ruleset(&state);
    let render = started.elapsed();
    let script = full_script(&spec, &ruleset);
    let scripted = started.elapsed();
    nft.apply(&script)?;
    let total = started.elapsed();
    println!(
        "{:<28} {} total ({} elements, {} KiB script; render {}, script {}, nft {})",
        "full load",
        ms(total),
        ruleset.element_count(),
        script.len() / 1024,
        ms(render),
        ms(scripted - render),
        ms(total - scripted)
    );

    let started = Instant::now();
    let same = diff(&ruleset, &render_ruleset(&state));
    ensure!(same.is_empty(), "re-render differs");
    println!("{:<28} {}", "pure render+diff, no change", ms(started.elapsed()));

    incremental(&state);

    let mut added = state.clone();
    added.services.extend([service(SERVICES)]);
    diff_sync(&nft, "add one service", &state, &added)?;

    let mut changed = added.clone();
    if let Some(port) = changed.services.values_mut().next() {
        port.endpoints[3].ip = ip([10, 245, 0, 0], 1);
    }
    diff_sync(&nft, "change one endpoint", &added, &changed)?;

    let started = Instant::now();
    nft.apply(&format!("add chain ip {TABLE} services\n"))?;
    println!("{:<28} {}", "periodic probe (add chain)", ms(started.elapsed()));

    let started = Instant::now();
    let listing = nft.run(&["list", "table", "ip", TABLE])?;
    println!(
        "{:<28} {} ({} KiB; diagnostics only, never on the sync path)",
        "nft list table",
        ms(started.elapsed()),
        listing.len() / 1024
    );
    bosun_netproxy::cleanup_with(TABLE, &nft)?;

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(through_proxier("no-op nft", spec.clone(), Arc::new(NoNft)))?;
    runtime.block_on(through_proxier("nft", spec, Arc::new(nft.clone())))?;
    bosun_netproxy::cleanup_with(TABLE, &nft)?;
    Ok(())
}

/// Accepts every script without running anything.
struct NoNft;

impl NftApply for NoNft {
    fn apply(&self, _script: &str) -> Result<(), NftError> {
        Ok(())
    }
}

fn name_of(key: &ServiceKey) -> ServiceName {
    ServiceName::new(key.namespace.clone(), key.name.clone())
}

/// Times the incremental render + diff of one Service among all of them.
fn incremental(state: &ProxyState) {
    let mut rendered = Rendered::new();
    for (key, port) in &state.services {
        rendered.replace_service(&name_of(key), vec![(key.clone(), port.clone())]);
    }
    rendered.forget_changes();
    let (key, port) = service(7);
    let time = |rendered: &mut Rendered, label: &str, port: ServicePortState, key: &ServiceKey| {
        let started = Instant::now();
        rendered.replace_service(&name_of(key), vec![(key.clone(), port)]);
        let ops = rendered.take_ops();
        println!("{label:<28} {} ({} ops)", ms(started.elapsed()), ops.len());
    };
    time(&mut rendered, "incremental, no change", port.clone(), &key);
    let mut moved = port;
    moved.endpoints[3].ip = ip([10, 245, 0, 0], 1);
    time(&mut rendered, "incremental, one endpoint", moved, &key);
    let (key, port) = service(SERVICES);
    time(&mut rendered, "incremental, add one service", port, &key);
}

fn service_object(index: u32) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(json!({
        "metadata": {"namespace": format!("ns{}", index % 100), "name": format!("svc{index}")},
        "spec": {"clusterIP": ip([10, 96, 0, 0], index + 1).to_string(),
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))?)
}

fn slice_object(index: u32, first_endpoint: Ipv4Addr) -> anyhow::Result<EndpointSlice> {
    let mut addresses: Vec<String> =
        (0..ENDPOINTS).map(|e| ip([10, 244, 0, 0], index * ENDPOINTS + e).to_string()).collect();
    addresses[0] = first_endpoint.to_string();
    let endpoints: Vec<_> = addresses
        .iter()
        .map(|a| json!({"addresses": [a], "conditions": {"ready": true}, "nodeName": "other"}))
        .collect();
    Ok(serde_json::from_value(json!({
        "metadata": {"namespace": format!("ns{}", index % 100), "name": format!("svc{index}-abcde"),
                     "labels": {SERVICE_NAME_LABEL: format!("svc{index}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints
    }))?)
}

/// The same scale through the whole pipeline: watch events -> tracker ->
/// incremental render -> diff -> `nft`.
async fn through_proxier(label: &str, spec: TableSpec, nft: Arc<dyn NftApply>) -> anyhow::Result<()> {
    let mut proxier = Proxier::new(spec, "this-node", nft);
    let started = Instant::now();
    proxier.observe(ProxyEvent::service(Event::Init));
    proxier.observe(ProxyEvent::slice(Event::Init));
    for index in 0..SERVICES {
        proxier.observe(ProxyEvent::service(Event::InitApply(service_object(index)?)));
        proxier
            .observe(ProxyEvent::slice(Event::InitApply(slice_object(index, ip([10, 244, 0, 0], index * ENDPOINTS))?)));
    }
    proxier.observe(ProxyEvent::service(Event::InitDone));
    proxier.observe(ProxyEvent::slice(Event::InitDone));
    println!("[{label}] {:<22} {} (build + ingest 20,000 API objects)", "initial lists", ms(started.elapsed()));
    let started = Instant::now();
    proxier.sync(false).await;
    ensure!(proxier.stats().applied == 1, "full load failed");
    println!("[{label}] {:<22} {}", "first sync (full)", ms(started.elapsed()));

    let event = ProxyEvent::slice(Event::Apply(slice_object(7, ip([10, 244, 0, 0], 7 * ENDPOINTS))?));
    let started = Instant::now();
    proxier.observe(event);
    proxier.sync(false).await;
    ensure!(proxier.stats().applied == 1, "an unchanged slice applied something");
    println!("[{label}] {:<22} {} (event + sync, nothing applied)", "no change", ms(started.elapsed()));

    let event = ProxyEvent::slice(Event::Apply(slice_object(7, ip([10, 245, 0, 0], 7))?));
    let started = Instant::now();
    proxier.observe(event);
    proxier.sync(false).await;
    ensure!(proxier.stats().applied == 2 && proxier.stats().full == 1, "diff sync failed");
    println!("[{label}] {:<22} {}", "one endpoint change", ms(started.elapsed()));

    let events = [
        ProxyEvent::service(Event::Apply(service_object(SERVICES)?)),
        ProxyEvent::slice(Event::Apply(slice_object(SERVICES, ip([10, 244, 0, 0], SERVICES * ENDPOINTS))?)),
    ];
    let started = Instant::now();
    for event in events {
        proxier.observe(event);
    }
    proxier.sync(false).await;
    ensure!(proxier.stats().applied == 3 && proxier.stats().full == 1, "diff sync failed");
    println!("[{label}] {:<22} {} (Service + slice events)", "add one service", ms(started.elapsed()));

    let started = Instant::now();
    proxier.sync(true).await;
    ensure!(proxier.stats().applied == 4, "periodic sync failed");
    println!("[{label}] {:<22} {} (recompute all + self-check + probe)", "periodic sync", ms(started.elapsed()));
    Ok(())
}
