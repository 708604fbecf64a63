use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::pod_api::FakePodApi;

fn pod(name: &str, version: &str, phase: Option<&str>) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.namespace = Some("default".into());
    pod.metadata.uid = Some(format!("uid-{name}"));
    pod.metadata.resource_version = Some(version.into());
    pod.status = phase.map(status);
    pod
}

fn status(phase: &str) -> PodStatus {
    PodStatus { phase: Some(phase.into()), ..PodStatus::default() }
}

fn writes(api: &FakePodApi) -> Vec<(String, Option<String>)> {
    api.statuses.lock().map(|s| s.iter().map(|(o, s)| (o.clone(), s.phase.clone())).collect()).unwrap_or_default()
}

fn manager(api: &Arc<FakePodApi>) -> (StatusManager, StatusHandle) {
    StatusManager::new(api.clone(), RetryPolicy { base: Duration::from_millis(100), max: Duration::from_secs(1) })
}

/// One pass of the manager's loop at `now`, without the waiting.
async fn pass_at(manager: &mut StatusManager, now: Instant) {
    manager.take_inbox();
    let due = manager.take_due(now);
    let results = write_all(manager.api.clone(), due).await;
    manager.settle(results, now);
}

async fn pass(manager: &mut StatusManager) {
    pass_at(manager, Instant::now()).await;
}

#[tokio::test]
async fn latest_status_wins_and_unchanged_statuses_are_not_written() {
    let api = Arc::new(FakePodApi::default());
    let (mut manager, handle) = manager(&api);
    handle.set(&pod("a", "1", None), status("Pending"));
    handle.set(&pod("a", "1", None), status("Running"));
    handle.set(&pod("b", "1", Some("Running")), status("Running"));
    pass(&mut manager).await;
    assert_eq!(writes(&api), [("default/a".to_string(), Some("Running".to_string()))]);
    // The worker syncs again before the watch shows our write: no rewrite.
    handle.set(&pod("a", "1", None), status("Running"));
    pass(&mut manager).await;
    // The watch shows it: still nothing.
    handle.set(&pod("a", "2", Some("Running")), status("Running"));
    pass(&mut manager).await;
    assert_eq!(writes(&api).len(), 1);
    // A real change is written.
    handle.set(&pod("a", "2", Some("Running")), status("Succeeded"));
    pass(&mut manager).await;
    assert_eq!(writes(&api).len(), 2);
}

#[tokio::test]
async fn failed_writes_are_retried_with_backoff_and_superseded() {
    let api = Arc::new(FakePodApi::default());
    *api.failing_patches.lock().expect("lock") = 2;
    let (mut manager, handle) = manager(&api);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    handle.set(&pod("a", "1", None), status("Pending"));
    pass_at(&mut manager, at(0)).await;
    assert!(writes(&api).is_empty());
    // Not due before its backoff.
    pass_at(&mut manager, at(99)).await;
    assert_eq!(manager.queue.get("uid-a").map(|q| q.failures), Some(1));
    pass_at(&mut manager, at(100)).await;
    assert_eq!(manager.queue.get("uid-a").map(|q| q.failures), Some(2));
    // A newer status replaces the one being retried and keeps its delay.
    handle.set(&pod("a", "1", None), status("Running"));
    pass_at(&mut manager, at(250)).await;
    assert!(writes(&api).is_empty());
    pass_at(&mut manager, at(300)).await;
    assert_eq!(writes(&api), [("default/a".to_string(), Some("Running".to_string()))]);
    assert!(manager.queue.is_empty());
}

#[tokio::test]
async fn gone_and_forgotten_pods_are_dropped() {
    let api = Arc::new(FakePodApi::default());
    api.gone.lock().expect("lock").push("default/gone".into());
    let (mut manager, handle) = manager(&api);
    handle.set(&pod("gone", "1", None), status("Running"));
    handle.set(&pod("kept", "1", None), status("Running"));
    handle.set(&pod("deleted", "1", None), status("Running"));
    handle.forget("uid-deleted");
    pass(&mut manager).await;
    assert_eq!(writes(&api), [("default/kept".to_string(), Some("Running".to_string()))]);
    assert!(manager.queue.is_empty(), "a 404 is not retried");
    handle.forget("uid-kept");
    pass(&mut manager).await;
    assert!(manager.written.is_empty(), "nothing is remembered of forgotten pods");
}

#[tokio::test]
async fn the_running_manager_writes_without_blocking_and_stops_on_cancel() {
    let api = Arc::new(FakePodApi::default());
    let token = CancellationToken::new();
    let (manager, handle) = manager(&api);
    let task = tokio::spawn(manager.run(token.clone()));
    for n in 0..50 {
        handle.set(&pod(&format!("p{n}"), "1", None), status("Running"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while writes(&api).len() < 50 {
        assert!(Instant::now() < deadline, "only {} of 50 written", writes(&api).len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    token.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops on cancel").expect("no panic");
    assert_eq!(writes(&api).len(), 50);
}

#[tokio::test]
async fn a_final_status_is_written_after_the_pending_one_and_the_pod_forgotten() {
    let api = Arc::new(FakePodApi::default());
    let (manager, handle) = manager(&api);
    let token = CancellationToken::new();
    let running = tokio::spawn(manager.run(token.clone()));
    handle.set(&pod("a", "1", None), status("Running"));
    let deleted = pod("a", "2", Some("Running"));
    handle.write_final(&deleted, status("Succeeded")).await.expect("final status written");
    let phases: Vec<_> = writes(&api).into_iter().filter_map(|(_, phase)| phase).collect();
    assert_eq!(phases.last().map(String::as_str), Some("Succeeded"), "{phases:?}");
    // What the API shows already is not rewritten, and the waiter is answered.
    let shown = pod("b", "1", Some("Failed"));
    handle.write_final(&shown, status("Failed")).await.expect("nothing to write");
    assert!(writes(&api).iter().all(|(object, _)| object != "default/b"));
    token.cancel();
    running.await.expect("manager task");
}

#[tokio::test]
async fn a_failed_final_write_is_reported_not_retried() {
    let api = Arc::new(FakePodApi::default());
    *api.failing_patches.lock().expect("lock") = 1;
    let (mut manager, handle) = manager(&api);
    let waiter = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.write_final(&pod("a", "1", None), status("Failed")).await })
    };
    while manager.shared.inbox.lock().expect("lock").finals.is_empty() {
        tokio::task::yield_now().await;
    }
    pass(&mut manager).await;
    assert!(matches!(waiter.await.expect("waiter"), Err(Error::Api(_))));
    assert!(manager.queue.is_empty(), "not retried");
}

#[tokio::test]
async fn a_final_status_fails_when_the_manager_stops() {
    let api = Arc::new(FakePodApi::default());
    let (manager, handle) = manager(&api);
    drop(manager);
    assert!(matches!(handle.write_final(&pod("a", "1", None), status("Failed")).await, Err(Error::Stopped)));
}
