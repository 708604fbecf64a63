//! Pod manager + kubelet API against the fake CRI runtime: pods arrive on a
//! synthetic watch stream, run through workers, show up in `GET /pods`; logs
//! are served (tail, previous, follow until exit); orphans are swept.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bosun_agent::events::FakeEvents;
use bosun_agent::labels;
use bosun_agent::pod_api::FakePodApi;
use bosun_agent::pod_manager::{ManagerTiming, PodManager, PodRegistry};
use bosun_agent::pod_worker::{Timing, WorkerDeps};
use bosun_agent::server::{self, ServerState};
use bosun_agent::stats::locate::testing::FakeLocator;
use bosun_agent::stats::{StatsDeps, StatsProvider};
use bosun_cri::testing::FakeCri;
use bosun_cri::{api, ClientOptions, CriClient};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const IMAGE: &str = "busybox:1.36";

fn pod(name: &str, uid: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": uid},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": IMAGE}]}
    }))
    .expect("pod json")
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> anyhow::Result<T> {
    for _ in 0..200 {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("timed out waiting for {what}")
}

fn append(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

async fn containers_of(client: &CriClient, uid: &str) -> anyhow::Result<Vec<api::Container>> {
    let filter = api::ContainerFilter {
        label_selector: HashMap::from([(labels::POD_UID.to_string(), uid.to_string())]),
        ..Default::default()
    };
    Ok(client.list_containers(Some(filter)).await?)
}

#[tokio::test]
async fn manager_runs_pods_serves_logs_and_sweeps_orphans() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = CancellationToken::new();
    let fake = FakeCri::new().with_pullable(IMAGE);
    let _server = fake.serve(dir.path().join("cri.sock"), token.clone())?;
    let client = CriClient::connect(dir.path().join("cri.sock"), ClientOptions::default()).await?;

    // An orphan: a managed sandbox whose pod this node does not run.
    let mut ghost = bosun_agent::runtime_spec::sandbox_config(
        &pod("ghost", "uid-ghost", "node-a"),
        0,
        dir.path(),
        &Default::default(),
    );
    ghost.labels.insert(labels::MANAGED_BY.into(), "true".into());
    client.run_pod_sandbox(&ghost, "").await?;

    let root = dir.path().join("agent");
    let api = Arc::new(FakePodApi::default());
    let deps = Arc::new(WorkerDeps {
        runtime: Arc::new(client.clone()),
        api: api.clone(),
        status: bosun_agent::status_manager::StatusManager::spawn(api, token.clone()),
        events: Arc::new(FakeEvents::default()),
        root_dir: root.clone(),
        host_ip: "127.0.0.1".into(),
        dns: Default::default(),
        timing: Timing {
            transitioning: Duration::from_millis(50),
            steady: Duration::from_millis(300),
            orphan_grace: Duration::ZERO,
        },
        mounter: Arc::new(bosun_agent::volumes::FakeMounter::default()),
        objects: None,
        cgroups: bosun_agent::pod_cgroups::PodCgroups::disabled(),
        allocatable: bosun_agent::node::NodeAllocatable::of(&bosun_agent::host::HostInfo::read(), Default::default()),
        metrics: Default::default(),
    });
    let registry = PodRegistry::default();
    let timing = ManagerTiming { relist: Duration::from_millis(100), sweep: Duration::from_millis(200) };
    let manager = PodManager::new(deps, "node-a", registry.clone(), timing);
    let (events_tx, events_rx) = mpsc::unbounded_channel::<Result<watcher::Event<Pod>, watcher::Error>>();
    let manager_task =
        tokio::spawn(manager.run(tokio_stream::wrappers::UnboundedReceiverStream::new(events_rx), token.clone()));
    events_tx.send(Ok(watcher::Event::Init))?;
    events_tx.send(Ok(watcher::Event::InitApply(pod("web", "uid-web", "node-a"))))?;
    events_tx.send(Ok(watcher::Event::InitApply(pod("elsewhere", "uid-x", "node-b"))))?;
    events_tx.send(Ok(watcher::Event::InitDone))?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // Stats: every container's cgroup is one temp-dir v1 cgroup.
    let cgroupfs = dir.path().join("cgroupfs");
    for (controller, file, text) in [
        ("cpuacct", "cpuacct.usage", "5000000000"),
        ("memory", "memory.usage_in_bytes", "4096"),
        ("memory", "memory.stat", "total_inactive_file 96\n"),
    ] {
        for path in ["", "k8s.io/c"] {
            std::fs::create_dir_all(cgroupfs.join(controller).join(path))?;
            std::fs::write(cgroupfs.join(controller).join(path).join(file), text)?;
        }
    }
    let hierarchy = bosun_cgroups::stats::Hierarchy::detect(&cgroupfs);
    let locator = FakeLocator { any_container: Some(hierarchy.dirs("/k8s.io/c")), ..Default::default() };
    let stats = Arc::new(StatsProvider::new(StatsDeps {
        runtime: Arc::new(client.clone()),
        locator: Arc::new(locator),
        registry: registry.clone(),
        hierarchy,
        node_name: "node-a".into(),
        memory_capacity_bytes: 1 << 30,
        min_window: Duration::from_secs(2),
        max_open_files: 64,
    }));
    let state = ServerState {
        stats,
        metrics: Arc::new(prometheus_client::registry::Registry::default()),
        registry: registry.clone(),
        root_dir: root.clone(),
        runtime: Arc::new(client.clone()),
        token: token.clone(),
        follow_poll: Duration::from_millis(20),
        stream_idle_timeout: Duration::from_secs(60),
    };
    // The routes alone (TLS and authorization are covered by the real-stack tests).
    let routes = server::router(state);
    tokio::spawn(async move { axum::serve(listener, routes).await });
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");

    assert_eq!(http.get(format!("{base}/healthz")).send().await?.text().await?, "ok");
    let running = eventually("web running", async || {
        let list = containers_of(&client, "uid-web").await.ok()?;
        list.into_iter().find(|c| c.state == api::ContainerState::ContainerRunning as i32)
    })
    .await?;
    let pods: serde_json::Value = http.get(format!("{base}/pods")).send().await?.json().await?;
    assert_eq!(pods["kind"], "PodList");
    let names: Vec<&str> =
        pods["items"].as_array().context("items")?.iter().filter_map(|p| p["metadata"]["name"].as_str()).collect();
    assert_eq!(names, vec!["web"]);

    // Stats of the running container, as the Summary API and Prometheus text.
    let summary: serde_json::Value = http.get(format!("{base}/stats/summary")).send().await?.json().await?;
    assert_eq!(summary["node"]["nodeName"], "node-a");
    assert_eq!(summary["pods"][0]["podRef"]["name"], "web");
    assert_eq!(summary["pods"][0]["containers"][0]["name"], "app");
    assert_eq!(summary["pods"][0]["containers"][0]["memory"]["workingSetBytes"], 4000);
    let resource = http.get(format!("{base}/metrics/resource")).send().await?.text().await?;
    assert!(
        resource.contains("container_cpu_usage_seconds_total{container=\"app\",namespace=\"default\",pod=\"web\"} 5 "),
        "{resource}"
    );

    // The orphan sandbox is swept; the pod of another node is never started.
    let ghost_filter = api::PodSandboxFilter {
        label_selector: HashMap::from([(labels::POD_UID.to_string(), "uid-ghost".to_string())]),
        ..Default::default()
    };
    eventually("orphan removed", async || {
        client.list_pod_sandboxes(Some(ghost_filter.clone())).await.ok()?.is_empty().then_some(())
    })
    .await?;
    assert!(containers_of(&client, "uid-x").await?.is_empty());

    // Logs: the runtime writes CRI-format files; fake it by hand.
    let log_dir = root.join("pods/default_web_uid-web/app");
    append(&log_dir.join("0.log"), "2026-11-21T11:00:00Z stdout F one\n2026-11-21T11:00:01Z stderr P tw\n2026-11-21T11:00:01Z stderr F o\n2026-11-21T11:00:02Z stdout F three\n")?;
    let logs_url = format!("{base}/containerLogs/default/web/app");
    assert_eq!(http.get(&logs_url).send().await?.text().await?, "one\ntwo\nthree\n");
    let tail = http.get(format!("{logs_url}?tailLines=1&timestamps=true")).send().await?.text().await?;
    assert_eq!(tail, "2026-11-21T11:00:02Z three\n");
    let previous = http.get(format!("{logs_url}?previous=true")).send().await?;
    assert_eq!(previous.status(), reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(
        http.get(format!("{base}/containerLogs/default/nope/app")).send().await?.status(),
        reqwest::StatusCode::NOT_FOUND
    );

    // Follow streams new lines and ends when the container exits.
    let mut follow = http.get(format!("{logs_url}?follow=true&tailLines=1")).send().await?;
    let first = follow.chunk().await?.context("first chunk")?;
    assert_eq!(&first[..], b"three\n");
    append(&log_dir.join("0.log"), "2026-11-21T11:00:03Z stdout F four\n")?;
    let next = tokio::time::timeout(Duration::from_secs(5), follow.chunk()).await??.context("second chunk")?;
    assert_eq!(&next[..], b"four\n");
    fake.exit_container(&running.id, 0)?;
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while follow.chunk().await?.is_some() {}
        anyhow::Ok(())
    })
    .await;
    assert!(matches!(end, Ok(Ok(()))), "follow did not end after exit: {end:?}");

    // Pod deleted from the API: the worker removes it from the runtime.
    events_tx.send(Ok(watcher::Event::Delete(pod("web", "uid-web", "node-a"))))?;
    eventually("web removed", async || containers_of(&client, "uid-web").await.ok()?.is_empty().then_some(())).await?;
    assert!(registry.list().is_empty());

    token.cancel();
    tokio::time::timeout(Duration::from_secs(5), manager_task).await??;
    Ok(())
}
