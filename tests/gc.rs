//! Garbage collection on the real stack (issue 9), one `bosun up` cluster
//! whose agent runs container and image GC every second
//! (`BOSUN_CONTAINER_GC_PERIOD_MS`, `BOSUN_IMAGE_GC_PERIOD_MS`) with a
//! KubeletConfiguration (`bosun up --kubelet-config`) that forces image GC:
//! `imageGCHighThresholdPercent: 1`, `imageGCLowThresholdPercent: 0`,
//! `imageMinimumGCAge: 5s` (old enough that an image just pulled is not
//! removed before its container is created).
//! - a crash-looping container does not accumulate dead containers (counted
//!   with CRI `ListContainers`): once its third instance exists, the first
//!   is gone and at most one dead instance stays; `kubectl logs --previous`
//!   still prints the previous instance's output;
//! - a deleted pod leaves no container and no sandbox;
//! - image GC removes the image only the deleted pod used, keeps the image a
//!   running pod uses and the pause (sandbox) image, and reports that it
//!   could not get down to 0% with a `FreeDiskSpaceFailed` Event on the Node.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bosun_cri::{api, ClientOptions, CriClient};
use bosun_images::fixtures::stop_signal_image;
use bosun_images::{publish, write_layout};
use support::cluster::Cluster;
use support::pods::wait_pod;

const LONG: Duration = Duration::from_secs(120);
const NODE: &str = "gc-node";
const POD_NAME: &str = "io.kubernetes.pod.name";

fn pod_manifest(name: &str, image: &str, script: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}},
           "spec": {{"terminationGracePeriodSeconds": 0,
             "containers": [{{"name": "main", "image": "{image}", "command": ["sh", "-c", "{script}"]}}]}}}}"#
    )
}

/// Containers of pod `name`: (attempt, exited) each.
async fn containers_of(cri: &CriClient, name: &str) -> Result<Vec<(u32, bool)>> {
    let filter = api::ContainerFilter {
        label_selector: [(POD_NAME.to_string(), name.to_string())].into(),
        ..Default::default()
    };
    Ok(cri
        .list_containers(Some(filter))
        .await?
        .iter()
        .map(|c| {
            let attempt = c.metadata.as_ref().map_or(0, |m| m.attempt);
            (attempt, c.state == api::ContainerState::ContainerExited as i32)
        })
        .collect())
}

/// Waits (polling every 200 ms) until `check` holds; `what` names it.
fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<Option<String>>) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let state = check()?;
        let Some(state) = state else { return Ok(()) };
        ensure!(Instant::now() < deadline, "{what}: not within {timeout:?}; last seen: {state}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn has_image(images: &[api::Image], reference: &str) -> bool {
    images.iter().any(|i| i.repo_tags.iter().any(|t| t == reference))
}

#[test]
fn gc_removes_dead_containers_sandboxes_and_unused_images() -> Result<()> {
    // Inherited by `bosun up` and its agent; set before any thread starts.
    std::env::set_var("BOSUN_CONTAINER_GC_PERIOD_MS", "1000");
    std::env::set_var("BOSUN_IMAGE_GC_PERIOD_MS", "1000");
    let work = tempfile::tempdir()?;
    let config = work.path().join("kubelet-config.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
         imageGCHighThresholdPercent: 1\nimageGCLowThresholdPercent: 0\nimageMinimumGCAge: 5s\n",
    )?;
    let cluster = Cluster::start_with(NODE, &["--kubelet-config".into(), config.display().to_string()])?;
    let runtime = tokio::runtime::Runtime::new()?;
    let cri = runtime.block_on(CriClient::connect(cluster.cri_socket(), ClientOptions::default()))?;
    let app = format!("{}/bosun/app:1.0", cluster.registry);
    let pause = format!("{}/bosun/pause:1.0", cluster.registry);
    let layout = write_layout(&work.path().join("app-stopsignal"), &stop_signal_image(Path::new("/bin/busybox")))?;
    let other = publish::push(&layout, &cluster.registry)?;

    for manifest in [
        pod_manifest("keeper", &app, "sleep 3600"),
        pod_manifest("crasher", &app, "echo instance-$RANDOM; sleep 1; exit 1"),
        pod_manifest("other-image", &other, "sleep 3600"),
    ] {
        let (ok, _, stderr) = cluster.apply_stdin(&manifest)?;
        ensure!(ok, "create: {stderr}");
    }
    for name in ["keeper", "other-image"] {
        wait_pod(&cluster, name, "running", LONG, |p| p["status"]["phase"] == "Running")?;
    }

    crash_loop_keeps_one_dead_instance(&cluster, &runtime, &cri)?;
    deleted_pod_leaves_nothing(&cluster, &runtime, &cri)?;
    unused_image_is_removed(&cluster, &runtime, &cri, &other, &app, &pause)
}

fn crash_loop_keeps_one_dead_instance(
    cluster: &Cluster,
    runtime: &tokio::runtime::Runtime,
    cri: &CriClient,
) -> Result<()> {
    // The third instance (attempt 2) comes after two backoffs. The pod
    // worker leaves dead instances alone: removing the first one, and its
    // log file, is GC's doing.
    let uid = cluster.json(&["get", "pod", "crasher"])?["metadata"]["uid"].as_str().context("uid")?.to_string();
    let first_log = cluster.dir.join(format!("agent/pods/default_crasher_{uid}/main/0.log"));
    wait_until("crasher's first instance garbage collected once its third exists", LONG, || {
        let containers = runtime.block_on(containers_of(cri, "crasher"))?;
        let max = containers.iter().map(|c| c.0).max().unwrap_or(0);
        let dead = containers.iter().filter(|c| c.1).count();
        let done = max >= 2
            && containers.len() <= 2
            && dead <= 1
            && !containers.iter().any(|c| c.0 == 0)
            && !first_log.exists();
        Ok((!done).then(|| format!("{containers:?}, first log present: {}", first_log.exists())))
    })?;
    ensure!(first_log.with_file_name("1.log").exists(), "the kept dead instance keeps its log");
    let containers = runtime.block_on(containers_of(cri, "crasher"))?;
    println!("crasher's containers (attempt, exited) after GC: {containers:?}");
    let max = containers.iter().map(|c| c.0).max().unwrap_or(0);
    ensure!(
        containers.iter().all(|c| c.0 + 1 >= max),
        "only the current and the previous instance are left: {containers:?}"
    );
    let logs = cluster.kubectl_ok(&["logs", "crasher", "--previous"])?;
    println!("logs --previous: {logs:?}");
    ensure!(logs.contains("instance-"), "logs --previous prints the previous instance: {logs:?}");
    Ok(())
}

fn deleted_pod_leaves_nothing(cluster: &Cluster, runtime: &tokio::runtime::Runtime, cri: &CriClient) -> Result<()> {
    let pod = cluster.json(&["get", "pod", "other-image"])?;
    let uid = pod["metadata"]["uid"].as_str().context("uid")?.to_string();
    cluster.kubectl_ok(&["delete", "pod", "other-image", "--wait=false"])?;
    wait_until("the deleted pod's containers and sandboxes removed", LONG, || {
        let containers = runtime.block_on(containers_of(cri, "other-image"))?;
        let sandboxes: Vec<String> = runtime
            .block_on(cri.list_pod_sandboxes(None))?
            .into_iter()
            .filter(|s| s.metadata.as_ref().is_some_and(|m| m.uid == uid))
            .map(|s| s.id)
            .collect();
        let done = containers.is_empty() && sandboxes.is_empty();
        Ok((!done).then(|| format!("containers {containers:?}, sandboxes {sandboxes:?}")))
    })
}

fn unused_image_is_removed(
    cluster: &Cluster,
    runtime: &tokio::runtime::Runtime,
    cri: &CriClient,
    other: &str,
    app: &str,
    pause: &str,
) -> Result<()> {
    wait_until("the unused image removed by image GC", LONG, || {
        let images = runtime.block_on(cri.list_images())?;
        let tags: Vec<&String> = images.iter().flat_map(|i| &i.repo_tags).collect();
        ensure!(has_image(&images, app), "the image running pods use stays: {tags:?}");
        ensure!(has_image(&images, pause), "the sandbox image stays: {tags:?}");
        Ok(has_image(&images, other).then(|| format!("{tags:?}")))
    })?;
    // Nothing else is unused, so 0% is out of reach: upstream's Event.
    wait_until("a FreeDiskSpaceFailed Event on the Node", LONG, || {
        let events = cluster.json(&["get", "events", "-A"])?;
        let found = events["items"].as_array().into_iter().flatten().any(|e| {
            e["reason"] == "FreeDiskSpaceFailed"
                && e["involvedObject"]["kind"] == "Node"
                && e["involvedObject"]["name"] == NODE
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Failed to garbage collect required amount of images"))
        });
        Ok((!found).then(|| "none yet".to_string()))
    })?;
    // The pods that use the images still run.
    for name in ["keeper", "crasher"] {
        ensure!(cluster.json(&["get", "pod", name])?["status"]["phase"] == "Running", "{name} still runs");
    }
    Ok(())
}
