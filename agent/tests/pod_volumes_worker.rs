//! The pod worker with volumes, against the fake CRI runtime and recording
//! fakes: a pod whose ConfigMap volume source is missing gets a FailedMount
//! Event and no sandbox; once the ConfigMap exists the pod starts with the
//! files in place (through the `..data` link), and deleting the pod removes
//! its volume directories and unmounts its tmpfs. With the node's object
//! watches, a ConfigMap change reaches the file at once (no poll).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use bosun_agent::events::FakeEvents;
use bosun_agent::pod_api::FakePodApi;
use bosun_agent::pod_worker::{Exit, PodWorker, Timing, WorkerDeps};
use bosun_agent::volumes::{FakeMounter, Mounter};
use bosun_cri::testing::FakeCri;
use bosun_cri::{ClientOptions, CriClient};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

const IMAGE: &str = "busybox:1.36";

fn pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "vol", "namespace": "default", "uid": "uid-vol"},
        "spec": {
            "nodeName": "node-a",
            "terminationGracePeriodSeconds": 1,
            "volumes": [
                {"name": "cfg", "configMap": {"name": "settings"}},
                {"name": "scratch", "emptyDir": {"medium": "Memory"}}
            ],
            "containers": [{
                "name": "app",
                "image": IMAGE,
                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}, {"name": "scratch", "mountPath": "/tmp"}]
            }]
        }
    }))
    .expect("pod json")
}

async fn eventually(what: &str, check: impl Fn() -> bool) -> anyhow::Result<()> {
    for _ in 0..400 {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("timed out waiting for {what}")
}

#[tokio::test]
async fn missing_config_map_holds_the_pod_until_it_exists_and_deletion_cleans_up() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("cri.sock");
    let token = CancellationToken::new();
    let fake = FakeCri::new().with_pullable(IMAGE);
    let _server = fake.serve(&socket, token.clone())?;
    let client = CriClient::connect(&socket, ClientOptions::default()).await?;
    let api = Arc::new(FakePodApi::default());
    let events = Arc::new(FakeEvents::default());
    let mounter = Arc::new(FakeMounter::default());
    let root = dir.path().join("agent");
    let deps = Arc::new(WorkerDeps {
        runtime: Arc::new(client),
        api: api.clone(),
        status: bosun_agent::status_manager::StatusManager::spawn(api.clone(), token.clone()),
        events: events.clone(),
        root_dir: root.clone(),
        host_ip: "192.0.2.1".into(),
        dns: Default::default(),
        timing: Timing {
            transitioning: Duration::from_millis(50),
            steady: Duration::from_millis(200),
            orphan_grace: Duration::ZERO,
        },
        mounter: mounter.clone(),
        objects: None,
        cgroups: bosun_agent::pod_cgroups::PodCgroups::disabled(),
        allocatable: bosun_agent::node::NodeAllocatable::of(&bosun_agent::host::HostInfo::read(), Default::default()),
        metrics: Default::default(),
    });
    let (tx, rx) = watch::channel(Some(Arc::new(pod())));
    let task = tokio::spawn(PodWorker::new(deps, "uid-vol".into()).run(rx, Arc::new(Notify::new()), token.clone()));

    eventually("FailedMount", || events.reasons().contains(&"FailedMount".to_string())).await?;
    let recorded = events.recorded.lock().map(|r| r.clone()).unwrap_or_default();
    assert!(recorded.iter().any(|(_, _, r, m)| r == "FailedMount" && m.contains("configmap \"settings\" not found")));
    assert!(!fake.calls().iter().any(|c| c == "RunPodSandbox"), "no sandbox without the volume");
    let waiting = || {
        let status = api.last_status("default/vol")?;
        status.container_statuses?.first()?.state.clone()?.waiting
    };
    eventually("waiting with the mount failure", || {
        waiting().is_some_and(|w| {
            w.reason.as_deref() == Some("ContainerCreating")
                && w.message.is_some_and(|m| m.contains("\"settings\" not found"))
        })
    })
    .await?;

    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"mode": "fast"}}))?;
    api.config_maps.lock().map_err(|_| anyhow::anyhow!("lock"))?.push(("default/settings".into(), cm));
    eventually("container started", || fake.calls().iter().any(|c| c == "StartContainer")).await?;
    let volumes = root.join("pods/uid-vol/volumes");
    let file = std::fs::read_to_string(volumes.join("kubernetes.io~configmap/cfg/mode"))?;
    assert_eq!(file, "fast");
    let scratch = volumes.join("kubernetes.io~empty-dir/scratch");
    assert_eq!(mounter.mount_points_under(&volumes)?, vec![scratch]);

    let mut deleting = pod();
    deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
    tx.send_replace(Some(Arc::new(deleting)));
    let exit = tokio::time::timeout(Duration::from_secs(10), task).await??;
    assert_eq!(exit, Exit::Finished);
    assert!(mounter.mount_points_under(Path::new("/"))?.is_empty(), "tmpfs unmounted");
    assert!(!root.join("pods/uid-vol").exists(), "volume dirs removed");
    token.cancel();
    Ok(())
}

#[tokio::test]
async fn a_watched_config_map_change_reaches_the_file_without_a_poll() -> anyhow::Result<()> {
    use bosun_agent::object_watch::{FakeObjectSource, Kind, Object, ObjectEvent, ObjectKey, ObjectWatches};
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("cri.sock");
    let token = CancellationToken::new();
    let fake = FakeCri::new().with_pullable(IMAGE);
    let _server = fake.serve(&socket, token.clone())?;
    let client = CriClient::connect(&socket, ClientOptions::default()).await?;
    let api = Arc::new(FakePodApi::default());
    let source = Arc::new(FakeObjectSource::default());
    let root = dir.path().join("agent");
    let deps = Arc::new(WorkerDeps {
        runtime: Arc::new(client),
        api: api.clone(),
        status: bosun_agent::status_manager::StatusManager::spawn(api.clone(), token.clone()),
        events: Arc::new(FakeEvents::default()),
        root_dir: root.clone(),
        host_ip: "192.0.2.1".into(),
        dns: Default::default(),
        // A steady interval far beyond the test: only the watch can refresh.
        timing: Timing {
            transitioning: Duration::from_millis(50),
            steady: Duration::from_secs(3600),
            orphan_grace: Duration::ZERO,
        },
        mounter: Arc::new(FakeMounter::default()),
        objects: Some(ObjectWatches::new(source.clone(), token.clone())),
        cgroups: bosun_agent::pod_cgroups::PodCgroups::disabled(),
        allocatable: bosun_agent::node::NodeAllocatable::of(&bosun_agent::host::HostInfo::read(), Default::default()),
        metrics: Default::default(),
    });
    let (_tx, rx) = watch::channel(Some(Arc::new(pod())));
    let _task = tokio::spawn(PodWorker::new(deps, "uid-vol".into()).run(rx, Arc::new(Notify::new()), token.clone()));
    let key = ObjectKey { kind: Kind::ConfigMap, namespace: "default".into(), name: "settings".into() };
    let config_map = |mode: &str, version: &str| -> anyhow::Result<Object> {
        Ok(Object::ConfigMap(Arc::new(serde_json::from_value(json!({
            "metadata": {"name": "settings", "resourceVersion": version}, "data": {"mode": mode}
        }))?)))
    };
    eventually("the watch opened", || source.opened.lock().is_ok_and(|o| o.contains(&key))).await?;
    assert!(source.send(&key, ObjectEvent::Listed(Some(config_map("fast", "1")?))));
    let file = root.join("pods/uid-vol/volumes/kubernetes.io~configmap/cfg/mode");
    let reads = |want: &'static str| {
        let file = file.clone();
        move || std::fs::read_to_string(&file).is_ok_and(|f| f == want)
    };
    eventually("the listed content", reads("fast")).await?;
    eventually("container started", || fake.calls().iter().any(|c| c == "StartContainer")).await?;
    assert!(source.send(&key, ObjectEvent::Changed(config_map("slow", "2")?)));
    eventually("the changed content", reads("slow")).await?;
    token.cancel();
    Ok(())
}
