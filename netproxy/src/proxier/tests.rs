//! Sync loop behaviour against the recording fake nft.

use super::*;
use crate::model::SERVICE_NAME_LABEL;
use crate::nft::testing::FakeNft;
use serde_json::json;

fn service_object(name: &str, cluster_ip: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": name},
        "spec": {"clusterIP": cluster_ip, "ports": [{"port": 80}]}
    }))
    .expect("valid Service json")
}

fn svc(name: &str, cluster_ip: &str) -> ProxyEvent {
    ProxyEvent::service(Event::Apply(service_object(name, cluster_ip)))
}

fn slice(service: &str, ips: &[&str]) -> ProxyEvent {
    let endpoints: Vec<_> = ips.iter().map(|ip| json!({"addresses": [ip]})).collect();
    ProxyEvent::slice(Event::Apply(
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": format!("{service}-1"), "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4",
            "ports": [{"port": 8080}],
            "endpoints": endpoints
        }))
        .expect("valid EndpointSlice json"),
    ))
}

fn initial_lists() -> Vec<ProxyEvent> {
    vec![
        ProxyEvent::service(Event::Init),
        ProxyEvent::service(Event::InitDone),
        ProxyEvent::slice(Event::Init),
        ProxyEvent::slice(Event::InitDone),
    ]
}

fn proxier() -> (Proxier, Arc<FakeNft>) {
    let fake = Arc::new(FakeNft::new());
    let spec = TableSpec::new("t", "10.96.0.0/16", "10.244.0.0/16").expect("valid spec");
    (Proxier::new(spec, "", fake.clone()), fake)
}

fn is_full(script: &str) -> bool {
    script.starts_with("table ip t\ndelete table ip t\ntable ip t {")
}

#[tokio::test]
async fn first_sync_loads_the_table_and_later_syncs_send_element_diffs() {
    let (mut proxier, fake) = proxier();
    for event in initial_lists().into_iter().chain([svc("a", "10.96.0.1"), slice("a", &["10.244.0.2"])]) {
        proxier.observe(event);
    }
    proxier.sync(false).await;
    proxier.observe(slice("a", &["10.244.0.2", "10.244.0.3"]));
    proxier.sync(false).await;
    proxier.sync(false).await;
    let scripts = fake.scripts();
    assert_eq!(scripts.len(), 2, "the no-change sync applies nothing");
    assert!(is_full(&scripts[0]));
    assert!(scripts[0].contains("10.96.0.1 . tcp . 80 . 15 : 10.244.0.2 . 8080"));
    assert!(scripts[1].starts_with("delete element ip t backends { 10.96.0.1 . tcp . 80 . 1,"));
    assert!(scripts[1].contains("add element ip t hairpin { 10.244.0.3 . 10.244.0.3 }"));
    assert!(!scripts[1].contains("table ip t {"));
    assert_eq!(proxier.stats().applied, 2);
    assert_eq!(proxier.stats().full, 1);
}

#[tokio::test]
async fn failed_apply_falls_back_to_a_full_reload() {
    let (mut proxier, fake) = proxier();
    for event in initial_lists().into_iter().chain([svc("a", "10.96.0.1")]) {
        proxier.observe(event);
    }
    proxier.sync(false).await;
    fake.fail_next(1);
    proxier.observe(slice("a", &["10.244.0.2"]));
    proxier.sync(false).await;
    assert_eq!(proxier.stats().failed, 1);
    proxier.sync(false).await;
    let scripts = fake.scripts();
    assert_eq!(scripts.len(), 2);
    assert!(is_full(&scripts[1]), "retry reloads the whole table");
    assert!(scripts[1].contains(": 10.244.0.2 . 8080"));
}

#[tokio::test]
async fn periodic_sync_without_changes_only_probes_the_table() {
    let (mut proxier, fake) = proxier();
    for event in initial_lists().into_iter().chain([svc("a", "10.96.0.1")]) {
        proxier.observe(event);
    }
    proxier.sync(false).await;
    proxier.sync(true).await;
    assert_eq!(fake.scripts()[1], "add chain ip t services\n");
}

#[test]
fn next_sync_schedule() {
    let timing = SyncTiming { min_interval: Duration::from_millis(10), max_interval: Duration::from_secs(30) };
    let last = Instant::now();
    let cases = [
        ("not listed yet", false, true, 0, Some(last), None),
        ("pending: after min interval", true, true, 0, Some(last), Some(last + timing.min_interval)),
        ("idle: after max interval", true, false, 0, Some(last), Some(last + timing.max_interval)),
        ("first failure", true, true, 1, Some(last), Some(last + RETRY_BASE)),
        ("third failure", true, true, 3, Some(last), Some(last + RETRY_BASE * 4)),
        ("many failures are capped", true, true, 40, Some(last), Some(last + timing.max_interval)),
    ];
    for (what, ready, pending, failures, last_attempt, want) in cases {
        assert_eq!(next_sync_at(ready, pending, failures, last_attempt, timing), want, "{what}");
    }
    let first = next_sync_at(true, true, 0, None, timing).expect("first sync is scheduled");
    assert!(first <= Instant::now(), "first sync runs at once");
}

#[tokio::test]
async fn loop_waits_for_initial_lists_debounces_bursts_and_stops_on_cancel() {
    let (proxier, fake) = proxier();
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let token = CancellationToken::new();
    let timing = SyncTiming { min_interval: Duration::from_millis(50), max_interval: Duration::from_secs(30) };
    let task = tokio::spawn(proxier.run(rx, timing, token.clone()));
    let service = service_object("a", "10.96.0.1");
    for event in [Event::Init, Event::InitApply(service), Event::InitDone] {
        tx.unbounded_send(ProxyEvent::service(event)).expect("loop is running");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fake.scripts().is_empty(), "no sync before both initial lists");
    for event in [Event::Init, Event::InitDone] {
        tx.unbounded_send(ProxyEvent::slice(event)).expect("loop is running");
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    for n in 2..40 {
        let ips: Vec<String> = (2..=n).map(|i| format!("10.244.0.{i}")).collect();
        let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
        tx.unbounded_send(slice("a", &ips)).expect("loop is running");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    token.cancel();
    let stats = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("loop stops on cancel")
        .expect("loop does not panic");
    let scripts = fake.scripts();
    assert_eq!(scripts.len(), 2, "one full load, then one diff for the whole burst");
    assert!(is_full(&scripts[0]));
    assert!(scripts[1].contains("add element ip t service_ports { 10.96.0.1 . tcp . 80 : goto buckets_64 }"));
    assert_eq!(stats.applied, 2);
    assert_eq!(stats.histogram.iter().sum::<u64>(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_sync_is_not_starved_by_a_steady_event_stream() {
    let (proxier, fake) = proxier();
    // Initial lists, one Service, then a producer that keeps the event
    // channel full: a loop that served queued events before a due sync
    // would never sync.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let token = CancellationToken::new();
    let producer_token = token.clone();
    let producer = tokio::spawn(async move {
        for event in initial_lists().into_iter().chain([svc("a", "10.96.0.1")]) {
            tx.send(event).await.expect("loop is running");
        }
        // Every event moves the endpoint, so every sync has work to do.
        for n in (0..200).cycle() {
            let ip = format!("10.244.1.{n}");
            if producer_token.is_cancelled() || tx.send(slice("a", &[ip.as_str()])).await.is_err() {
                break;
            }
        }
    });
    let events = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|event| (event, rx)) });
    let timing = SyncTiming { min_interval: Duration::from_millis(10), max_interval: Duration::from_secs(30) };
    let task = tokio::spawn(proxier.run(Box::pin(events), timing, token.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while fake.scripts().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no sync within 60 s under a steady event stream");
        tokio::task::yield_now().await;
    }
    token.cancel();
    let stats = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("loop stops on cancel")
        .expect("loop does not panic");
    producer.await.expect("producer does not panic");
    let scripts = fake.scripts();
    assert!(is_full(&scripts[0]));
    assert!(scripts[1].contains("add element ip t backends"), "an endpoint change reached nft: {}", scripts[1]);
    assert!(stats.applied >= 2);
}

fn udp_svc(name: &str, cluster_ip: &str) -> ProxyEvent {
    ProxyEvent::service(Event::Apply(
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": name},
            "spec": {"clusterIP": cluster_ip, "ports": [{"port": 53, "protocol": "UDP"}]}
        }))
        .expect("valid Service json"),
    ))
}

fn udp_slice(service: &str, ips: &[&str]) -> ProxyEvent {
    let endpoints: Vec<_> = ips.iter().map(|ip| json!({"addresses": [ip]})).collect();
    ProxyEvent::slice(Event::Apply(
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": format!("{service}-1"), "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4",
            "ports": [{"port": 5353, "protocol": "UDP"}],
            "endpoints": endpoints
        }))
        .expect("valid EndpointSlice json"),
    ))
}

#[tokio::test]
async fn stale_udp_flows_are_flushed_after_the_sync_that_applied_the_change() {
    use crate::conntrack::testing::RecordingConntrack;
    use crate::conntrack::StaleFlows;
    use crate::model::Protocol;
    use crate::ruleset::{Frontend, ServiceAddr};
    let (proxier, fake) = proxier();
    let conntrack = Arc::new(RecordingConntrack::default());
    let mut proxier = proxier.with_conntrack(conntrack.clone());
    let dns = Frontend::Ip(ServiceAddr { ip: "10.96.0.10".parse().expect("ip"), protocol: Protocol::Udp, port: 53 });
    let flushed = || conntrack.flushed.lock().expect("lock").drain(..).collect::<Vec<_>>();
    for event in initial_lists().into_iter().chain([udp_svc("dns", "10.96.0.10"), svc("web", "10.96.0.11")]) {
        proxier.observe(event);
    }
    proxier.sync(false).await;
    assert_eq!(flushed(), vec![], "the first load had nothing before it");
    // No endpoints -> some: every entry of the port (they bypass the NAT).
    proxier.observe(udp_slice("dns", &["10.244.0.2", "10.244.0.3"]));
    proxier.observe(slice("web", &["10.244.0.5"]));
    proxier.sync(false).await;
    assert_eq!(flushed(), vec![StaleFlows { frontend: dns, endpoint: None }]);
    // An endpoint leaves, but the apply fails: flushed after the reload.
    fake.fail_next(1);
    proxier.observe(udp_slice("dns", &["10.244.0.3"]));
    proxier.observe(slice("web", &[]));
    proxier.sync(false).await;
    assert_eq!(flushed(), vec![], "nothing flushed before the change is applied");
    proxier.sync(false).await;
    assert!(is_full(&fake.scripts()[2]));
    let gone = Some("10.244.0.2".parse().expect("ip"));
    assert_eq!(flushed(), vec![StaleFlows { frontend: dns, endpoint: gone }], "TCP ports are never flushed");
}
