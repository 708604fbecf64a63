//! Recording decisions as the scrape shows them, and the CRI wrapper over
//! `FakeCri` (real gRPC).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bosun_cri::testing::FakeCri;
use bosun_cri::{ClientOptions, CriClient};
use bosun_proto::cri::ContainerState;
use prometheus_client::registry::Registry;
use tonic::Code;

use super::*;
use crate::runtime::Runtime;

fn scrape(registry: &Registry) -> String {
    bosun_metrics::render(registry)
}

fn assert_shows(text: &str, wants: &[&str]) {
    for want in wants {
        assert!(text.contains(want), "{want:?} missing from\n{text}");
    }
}

#[test]
fn worker_pass_is_create_then_sync_and_kill_once_the_pod_is_gone() {
    assert_eq!(WorkerOperation::of(true, true), WorkerOperation::Create);
    assert_eq!(WorkerOperation::of(false, true), WorkerOperation::Sync);
    assert_eq!(WorkerOperation::of(false, false), WorkerOperation::Kill);
    assert_eq!(WorkerOperation::of(true, false), WorkerOperation::Kill);
}

#[test]
fn relist_counts_pods_with_a_running_container_and_containers_by_state() {
    let (created, running, exited) = (
        ContainerState::ContainerCreated as i32,
        ContainerState::ContainerRunning as i32,
        ContainerState::ContainerExited as i32,
    );
    let snapshot: Snapshot = HashMap::from([
        ("a".to_owned(), BTreeMap::from([("a1".to_owned(), running), ("a2".to_owned(), exited)])),
        ("b".to_owned(), BTreeMap::from([("b1".to_owned(), exited)])),
        ("c".to_owned(), BTreeMap::from([("c1".to_owned(), running), ("c2".to_owned(), created)])),
        ("d".to_owned(), BTreeMap::from([("d1".to_owned(), 42)])),
    ]);
    assert_eq!(RuntimeCounts::of(&snapshot), RuntimeCounts { running_pods: 2, containers: [1, 2, 2, 1] });
    assert_eq!(RuntimeCounts::of(&Snapshot::new()), RuntimeCounts::default());
}

#[test]
fn scrape_shows_node_pods_relist_and_evictions_under_upstream_names() {
    let mut registry = Registry::default();
    let metrics = register(&mut registry, "node-1");
    metrics.pods.record_pod_start(Duration::from_millis(1500));
    metrics.pods.record_worker_pass(WorkerOperation::Create, Duration::from_millis(20));
    metrics.pods.record_worker_pass(WorkerOperation::Sync, Duration::from_millis(3));
    metrics
        .pods
        .record_relist(Duration::from_millis(2), Some(RuntimeCounts { running_pods: 3, containers: [0, 4, 1, 0] }));
    // A failed relist is timed but leaves the counts as they were.
    metrics.pods.record_relist(Duration::from_millis(2), None);
    metrics.eviction.record_eviction("memory.available");
    metrics.pods.record_event_latency(Duration::from_micros(300));
    assert_shows(
        &scrape(&registry),
        &[
            "kubelet_node_name{node=\"node-1\"} 1",
            "# TYPE kubelet_pod_start_duration_seconds histogram",
            "kubelet_pod_start_duration_seconds_count 1",
            "kubelet_pod_start_duration_seconds_bucket{le=\"2.0\"} 1",
            "kubelet_pod_worker_duration_seconds_count{operation=\"create\"} 1",
            "kubelet_pod_worker_duration_seconds_count{operation=\"sync\"} 1",
            "kubelet_pleg_relist_duration_seconds_count 2",
            "kubelet_evented_pleg_connection_latency_seconds_count 1",
            "kubelet_evented_pleg_connection_latency_seconds_bucket{le=\"0.0004\"} 1",
            "kubelet_running_pods 3",
            "kubelet_running_containers{container_state=\"running\"} 4",
            "kubelet_running_containers{container_state=\"exited\"} 1",
            "kubelet_evictions_total{eviction_signal=\"memory.available\"} 1",
            "process_resident_memory_bytes ",
        ],
    );
}

#[tokio::test]
async fn every_cri_call_is_counted_timed_and_failures_counted_as_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = tokio_util::sync::CancellationToken::new();
    let fake = FakeCri::new();
    let _server = fake.serve(dir.path().join("cri.sock"), token.clone())?;
    let client = CriClient::connect(dir.path().join("cri.sock"), ClientOptions::default()).await?;
    let mut registry = Registry::default();
    let metrics = register(&mut registry, "node-1");
    let runtime = MeteredRuntime::new(Arc::new(client), metrics.runtime.clone());
    runtime.version().await?;
    runtime.list_containers(None).await?;
    fake.fail_next("ListContainers", Code::Internal);
    assert!(runtime.list_containers(None).await.is_err());
    assert!(runtime.start_container("no-such-container").await.is_err());
    token.cancel();
    assert_shows(
        &scrape(&registry),
        &[
            "kubelet_runtime_operations_total{operation_type=\"version\"} 1",
            "kubelet_runtime_operations_total{operation_type=\"list_containers\"} 2",
            "kubelet_runtime_operations_errors_total{operation_type=\"list_containers\"} 1",
            "kubelet_runtime_operations_errors_total{operation_type=\"start_container\"} 1",
            "kubelet_runtime_operations_duration_seconds_count{operation_type=\"list_containers\"} 2",
            "kubelet_started_containers_total 1",
        ],
    );
    let text = scrape(&registry);
    assert!(!text.contains("kubelet_runtime_operations_errors_total{operation_type=\"version\"}"), "{text}");
    Ok(())
}
