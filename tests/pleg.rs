//! The evented lifecycle (PLEG) and static pods on the real stack (`bosun
//! up`, real kubectl, real containerd):
//! - a container's exit is seen from containerd's event stream: with the
//!   relist slowed to 60 s (and the workers' own steady re-sync at 10 s),
//!   every restart starts within a few seconds (measured from the runtime's
//!   own exit and create timestamps; these include CreateContainer, which
//!   is slow on a loaded machine; `benches/restart.rs` gives the numbers);
//! - static pods: a manifest in `--pod-manifest-path` runs while control-lite
//!   is down (its container's exit restarts at event speed there too), its
//!   mirror pod appears once control-lite is back, deleting the mirror does
//!   not touch the static pod (the mirror comes back), changing the file
//!   replaces the pod (the new mirror shows its status), removing it stops
//!   the pod and its mirror.

mod support;

use std::time::Duration;

use std::future::Future;

use anyhow::{bail, ensure, Context, Result};
use bosun_cri::CriClient;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::cluster::Cluster;
use support::restarts::{crashing_pods, first_restart_gaps, quantile, runtime_pods, unix_now};

const STATIC_NAME: &str = "static-web-pleg-node";

/// Pods whose first restart is timed.
const CRASHERS: usize = 8;
/// The agent's relist period in this test (`BOSUN_RELIST_PERIOD_MS`).
const RELIST_MS: &str = "60000";
/// Upper bound on every exit -> restart gap. Without events the next sync
/// would come from the worker's 10 s steady timer, uniform in 0..10 s: all
/// of `CRASHERS` gaps under this bound by chance has probability 0.4^8.
const EVENTED_BOUND: Duration = Duration::from_secs(4);
const DEADLINE: Duration = Duration::from_secs(120);

fn uids(cluster: &Cluster, selector: &str, count: usize) -> Result<Vec<String>> {
    let pods = cluster.json(&["get", "pods", "-l", selector])?;
    let uids: Vec<String> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string))
        .collect();
    ensure!(uids.len() == count, "expected {count} pods for {selector}, found {}", uids.len());
    Ok(uids)
}

/// Exits are restarted at event speed, not at the next relist or timer.
async fn evented_restart(cluster: &Cluster) -> Result<()> {
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    // Exits one second apart, after the pods have started.
    let first_exit = unix_now() + 10;
    let manifest = crashing_pods(&image, "crasher", CRASHERS, |i| first_exit + i as u64);
    let (ok, _, err) = cluster.apply_stdin(&manifest)?;
    ensure!(ok, "applying crashers: {err}");
    let uids = uids(cluster, "app=crasher", CRASHERS)?;
    let cri = bosun_cri::CriClient::connect(&cluster.cri_socket(), bosun_cri::ClientOptions::default()).await?;
    let gaps = first_restart_gaps(&cri, &uids, DEADLINE).await?;
    let ms: Vec<u128> = gaps.iter().map(Duration::as_millis).collect();
    let (p50, max) = (quantile(&gaps, 0.5), quantile(&gaps, 1.0));
    println!("exit -> restart created (ms): {ms:?}; p50 {} ms", p50.as_millis());
    ensure!(max < EVENTED_BOUND, "an exit was not restarted at event speed: {ms:?}");
    cluster.kubectl_ok(&["delete", "pods", "-l", "app=crasher", "--wait=false"])?;
    let log = std::fs::read_to_string(cluster.dir.join("logs/agent.log"))?;
    ensure!(log.contains("subscribed to containerd task events"), "the agent subscribed to containerd's events");
    Ok(())
}

/// Polls `check` until it gives a value, up to `DEADLINE`.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= until {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn static_manifest(image: &str, script: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\n  labels:\n    tier: static\nspec:\n  \
         terminationGracePeriodSeconds: 0\n  containers:\n    - name: main\n      image: {image}\n      \
         command: [\"sh\", \"-c\", \"{script}\"]\n"
    )
}

/// The one runtime pod named `STATIC_NAME` with a running container.
async fn running_static(cri: &CriClient) -> Result<Option<String>> {
    let pods = runtime_pods(cri, STATIC_NAME).await?;
    Ok(pods.into_iter().find(|(_, running)| *running > 0).map(|(uid, _)| uid))
}

/// The mirror pod, if the API has one (and is reachable).
fn mirror(cluster: &Cluster) -> Result<Option<Value>> {
    let (ok, out, _) = cluster.kubectl(&["get", "pod", STATIC_NAME, "-o", "json", "--ignore-not-found"])?;
    if !ok || out.trim().is_empty() {
        return Ok(None);
    }
    let pod: Value = serde_json::from_str(&out)?;
    Ok(pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string().then_some(pod))
}

fn api_reachable(cluster: &Cluster) -> bool {
    std::net::TcpStream::connect_timeout(&cluster.api.parse().expect("api address"), Duration::from_secs(1)).is_ok()
}

/// A static pod runs, and restarts at event speed, with control-lite down.
async fn static_pod_without_api(cluster: &Cluster, cri: &CriClient, manifest: &std::path::Path) -> Result<String> {
    let (up, (control, _)) = (cluster.up_pid()?, cluster.component_pids()?);
    // Hold the supervisor so it cannot restart control-lite, then stop it.
    kill(Pid::from_raw(up), Signal::SIGSTOP)?;
    kill(Pid::from_raw(control), Signal::SIGKILL)?;
    wait_for("control-lite to be down", || async { Ok((!api_reachable(cluster)).then_some(())) }).await?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    let exit_at = unix_now() + 12;
    let script = format!("while [ $(date +%s) -lt {exit_at} ]; do sleep 0.05; done; exit 3");
    std::fs::write(manifest, static_manifest(&image, &script))?;
    let uid = wait_for("the static pod to run", || running_static(cri)).await?;
    let gaps = first_restart_gaps(cri, std::slice::from_ref(&uid), DEADLINE).await?;
    println!("static pod, API down: exit -> restart created {} ms", gaps[0].as_millis());
    ensure!(gaps[0] < EVENTED_BOUND, "static pod restart took {:?}", gaps[0]);
    ensure!(!api_reachable(cluster), "control-lite stayed down throughout");
    kill(Pid::from_raw(up), Signal::SIGCONT)?;
    Ok(uid)
}

async fn static_pods(cluster: &Cluster) -> Result<()> {
    let cri = CriClient::connect(&cluster.cri_socket(), bosun_cri::ClientOptions::default()).await?;
    let dir = cluster.dir.join("manifests");
    std::fs::create_dir_all(&dir)?;
    let manifest = dir.join("static-web.yaml");
    let result = static_pod_without_api(cluster, &cri, &manifest).await;
    // Whatever happened, let `bosun up` run again.
    kill(Pid::from_raw(cluster.up_pid()?), Signal::SIGCONT)?;
    let uid = result?;

    // Back online: the mirror appears, owned by the Node, for this file version.
    let first = wait_for("the mirror pod", || async { mirror(cluster) }).await?;
    let owner = &first["metadata"]["ownerReferences"][0];
    ensure!(owner["kind"] == "Node" && owner["name"] == "pleg-node", "mirror owned by the Node: {owner}");
    ensure!(first["metadata"]["annotations"]["kubernetes.io/config.mirror"] == uid.as_str(), "mirror of this file");

    // Deleting the mirror does not touch the static pod; the mirror comes back.
    let first_uid = first["metadata"]["uid"].as_str().context("mirror uid")?.to_string();
    cluster.kubectl_ok(&["delete", "pod", STATIC_NAME, "--wait=false"])?;
    wait_for("a new mirror pod", || async {
        Ok(mirror(cluster)?.filter(|m| m["metadata"]["uid"] != first_uid.as_str()))
    })
    .await?;
    // (Its container crash-loops by now: it stays the same pod, not a new one.)
    let pods: Vec<String> = runtime_pods(&cri, STATIC_NAME).await?.into_iter().map(|(uid, _)| uid).collect();
    ensure!(pods == [uid.clone()], "the static pod was left alone: {pods:?}");

    // A changed file replaces the pod (new UID) and its mirror.
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    std::fs::write(&manifest, static_manifest(&image, "sleep 3600"))?;
    let new_uid = wait_for("the changed static pod", || async {
        let pods = runtime_pods(&cri, STATIC_NAME).await?;
        Ok(match pods.as_slice() {
            [(new, running)] if *new != uid && *running > 0 => Some(new.clone()),
            _ => None,
        })
    })
    .await?;
    // Its mirror follows, and carries the static pod's status.
    wait_for("the mirror of the new version, Running", || async {
        Ok(mirror(cluster)?.filter(|m| {
            m["metadata"]["annotations"]["kubernetes.io/config.mirror"] == new_uid.as_str()
                && m["status"]["phase"] == "Running"
        }))
    })
    .await?;

    // Removing the file stops the pod and removes its mirror.
    std::fs::remove_file(&manifest)?;
    wait_for("the static pod to be gone", || async {
        Ok(runtime_pods(&cri, STATIC_NAME).await?.is_empty().then_some(()))
    })
    .await?;
    wait_for("the mirror to be gone", || async { Ok(mirror(cluster)?.is_none().then_some(())) }).await?;
    Ok(())
}

#[test]
fn evented_lifecycle_and_static_pods() -> Result<()> {
    // Only events can restart containers quickly: the relist is 60 s here.
    std::env::set_var("BOSUN_RELIST_PERIOD_MS", RELIST_MS);
    let cluster = Cluster::start("pleg-node")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(evented_restart(&cluster)).context("evented restart")?;
    runtime.block_on(static_pods(&cluster)).context("static pods")?;
    Ok(())
}
