//! Restart recovery on the real stack (issue 9). One `bosun up` cluster;
//! the agent is killed with SIGKILL three times and `bosun up` starts it
//! again each time:
//! 1. with 30 pods of a Deployment running: no restartCount increment, no
//!    new sandbox, no status flip (a watch sees every write); a pod whose
//!    container exited while the agent was down shows it within 5 s of the
//!    agent's start; pods deleted meanwhile (forced and graceful, with tmpfs
//!    volumes) are gone within 30 s with no container, sandbox, directory,
//!    mount, CNI IP or cgroup left; a container made under an older
//!    spec-hash scheme is adopted (same id, restartCount 0) while one of
//!    this scheme with a stale hash is restarted;
//! 2. during a crash-loop back-off: the next restart still waits it out;
//! 3. during an image-pull back-off: the next pull still waits it out.
//!
//! `flock /tmp/bosun-host.lock cargo test -p bosun --test agent_restart`

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{ensure, Context, Result};
use bosun_agent::runtime_spec::{self, EnvSources};
use bosun_cri::{api, ClientOptions, CriClient};
use k8s_openapi::api::core::v1::Pod;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::cluster::Cluster;
use support::pods::{self, seconds};
use support::recovery::*;

const STEADY: usize = 30;

fn manifests(image: &str, pull_port: u16) -> String {
    let sleeper = |name: &str, app: &str, extra: &str| {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: {app}\nspec:\n  \
             terminationGracePeriodSeconds: 0\n{extra}  containers:\n    - name: main\n      image: {image}\n      \
             command: [\"sleep\", \"3600\"]\n"
        )
    };
    let volumes =
        "  volumes:\n    - name: secret\n      secret:\n        secretName: recovery\n    - name: memory\n      \
                   emptyDir:\n        medium: Memory\n    - name: info\n      downwardAPI:\n        items:\n          \
                   - path: name\n            fieldRef:\n              fieldPath: metadata.name\n";
    let mut all = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: recovery\nstringData:\n  token: s3cret\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: steady\nspec:\n  replicas: {STEADY}\n  selector:\n    \
         matchLabels:\n      app: steady\n  template:\n    metadata:\n      labels:\n        app: steady\n    spec:\n      \
         terminationGracePeriodSeconds: 0\n      containers:\n        - name: main\n          image: {image}\n          \
         command: [\"sleep\", \"3600\"]\n"
    );
    for i in 0..3 {
        let mut pod = sleeper(&format!("gone-{i}"), "gone", volumes);
        pod.push_str(
            "      volumeMounts:\n        - {name: secret, mountPath: /s}\n        - {name: memory, mountPath: /m}\n        \
             - {name: info, mountPath: /i}\n",
        );
        all.push_str(&pod);
    }
    all.push_str(&sleeper("adopt-older-scheme", "scheme", ""));
    all.push_str(&sleeper("stale-hash", "scheme", ""));
    all.push_str(&format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: exits-while-down\nspec:\n  restartPolicy: Never\n  \
         terminationGracePeriodSeconds: 0\n  containers:\n    - name: main\n      image: {image}\n      \
         command: [\"sh\", \"-c\", \"while [ ! -f /tmp/exit ]; do sleep 0.1; done; exit 3\"]\n\
         ---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: crashloop\nspec:\n  terminationGracePeriodSeconds: 0\n  \
         containers:\n    - name: main\n      image: {image}\n      command: [\"sh\", \"-c\", \"exit 1\"]\n\
         ---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: pull-backoff\nspec:\n  terminationGracePeriodSeconds: 0\n  \
         containers:\n    - name: main\n      image: 127.0.0.1:{pull_port}/recovery/missing:1\n"
    ));
    all
}

fn uid(pod: &Value) -> String {
    pod["metadata"]["uid"].as_str().unwrap_or_default().to_string()
}

fn pod_of(cluster: &Cluster, name: &str) -> Result<Value> {
    pods::pod(cluster, name)?.with_context(|| format!("pod {name} missing"))
}

/// The steady pods: name -> (uid, containerID, restartCount).
fn steady_pods(cluster: &Cluster) -> Result<BTreeMap<String, (String, String, i64)>> {
    let list = cluster.json(&["get", "pods", "-l", "app=steady"])?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let c = pods::container(p);
            let id = c["containerID"].as_str().unwrap_or_default().to_string();
            (p["metadata"]["name"].as_str().unwrap_or_default().to_string(), (uid(p), id, pods::restarts(p)))
        })
        .collect())
}

fn wait_steady(cluster: &Cluster) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let ready = cluster.running_pods("app in (steady,gone,scheme)")?.len();
        if ready == STEADY + 5 {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{ready} of {} pods ready", STEADY + 5);
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Replaces pod `name`'s running container with one made as an agent
/// with spec-hash scheme `scheme` and a hash of another scheme would
/// have made it; returns the new container's id. The agent must be stopped.
async fn remake_container(cluster: &Cluster, cri: &CriClient, name: &str, scheme: &str) -> Result<String> {
    let json = pod_of(cluster, name)?;
    let pod: Pod = serde_json::from_value(json.clone())?;
    let (old, ..) = containers_of(cri, &uid(&json)).await?.into_iter().next().context("no container")?;
    let status = cri.container_status(&old).await?;
    let sandbox_id =
        cri.list_containers(None).await?.into_iter().find(|c| c.id == old).context("listed")?.pod_sandbox_id;
    let sandbox = cri.pod_sandbox_status(&sandbox_id).await?;
    let attempt = sandbox.metadata.map(|m| m.attempt).unwrap_or_default();
    let root = std::fs::canonicalize(cluster.dir.join("agent"))?;
    let sandbox_config = runtime_spec::sandbox_config(&pod, attempt, &root, &Default::default());
    let spec = pod.spec.as_ref().context("spec")?.containers[0].clone();
    let mut config = runtime_spec::container_config(&pod, &spec, 0, &EnvSources::default())?;
    config.labels.insert(bosun_agent::spec_hash::SCHEME_LABEL.into(), scheme.into());
    config.annotations.insert(bosun_agent::spec_hash::ANNOTATION.into(), "9e3779b97f4a7c15".into());
    ensure!(status.state == api::ContainerState::ContainerRunning as i32, "{name} runs");
    cri.stop_container(&old, 0).await?;
    cri.remove_container(&old).await?;
    let id = cri.create_container(&sandbox_id, &config, &sandbox_config).await?;
    cri.start_container(&id).await?;
    Ok(id)
}

/// Waits until `due` (the next restart or pull, ns since the epoch, from
/// `next`) is at least `margin` away, then kills the agent; returns `due`
/// and the new agent's start. Retries at a later back-off step when the
/// new agent came up too late to prove anything.
fn kill_in_backoff(
    cluster: &Cluster,
    what: &str,
    margin: Duration,
    mut next: impl FnMut() -> Result<Option<i64>>,
) -> Result<(i64, SystemTime)> {
    let deadline = Instant::now() + Duration::from_secs(400);
    loop {
        ensure!(Instant::now() < deadline, "{what}: never killed the agent well inside a back-off");
        let Some(due) = next()? else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        if due - nanos(SystemTime::now()) < margin.as_nanos() as i64 {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let (_, started) = kill_agent(cluster)?;
        // Without saved state the new agent would act at once: it must
        // have started well before the due time to show anything.
        if nanos(started) < due - 2_000_000_000 {
            return Ok((due, started));
        }
        eprintln!("{what}: the new agent started too close to the back-off's end; trying the next step");
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

#[test]
fn agent_restart_recovers_pods_and_backoffs() -> Result<()> {
    let rt = runtime()?;
    let cluster = Cluster::start("recovery-node")?;
    let cri = rt.block_on(CriClient::connect(cluster.cri_socket(), ClientOptions::default()))?;
    let (pull_port, connections) = failing_registry()?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    let (ok, _, err) = cluster.apply_stdin(&manifests(&image, pull_port))?;
    ensure!(ok, "creating pods: {err}");
    wait_steady(&cluster)?;
    pods::wait_pod(&cluster, "exits-while-down", "running", Duration::from_secs(60), |p| {
        pods::container(p)["state"]["running"].is_object()
    })?;

    // Every write of a steady pod's status from here on.
    let watch_file = cluster.dir.join("steady-watch.json");
    let mut watch = std::process::Command::new("kubectl")
        .env("KUBECONFIG", &cluster.kubeconfig)
        .args(["get", "pods", "-l", "app=steady", "-w", "-o", "json", "--output-watch-events"])
        .stdout(std::fs::File::create(&watch_file)?)
        .spawn()?;
    let before = steady_pods(&cluster)?;
    ensure!(before.len() == STEADY, "{} steady pods", before.len());
    let sandboxes_before = rt.block_on(sandboxes_by_uid(&cri))?;

    // 1. The agent stops; meanwhile pods are deleted, a container exits and
    //    two containers are remade as other agents would have made them.
    let (_, agent) = cluster.component_pids()?;
    kill(Pid::from_raw(agent), Signal::SIGSTOP)?;
    let gone: Vec<(String, String, String)> = (0..3)
        .map(|i| {
            let p = pod_of(&cluster, &format!("gone-{i}"))?;
            let ip = p["status"]["podIP"].as_str().unwrap_or_default().to_string();
            Ok((format!("gone-{i}"), uid(&p), ip))
        })
        .collect::<Result<_>>()?;
    ensure!(!rt.block_on(leftovers(&cluster, &cri, &gone[0].1, &gone[0].2))?.is_empty(), "leftovers are seen");
    let adopted = rt.block_on(remake_container(&cluster, &cri, "adopt-older-scheme", "0"))?;
    let stale = rt.block_on(remake_container(&cluster, &cri, "stale-hash", bosun_agent::spec_hash::SCHEME))?;
    cluster.kubectl_ok(&["delete", "pod", "gone-0", "gone-1", "--force", "--grace-period=0", "--wait=false"])?;
    cluster.kubectl_ok(&["delete", "pod", "gone-2", "--wait=false"])?;
    let exits = uid(&pod_of(&cluster, "exits-while-down")?);
    let (exiting, ..) = rt.block_on(containers_of(&cri, &exits))?.into_iter().next().context("container")?;
    rt.block_on(cri.exec_sync(&exiting, vec!["touch".into(), "/tmp/exit".into()], Duration::from_secs(10)))?;
    let (_, started) = kill_agent(&cluster)?;
    kill(Pid::from_raw(agent), Signal::SIGCONT).ok();

    // The exit that happened while the agent was down shows within 5 s.
    let exited = pods::wait_pod(&cluster, "exits-while-down", "shown as exited", Duration::from_secs(60), |p| {
        pods::container(p)["state"]["terminated"]["exitCode"] == 3 && p["status"]["phase"] == "Failed"
    })?;
    let shown = pods::condition(&exited, "Ready").and_then(|c| seconds(&c["lastTransitionTime"])).context("Ready")?;
    let start_s = nanos(started) / 1_000_000_000;
    println!("exit while the agent was down shown {} s after the agent started", shown - start_s);
    ensure!(shown - start_s <= 5, "exit shown {} s after the agent started", shown - start_s);

    // Deleted pods: gone, with nothing left, within 30 s of the start.
    let deadline = started + Duration::from_secs(30);
    for (name, uid, ip) in &gone {
        loop {
            let api = pods::pod(&cluster, name)?.is_some_and(|p| p["metadata"]["uid"] == uid.as_str());
            let left = rt.block_on(leftovers(&cluster, &cri, uid, ip))?;
            if !api && left.is_empty() {
                break;
            }
            ensure!(SystemTime::now() < deadline, "{name} 30 s after the agent started: in API {api}, left {left:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    println!("deleted pods gone within {:?} of the agent's start", SystemTime::now().duration_since(started)?);

    // The steady pods are untouched; the older-scheme container adopted.
    let after = steady_pods(&cluster)?;
    ensure!(after == before, "steady pods changed: before {before:?}, after {after:?}");
    let sandboxes_after = rt.block_on(sandboxes_by_uid(&cri))?;
    for (uid, ..) in before.values() {
        ensure!(sandboxes_after.get(uid) == sandboxes_before.get(uid), "pod {uid}: sandboxes changed");
    }
    let adopt = pods::wait_pod(&cluster, "adopt-older-scheme", "ready", Duration::from_secs(30), pods::is_ready)?;
    ensure!(pods::restarts(&adopt) == 0, "adopted container restarted: {adopt:#}");
    let adopt_ids: Vec<String> = rt.block_on(containers_of(&cri, &uid(&adopt)))?.into_iter().map(|c| c.0).collect();
    ensure!(adopt_ids == vec![adopted.clone()], "older-scheme container kept: {adopt_ids:?} vs {adopted}");
    let restarted = pods::wait_pod(&cluster, "stale-hash", "restarted", Duration::from_secs(60), |p| {
        pods::restarts(p) == 1 && pods::container(p)["state"]["running"].is_object()
    })?;
    ensure!(pods::container(&restarted)["containerID"] != format!("containerd://{stale}").as_str(), "stale replaced");

    // 2. Crash-loop back-off: killed while it runs, it still runs out.
    let crash = uid(&pod_of(&cluster, "crashloop")?);
    let mut last = (0u32, 0i64);
    let (due, _) = kill_in_backoff(&cluster, "crash loop", Duration::from_secs(10), || {
        let latest = rt.block_on(containers_of(&cri, &crash))?.into_iter().next();
        Ok(latest.filter(|c| c.1 >= 2 && c.2 == api::ContainerState::ContainerExited as i32).map(|c| {
            last = (c.1, c.4);
            c.4 + backoff_after(c.1).as_nanos() as i64
        }))
    })?;
    let (attempt, finished) = last;
    let next = loop {
        let found = rt.block_on(containers_of(&cri, &crash))?.into_iter().find(|c| c.1 == attempt + 1);
        if let Some(c) = found {
            break c;
        }
        ensure!(nanos(SystemTime::now()) < due + 60_000_000_000, "crashloop attempt {} never came", attempt + 1);
        std::thread::sleep(Duration::from_millis(200));
    };
    let waited = Duration::from_nanos((next.3 - finished).max(0) as u64);
    println!(
        "crash loop: attempt {} restarted {waited:?} after the exit (back-off {:?})",
        attempt + 1,
        backoff_after(attempt)
    );
    ensure!(waited + Duration::from_millis(500) >= backoff_after(attempt), "crash back-off cut short: {waited:?}");

    // 3. Image-pull back-off: the same across a kill.
    let pulls = || attempts(&connections.lock().map(|c| c.clone()).unwrap_or_default(), Duration::from_secs(3));
    let mut before_kill = 0;
    let (due, _) = kill_in_backoff(&cluster, "pull", Duration::from_secs(10), || {
        let seen = pulls();
        before_kill = seen.len();
        Ok((seen.len() >= 2).then(|| nanos(seen[seen.len() - 1]) + backoff_after(seen.len() as u32).as_nanos() as i64))
    })?;
    let seen = loop {
        let seen = pulls();
        if seen.len() > before_kill {
            break seen;
        }
        ensure!(nanos(SystemTime::now()) < due + 60_000_000_000, "no pull after the back-off");
        std::thread::sleep(Duration::from_millis(200));
    };
    let gap = seen[before_kill].duration_since(seen[before_kill - 1])?;
    let expected = backoff_after(before_kill as u32);
    println!("image pull: attempt {} came {gap:?} after the previous one (back-off {expected:?})", before_kill + 1);
    ensure!(gap + Duration::from_millis(500) >= expected, "pull back-off cut short: {gap:?} < {expected:?}");

    // No steady pod's status ever showed a restart or unreadiness.
    let _ = watch.kill();
    watch.wait()?;
    let events = pods::watch_objects(&std::fs::read_to_string(&watch_file)?);
    ensure!(events.len() >= STEADY, "watch saw {} events", events.len());
    for event in &events {
        let pod = &event["object"];
        let bad = pods::restarts(pod) != 0 || !pods::is_ready(pod) || event["type"] == "DELETED";
        ensure!(!bad, "steady pod status flipped: {event:#}");
    }
    let final_pods = steady_pods(&cluster)?;
    ensure!(final_pods == before, "steady pods changed over three agent kills");
    Ok(())
}
