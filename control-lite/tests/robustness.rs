//! Inputs that once broke the control plane, against the real in-process
//! apiserver with the real scheduler and controllers (each supervised, as
//! `bosun control` runs them). No agent: pod and ReplicaSet counts, pod
//! conditions and Events are API data.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio_util::sync::CancellationToken;

mod support;

const NS: &str = "default";

use support::Plane;

/// Apiserver, the supervised scheduler and every supervised controller.
async fn start() -> Result<Plane> {
    Plane::full().await
}

/// Polls `check` until it yields `Some`, for up to `secs` seconds.
async fn eventually<T, F, Fut>(what: &str, secs: u64, check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    support::eventually(what, Duration::from_secs(secs), check).await
}

async fn create_node(client: &Client, name: &str, cpu: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}, "spec": {}}))?;
    nodes.create(&PostParams::default(), &node).await?;
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "1000"},
        "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "1000"},
        "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": now, "lastTransitionTime": now}]
    }});
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(())
}

fn deployment(name: &str, replicas: i32, strategy: serde_json::Value) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}
            }
        }
    }))?)
}

async fn live_pods(client: &Client, app: &str) -> Result<usize> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let list = pods.list(&ListParams::default().labels(&format!("app={app}"))).await?;
    Ok(list.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).count())
}

async fn events_with_reason(client: &Client, reason: &str) -> Result<Vec<Event>> {
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let list = events.list(&ListParams::default()).await?;
    Ok(list.items.into_iter().filter(|e| e.reason.as_deref() == Some(reason)).collect())
}

fn scheduled_condition(pod: &Pod) -> Option<(String, String)> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let c = conditions.iter().find(|c| c.type_ == "PodScheduled")?;
    Some((c.status.clone(), c.message.clone().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_max_surge_is_handled_and_other_deployments_still_converge() -> Result<()> {
    let plane = start().await?;
    let client = plane.client.clone();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let huge = json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 2_147_483_647, "maxUnavailable": 2_147_483_647}});
    deployments.create(&PostParams::default(), &deployment("huge", 2, huge)?).await?;
    let percent = json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "100000%", "maxUnavailable": "100%"}});
    deployments.create(&PostParams::default(), &deployment("percent", 2, percent)?).await?;
    deployments.create(&PostParams::default(), &deployment("normal", 3, json!({}))?).await?;
    for (app, replicas) in [("normal", 3), ("huge", 2), ("percent", 2)] {
        eventually(&format!("{replicas} pods of {app}"), 60, || async {
            Ok((live_pods(&client, app).await? == replicas).then_some(()))
        })
        .await?;
    }
    // A rolling update of the huge one: every step's arithmetic is exercised.
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    deployments.patch("huge", &PatchParams::default(), &Patch::Strategic(&image)).await?;
    eventually("huge deployment observed its new generation", 60, || async {
        let d = deployments.get("huge").await?;
        let s = d.status.unwrap_or_default();
        Ok((s.observed_generation == d.metadata.generation && s.updated_replicas.is_some()).then_some(()))
    })
    .await?;
    deployments.patch("normal", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": 5}}))).await?;
    eventually("normal scaled to 5 after the huge update", 60, || async {
        Ok((live_pods(&client, "normal").await? == 5).then_some(()))
    })
    .await?;
    let failed = events_with_reason(&client, bosun_control::controllers::failures::REASON).await?;
    assert!(failed.is_empty(), "no object failed to sync: {failed:?}");
    plane.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_cpu_request_is_unschedulable_and_other_pods_schedule() -> Result<()> {
    let plane = start().await?;
    let client = plane.client.clone();
    create_node(&client, "node-1", "4").await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod = |name: &str, cpus: &[&str]| -> Result<Pod> {
        let containers: Vec<serde_json::Value> = cpus
            .iter()
            .enumerate()
            .map(|(i, cpu)| json!({"name": format!("c{i}"), "image": "busybox", "resources": {"requests": {"cpu": cpu}}}))
            .collect();
        Ok(serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"containers": containers}}))?)
    };
    let bound = |name: &'static str| {
        let pods = pods.clone();
        async move { Ok(pods.get(name).await?.spec.and_then(|s| s.node_name).map(|_| ())) }
    };
    // A pod already placed, so the node's usage is not zero.
    pods.create(&PostParams::default(), &pod("first", &["100m"])?).await?;
    eventually("first pod bound", 60, || bound("first")).await?;
    let max = "9223372036854775807m";
    pods.create(&PostParams::default(), &pod("max", &[max])?).await?;
    // (Requests whose sum overflows, e.g. two such containers, are
    // unit-tested in `scheduler::resources`: the apiserver's QoS defaulting
    // in bosun-resources must accept them first.)
    pods.create(&PostParams::default(), &pod("after", &["100m"])?).await?;
    eventually("pod after the huge ones bound", 60, || bound("after")).await?;
    let message = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";
    eventually("max unschedulable", 60, || async {
        let pod = pods.get("max").await?;
        Ok((scheduled_condition(&pod) == Some(("False".to_string(), message.to_string()))).then_some(()))
    })
    .await?;
    eventually("FailedScheduling event for it", 60, || async {
        let failed = events_with_reason(&client, "FailedScheduling").await?;
        Ok(failed.iter().any(|e| e.involved_object.name.as_deref() == Some("max")).then_some(()))
    })
    .await?;
    let failed = events_with_reason(&client, "FailedScheduling").await?;
    let about = |name: &str| failed.iter().filter(|e| e.involved_object.name.as_deref() == Some(name)).count();
    assert!(about("first") == 0 && about("after") == 0, "schedulable pods have no failures: {failed:?}");
    // Still scheduling after it: the scheduler did not die on it.
    pods.create(&PostParams::default(), &pod("later", &["100m"])?).await?;
    eventually("a later pod bound", 60, || bound("later")).await?;
    plane.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_unschedulable_pods_update_one_event_each() -> Result<()> {
    const PODS: usize = 200;
    let plane = start().await?;
    let client = plane.client.clone();
    create_node(&client, "small", "1").await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let started = std::time::Instant::now();
    for i in 0..PODS {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("big-{i}"), "labels": {"app": "big"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "2"}}}]}
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
    }
    let message = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";
    let failed = || async {
        let events = events_with_reason(&client, "FailedScheduling").await?;
        anyhow::Ok(events.into_iter().filter(|e| e.message.as_deref() == Some(message)).collect::<Vec<_>>())
    };
    eventually("a FailedScheduling event for every pod", 120, || async {
        Ok((failed().await?.len() >= PODS).then_some(()))
    })
    .await?;
    // The scheduler retries them; repeats update the same Events.
    let events = eventually("repeated FailedScheduling counted on existing events", 120, || async {
        let events = failed().await?;
        Ok((events.iter().filter(|e| e.count.unwrap_or(0) > 1).count() >= PODS).then_some(events))
    })
    .await?;
    let counts: Vec<i32> = events.iter().map(|e| e.count.unwrap_or(0)).collect();
    eprintln!(
        "{PODS} unschedulable pods after {:?}: {} FailedScheduling Events, counts {}..={}, {} attempts in all",
        started.elapsed(),
        events.len(),
        counts.iter().min().unwrap_or(&0),
        counts.iter().max().unwrap_or(&0),
        counts.iter().map(|c| i64::from(*c)).sum::<i64>(),
    );
    let mut per_pod = std::collections::BTreeMap::<String, usize>::new();
    for event in &events {
        *per_pod.entry(event.involved_object.name.clone().unwrap_or_default()).or_default() += 1;
    }
    assert_eq!(per_pod.len(), PODS, "every pod has its event");
    assert!(per_pod.values().all(|n| *n == 1), "one Event per pod, not one per attempt: {per_pod:?}");
    assert!(
        events
            .iter()
            .all(|e| e.last_timestamp.as_ref().map(|t| t.0) > e.first_timestamp.as_ref().map(|t| t.0)
                || e.count == Some(1)),
        "repeats move lastTimestamp"
    );
    let described = plane.kubectl(&["describe", "pod", "big-0"]).await?;
    assert!(described.contains("FailedScheduling") && described.contains(message), "{described}");
    assert!(described.contains("(x"), "kubectl shows the count: {described}");
    plane.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_object_is_reported_once_per_failure_streak() -> Result<()> {
    use bosun_control::controllers::events::{Recorder, NORMAL};
    use bosun_control::controllers::failures::{self, Failure, Reporter};
    use bosun_control::controllers::queue::{ObjectKey, Retry, WorkQueue};
    use kube::runtime::{reflector, watcher};

    let dir = tempfile::tempdir()?;
    let api = support::start_apiserver(dir.path()).await?;
    let client = api.kube_client().await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let d = eventually("deployment created", 60, || async {
        Ok(Some(deployments.create(&PostParams::default(), &deployment("bad", 1, json!({}))?).await?))
    })
    .await?;
    let (store, mut writer) = reflector::store::<Deployment>();
    writer.apply_watcher_event(&watcher::Event::Apply(d.clone()));
    let recorder = Recorder::new(client.clone(), "deployment-controller");
    let token = CancellationToken::new();
    let queue: WorkQueue<ObjectKey> = WorkQueue::new(token.clone());
    let mut retry = Retry::new("deployment").reporting(Reporter::for_store(recorder.clone(), store));
    let key = ObjectKey::of(&d.metadata);
    let fail = || async { Err::<Option<Duration>, _>("cannot compute the rollout") };
    let panics = || async {
        let surge = std::hint::black_box(i32::MAX);
        Ok::<_, &str>(surge.checked_add(2).map(|_| None).expect("attempt to add with overflow"))
    };
    // One streak of three failures (one of them a panic), a success, then
    // a new streak.
    retry.finish(&queue, key.clone(), failures::guard(fail()).await);
    retry.finish(&queue, key.clone(), failures::guard(panics()).await);
    retry.finish(&queue, key.clone(), failures::guard(fail()).await);
    retry.finish(&queue, key.clone(), Ok::<_, Failure<&str>>(None));
    retry.finish(&queue, key.clone(), failures::guard(fail()).await);
    // Events are posted in order: once the marker is there, so are they.
    recorder.publish(&d, NORMAL, "Marker", "after the failures").await;
    eventually("marker event", 60, || async {
        Ok((!events_with_reason(&client, "Marker").await?.is_empty()).then_some(()))
    })
    .await?;
    let reported = events_with_reason(&client, failures::REASON).await?;
    assert_eq!(reported.len(), 1, "identical reports share one Event: {reported:?}");
    let event = &reported[0];
    assert_eq!(event.count, Some(2), "two streaks, each reported once");
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.involved_object.uid, d.metadata.uid);
    assert_eq!(
        event.message.as_deref(),
        Some("deployment controller could not process this object: cannot compute the rollout")
    );
    // The key is retried with backoff (the queue gets it back).
    let requeued = tokio::time::timeout(Duration::from_secs(60), queue.next()).await?;
    assert_eq!(requeued, Some(key));
    token.cancel();
    api.token.cancel();
    Ok(())
}
