//! Pod worker against the fake CRI runtime (served over a unix socket and
//! driven through the real `CriClient`), with recording fakes for the API
//! side (statuses written through the real status manager): full
//! lifecycles, crash loops, pull failures, restart recovery.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bosun_agent::events::FakeEvents;
use bosun_agent::pod_api::FakePodApi;
use bosun_agent::pod_worker::{Exit, PodWorker, Timing, WorkerDeps};
use bosun_agent::status_manager::StatusManager;
use bosun_cri::testing::FakeCri;
use bosun_cri::{ClientOptions, CriClient};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const IMAGE: &str = "busybox:1.36";

struct Harness {
    _dir: tempfile::TempDir,
    fake: FakeCri,
    client: CriClient,
    api: Arc<FakePodApi>,
    events: Arc<FakeEvents>,
    deps: Arc<WorkerDeps>,
    root: std::path::PathBuf,
    token: CancellationToken,
}

impl Harness {
    async fn new(fake: FakeCri) -> anyhow::Result<(Self, bosun_cri::testing::FakeCriHandle)> {
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("cri.sock");
        let token = CancellationToken::new();
        let handle = fake.serve(&socket, token.clone())?;
        let client = CriClient::connect(&socket, ClientOptions::default()).await?;
        let api = Arc::new(FakePodApi::default());
        let events = Arc::new(FakeEvents::default());
        let root = dir.path().join("agent");
        let status = StatusManager::spawn(api.clone(), token.clone());
        let deps = Arc::new(WorkerDeps {
            runtime: Arc::new(client.clone()),
            api: api.clone(),
            status,
            events: events.clone(),
            root_dir: root.clone(),
            host_ip: "192.0.2.1".into(),
            dns: Default::default(),
            timing: Timing {
                transitioning: Duration::from_millis(50),
                steady: Duration::from_millis(200),
                orphan_grace: Duration::from_secs(0),
            },
            mounter: Arc::new(bosun_agent::volumes::FakeMounter::default()),
            objects: None,
            cgroups: bosun_agent::pod_cgroups::PodCgroups::disabled(),
            allocatable: bosun_agent::node::NodeAllocatable::of(
                &bosun_agent::host::HostInfo::read(),
                Default::default(),
            ),
            metrics: Default::default(),
        });
        Ok((Self { _dir: dir, fake, client, api, events, deps, root, token }, handle))
    }

    fn spawn(&self, pod: Pod) -> (watch::Sender<Option<Arc<Pod>>>, JoinHandle<Exit>, CancellationToken) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let (tx, rx) = watch::channel(Some(Arc::new(pod)));
        let token = self.token.child_token();
        let worker = PodWorker::new(self.deps.clone(), uid);
        let task = tokio::spawn(worker.run(rx, Arc::new(Notify::new()), token.clone()));
        (tx, task, token)
    }

    /// Waits (generously: a loaded machine) for a written status that passes `check`.
    async fn wait_status(&self, what: &str, check: impl Fn(&PodStatus) -> bool) -> anyhow::Result<PodStatus> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.api.last_status("default/web") {
                if check(&status) {
                    return Ok(status);
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("timed out waiting for {what}; last status {:#?}", self.api.last_status("default/web"))
    }

    async fn runtime_objects(&self, uid: &str) -> anyhow::Result<(usize, usize)> {
        let selector = std::collections::HashMap::from([("io.kubernetes.pod.uid".to_string(), uid.to_string())]);
        let sandboxes = self
            .client
            .list_pod_sandboxes(Some(bosun_cri::api::PodSandboxFilter {
                label_selector: selector.clone(),
                ..Default::default()
            }))
            .await?;
        let containers = self
            .client
            .list_containers(Some(bosun_cri::api::ContainerFilter { label_selector: selector, ..Default::default() }))
            .await?;
        Ok((sandboxes.len(), containers.len()))
    }
}

fn pod(restart_policy: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-web"},
        "spec": {
            "nodeName": "node-a",
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "app",
                "image": IMAGE,
                "env": [{"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
            }]
        }
    }))
    .expect("pod json")
}

fn container_state(status: &PodStatus) -> (Option<String>, i32, Option<String>) {
    let Some(cs) = status.container_statuses.as_ref().and_then(|c| c.first()) else {
        return (None, 0, None);
    };
    let state = cs.state.clone().unwrap_or_default();
    let label = if state.running.is_some() {
        Some("running".to_string())
    } else if let Some(w) = state.waiting {
        w.reason
    } else {
        state.terminated.and_then(|t| t.reason)
    };
    (label, cs.restart_count, cs.container_id.clone())
}

fn container_id(status: &PodStatus) -> anyhow::Result<String> {
    let (_, _, id) = container_state(status);
    let id = id.context("no container id")?;
    Ok(id.trim_start_matches("containerd://").to_string())
}

#[tokio::test]
async fn runs_restarts_backs_off_and_deletes_a_pod() -> anyhow::Result<()> {
    let (h, _server) = Harness::new(FakeCri::new().with_pullable(IMAGE)).await?;
    let (tx, task, _token) = h.spawn(pod("Always"));

    let running = h
        .wait_status("running", |s| {
            s.phase.as_deref() == Some("Running") && container_state(s).0.as_deref() == Some("running")
        })
        .await?;
    assert!(running.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty()));
    assert_eq!(running.host_ip.as_deref(), Some("192.0.2.1"));
    let ready = running.conditions.iter().flatten().find(|c| c.type_ == "Ready").map(|c| c.status.clone());
    assert_eq!(ready.as_deref(), Some("True"));
    assert_eq!(h.events.reasons(), vec!["Pulling", "Pulled", "Created", "Started"]);
    assert!(h.root.join("pods/default_web_uid-web").is_dir());

    // First crash restarts at once (restartCount 1).
    h.fake.exit_container(&container_id(&running)?, 1)?;
    let restarted = h
        .wait_status("restart", |s| container_state(s).1 == 1 && container_state(s).0.as_deref() == Some("running"))
        .await?;
    let last = restarted.container_statuses.as_ref().and_then(|c| c[0].last_state.clone()).and_then(|l| l.terminated);
    assert_eq!(last.map(|t| (t.exit_code, t.reason)), Some((1, Some("Error".to_string()))));

    // Second crash within the 10 s backoff: CrashLoopBackOff, no restart yet.
    h.fake.exit_container(&container_id(&restarted)?, 1)?;
    let backoff = h.wait_status("crash loop", |s| container_state(s).0.as_deref() == Some("CrashLoopBackOff")).await?;
    assert_eq!(container_state(&backoff).1, 1);
    assert_eq!(backoff.phase.as_deref(), Some("Running"));
    assert!(h.events.reasons().contains(&"BackOff".to_string()));
    let ready = backoff.conditions.iter().flatten().find(|c| c.type_ == "Ready").map(|c| c.status.clone());
    assert_eq!(ready.as_deref(), Some("False"));

    // Deletion: everything is stopped and removed, then the pod is deleted.
    let mut deleting = pod("Always");
    deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
    deleting.metadata.deletion_grace_period_seconds = Some(1);
    tx.send_replace(Some(Arc::new(deleting)));
    let exit = tokio::time::timeout(Duration::from_secs(10), task).await??;
    assert_eq!(exit, Exit::Finished);
    assert_eq!(h.api.deletions.lock().map(|d| d.clone()).unwrap_or_default(), vec!["default/web/uid-web"]);
    assert_eq!(h.runtime_objects("uid-web").await?, (0, 0));
    let calls = h.fake.calls();
    assert!(calls.iter().any(|c| c == "StopPodSandbox") && calls.iter().any(|c| c == "RemovePodSandbox"));
    Ok(())
}

#[tokio::test]
async fn failing_pull_reports_err_image_pull_then_back_off() -> anyhow::Result<()> {
    let (h, _server) = Harness::new(FakeCri::new()).await?;
    let (_tx, _task, token) = h.spawn(pod("Always"));
    let first = h.wait_status("pull error", |s| container_state(s).0.as_deref() == Some("ErrImagePull")).await?;
    assert_eq!(first.phase.as_deref(), Some("Pending"));
    let message = first
        .container_statuses
        .as_ref()
        .and_then(|c| c[0].state.clone())
        .and_then(|s| s.waiting)
        .and_then(|w| w.message);
    assert!(message.as_deref().is_some_and(|m| m.contains(IMAGE) && m.contains("not found")), "{message:?}");
    h.wait_status("pull backoff", |s| container_state(s).0.as_deref() == Some("ImagePullBackOff")).await?;
    let recorded = h.events.recorded.lock().map(|r| r.clone()).unwrap_or_default();
    assert!(recorded.iter().any(|(_, _, reason, msg)| reason == "Failed" && msg.contains(IMAGE)));
    assert!(recorded.iter().any(|(_, _, reason, _)| reason == "BackOff"));
    // Within the 10 s backoff the image is pulled once only.
    let pulls = h.fake.calls().iter().filter(|c| c.as_str() == "PullImage").count();
    assert_eq!(pulls, 1);
    token.cancel();
    Ok(())
}

#[tokio::test]
async fn restarted_worker_recovers_from_the_runtime() -> anyhow::Result<()> {
    let (h, _server) = Harness::new(FakeCri::new().with_pullable(IMAGE)).await?;
    let (_tx, task, token) = h.spawn(pod("Always"));
    let running = h.wait_status("running", |s| container_state(s).0.as_deref() == Some("running")).await?;
    token.cancel();
    assert_eq!(task.await?, Exit::Cancelled);
    assert_eq!(h.runtime_objects("uid-web").await?, (1, 1));

    h.fake.clear_calls();
    // The API lost the status (someone wrote the pod: a new version), so
    // the status manager writes again even if the status is the same.
    h.api.statuses.lock().map(|mut s| s.clear()).ok();
    let mut rewritten = pod("Always");
    rewritten.metadata.resource_version = Some("2".into());
    let (_tx, _task, token) = h.spawn(rewritten);
    let recovered = h.wait_status("recovered", |s| container_state(s).0.as_deref() == Some("running")).await?;
    assert_eq!(container_id(&recovered)?, container_id(&running)?);
    assert_eq!(recovered.pod_ip, running.pod_ip);
    let calls = h.fake.calls();
    for call in ["RunPodSandbox", "CreateContainer", "StartContainer", "PullImage"] {
        assert!(!calls.iter().any(|c| c == call), "{call} after restart: {calls:?}");
    }
    token.cancel();
    Ok(())
}

#[tokio::test]
async fn never_policy_pod_succeeds_and_vanished_pod_is_removed() -> anyhow::Result<()> {
    let (h, _server) = Harness::new(FakeCri::new().with_pullable(IMAGE)).await?;
    let (tx, task, _token) = h.spawn(pod("Never"));
    let running = h.wait_status("running", |s| container_state(s).0.as_deref() == Some("running")).await?;
    h.fake.exit_container(&container_id(&running)?, 0)?;
    let done = h.wait_status("succeeded", |s| s.phase.as_deref() == Some("Succeeded")).await?;
    assert_eq!(container_state(&done).0.as_deref(), Some("Completed"));
    let ready = done.conditions.iter().flatten().find(|c| c.type_ == "Ready").and_then(|c| c.reason.clone());
    assert_eq!(ready.as_deref(), Some("PodCompleted"));

    // The pod disappears from the API: the worker removes it from the runtime.
    tx.send_replace(None);
    assert_eq!(tokio::time::timeout(Duration::from_secs(10), task).await??, Exit::Finished);
    assert_eq!(h.runtime_objects("uid-web").await?, (0, 0));
    assert!(h.api.deletions.lock().map(|d| d.is_empty()).unwrap_or(false));
    Ok(())
}

#[tokio::test]
async fn runtime_and_config_failures_surface_and_recover() -> anyhow::Result<()> {
    let (h, _server) = Harness::new(FakeCri::new().with_image(IMAGE)).await?;
    h.fake.fail_next("RunPodSandbox", tonic::Code::Unavailable);
    h.fake.fail_next("StartContainer", tonic::Code::Unavailable);
    let mut with_config = pod("Always");
    if let Some(spec) = with_config.spec.as_mut() {
        spec.containers[0].env = Some(vec![serde_json::from_value(json!(
            {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}}
        ))?]);
    }
    let (_tx, _task, token) = h.spawn(with_config);

    // The ConfigMap is missing: CreateContainerConfigError, with an Event.
    let held = h
        .wait_status("config error", |s| container_state(s).0.as_deref() == Some("CreateContainerConfigError"))
        .await?;
    assert_eq!(held.phase.as_deref(), Some("Pending"));
    let recorded = h.events.recorded.lock().map(|r| r.clone()).unwrap_or_default();
    assert!(recorded.iter().any(|(_, _, reason, _)| reason == "FailedCreatePodSandBox"));
    assert!(recorded.iter().any(|(_, _, reason, msg)| reason == "Failed" && msg.contains("configmap \"cfg\"")));

    let cm = serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"color": "blue"}}))?;
    h.api.config_maps.lock().map(|mut m| m.push(("default/cfg".to_string(), cm))).ok();
    // The first start fails once (RunContainerError), then the container runs.
    h.wait_status("start error", |s| container_state(s).0.as_deref() == Some("RunContainerError")).await?;
    let running = h.wait_status("running", |s| container_state(s).0.as_deref() == Some("running")).await?;
    assert_eq!(container_state(&running).1, 0);
    // The failed sandbox attempt is not reused.
    let sandboxes = h.client.list_pod_sandboxes(None).await?;
    let attempts: Vec<u32> = sandboxes.iter().filter_map(|s| s.metadata.as_ref().map(|m| m.attempt)).collect();
    assert_eq!(attempts, vec![1]);
    token.cancel();
    Ok(())
}

fn probed_pod() -> Pod {
    let mut pod = pod("Always");
    let container = &mut pod.spec.as_mut().expect("spec").containers[0];
    container.readiness_probe =
        serde_json::from_value(json!({"exec": {"command": ["ready"]}, "periodSeconds": 1})).ok();
    container.liveness_probe =
        serde_json::from_value(json!({"exec": {"command": ["alive"]}, "periodSeconds": 1, "failureThreshold": 1})).ok();
    pod
}

#[tokio::test]
async fn readiness_drives_ready_and_a_failed_liveness_probe_restarts() -> anyhow::Result<()> {
    let (h, _server) = Harness::new(FakeCri::new().with_pullable(IMAGE)).await?;
    let (_tx, _task, _token) = h.spawn(probed_pod());
    let ready = |s: &PodStatus| s.container_statuses.iter().flatten().any(|c| c.ready);
    // Ready once the readiness probe (fake exec: exit 0) passes.
    let running = h.wait_status("running", |s| container_state(s).0.as_deref() == Some("running")).await?;
    let ready_status = h.wait_status("ready", ready).await?;
    let condition = ready_status.conditions.iter().flatten().find(|c| c.type_ == "Ready").map(|c| c.status.clone());
    assert_eq!(condition.as_deref(), Some("True"));

    // Both probes now fail: Unhealthy, then Killing and a restart.
    let id = container_id(&running)?;
    let failing = bosun_cri::ExecOutput { stdout: b"down".to_vec(), stderr: vec![], exit_code: 1 };
    h.fake.set_exec_result(&id, failing);
    let mut restarted = false;
    for _ in 0..400 {
        if h.api.last_status("default/web").is_some_and(|s| container_state(&s).1 >= 1) {
            restarted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(restarted, "liveness failure restarts: {:#?}", h.api.last_status("default/web"));
    let recorded = h.events.recorded.lock().map(|r| r.clone()).unwrap_or_default();
    let has = |reason: &str, message: &str| recorded.iter().any(|e| e.2 == reason && e.3 == message);
    assert!(has("Unhealthy", "Liveness probe failed: down"), "{recorded:#?}");
    assert!(has("Killing", "Container app failed liveness probe, will be restarted"), "{recorded:#?}");
    Ok(())
}
