//! `bosun up` keeps the data plane alive (issue 14). One cluster with the
//! 3-pod `web` Deployment behind its ClusterIP:
//! 1. containerd is SIGKILLed: it is back (answering CRI) within 15 s; the
//!    same pods (UIDs, container ids) are Running with 0 restarts; a request
//!    loop from the host to the ClusterIP never fails; the shims are the same
//!    processes; the other daemons are the same processes (only containerd
//!    was restarted); the agent works with the new containerd (a new pod
//!    starts).
//! 2. `bosun up` is SIGKILLed: its daemons die with it, the pods keep
//!    serving; `bosun up` again on the same dir gives one cluster (one of
//!    each daemon) with the same pods, 0 restarts.
//! 3. `bosun up` is SIGKILLed again and `bosun down` tears down what it
//!    left: no daemon, shim, pod process, mount, bridge, nft table or CNI
//!    IP is left.
//!
//! `flock /tmp/bosun-host.lock cargo test -p bosun --test supervise`

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bosun_cri::{ClientOptions, CriClient};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::cluster::{get, Cluster};
use support::supervision::*;

/// containerd must be back within this long of its kill.
const RUNTIME_BACK_WITHIN: Duration = Duration::from_secs(15);

/// True if the CRI at `socket` answers `Version` (within 2 s).
fn cri_answers(runtime: &tokio::runtime::Runtime, socket: &Path) -> bool {
    let options = ClientOptions { connect_timeout: Duration::from_secs(2), ..ClientOptions::default() };
    runtime.block_on(async { CriClient::connect(socket, options).await.is_ok() })
}

/// One of each daemon runs for the cluster; their pids.
fn one_of_each(cluster: &Cluster) -> Result<Option<Vec<i32>>> {
    let pids: Vec<Option<i32>> =
        ["containerd", "registry", "control", "agent"].iter().map(|role| single(&cluster.dir, role)).collect();
    Ok(pids.into_iter().collect())
}

/// A pod started and removed through the agent: it works with the runtime.
fn agent_starts_a_pod(cluster: &Cluster, name: &str) -> Result<()> {
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  \
         containers:\n    - name: main\n      image: {}/bosun/app:1.0\n      command: [\"sleep\", \"3600\"]\n",
        cluster.registry
    );
    let (ok, out, err) = cluster.apply_stdin(&manifest)?;
    ensure!(ok, "apply {name}: {err}{out}");
    wait_for(&format!("pod {name} Running"), Duration::from_secs(90), || {
        let pod = cluster.json(&["get", "pod", name])?;
        Ok((pod["status"]["phase"] == "Running").then_some(()))
    })?;
    cluster.kubectl_ok(&["delete", "pod", name, "--wait=true", "--timeout=90s"])?;
    Ok(())
}

fn containerd_crash(cluster: &Cluster, runtime: &tokio::runtime::Runtime, url: &str) -> Result<()> {
    let before = pod_identities(cluster, "app=web")?;
    let socket = cluster.cri_socket();
    let shims_before = shims(&socket);
    ensure!(!shims_before.is_empty(), "no shims before the kill");
    let old = single(&cluster.dir, "containerd").context("one containerd before the kill")?;
    let others = |cluster: &Cluster| ["registry", "control", "agent"].map(|role| single(&cluster.dir, role));
    let others_before = others(cluster);
    let requests = RequestLoop::start(url.to_string());

    let killed = Instant::now();
    kill(Pid::from_raw(old), Signal::SIGKILL)?;
    let new = wait_for("a new containerd", RUNTIME_BACK_WITHIN, || {
        Ok(single(&cluster.dir, "containerd").filter(|pid| *pid != old))
    })?;
    wait_for("the new containerd answers CRI", RUNTIME_BACK_WITHIN.saturating_sub(killed.elapsed()), || {
        Ok(cri_answers(runtime, &socket).then_some(()))
    })?;
    let back_after = killed.elapsed();
    println!("containerd {old} killed; {new} answers CRI after {back_after:?}");
    ensure!(back_after < RUNTIME_BACK_WITHIN, "containerd back after {back_after:?}");

    // The agent talks to the new containerd: a new pod starts (and its
    // relists, done meanwhile, changed nothing of the running pods).
    agent_starts_a_pod(cluster, "after-runtime-crash")?;
    let results = requests.finish();

    let after = pod_identities(cluster, "app=web")?;
    ensure!(after == before, "pods changed across the containerd crash:\nbefore {before:#?}\nafter {after:#?}");
    let failures: Vec<_> = results.iter().filter_map(|(at, r)| r.as_ref().err().map(|e| (*at, e))).collect();
    let during: Vec<_> = results.iter().filter(|(at, _)| *at >= killed).collect();
    let while_down = during.iter().filter(|(at, _)| at.duration_since(killed) < back_after).count();
    println!(
        "ClusterIP requests: {} in all, {} after the kill ({while_down} while containerd was down), {} failed",
        results.len(),
        during.len(),
        failures.len()
    );
    ensure!(!during.is_empty(), "no request ran after the kill");
    ensure!(failures.is_empty(), "ClusterIP requests failed: {failures:?}");
    let shims_after = shims(&socket);
    ensure!(shims_after.is_superset(&shims_before), "shims gone: {shims_before:?} -> {shims_after:?}");
    // The probe pod's shim goes once the agent has removed its sandbox.
    wait_for("only the web pods' shims", Duration::from_secs(60), || {
        Ok((shims(&socket) == shims_before).then_some(()))
    })?;
    ensure!(!alive(old), "the killed containerd still exists");
    ensure!(one_of_each(cluster)?.is_some(), "not one of each daemon: {:?}", daemons(&cluster.dir));
    // Only containerd was restarted.
    ensure!(others(cluster) == others_before, "other daemons changed: {others_before:?} -> {:?}", others(cluster));
    Ok(())
}

fn up_crash(cluster: &mut Cluster, url: &str) -> Result<()> {
    let before = pod_identities(cluster, "app=web")?;
    let shims_before = shims(&cluster.cri_socket());
    let daemons_before: BTreeSet<i32> = one_of_each(cluster)?.context("one of each daemon")?.into_iter().collect();

    cluster.kill_up()?;
    // Its daemons die with it (PDEATHSIG); the shims and pods stay.
    wait_for("daemons gone with bosun up", Duration::from_secs(60), || {
        Ok(daemons(&cluster.dir).is_empty().then_some(()))
    })?;
    ensure!(shims(&cluster.cri_socket()) == shims_before, "shims changed when bosun up died");
    get(url).context("the ClusterIP answers with no bosun up")?;

    cluster.up_again()?;
    let now: BTreeSet<i32> =
        wait_for("one of each daemon", Duration::from_secs(60), || one_of_each(cluster))?.into_iter().collect();
    ensure!(now.is_disjoint(&daemons_before), "old daemons {daemons_before:?} still run: {now:?}");
    agent_starts_a_pod(cluster, "after-up-crash")?;
    let after = pod_identities(cluster, "app=web")?;
    ensure!(after == before, "pods changed across bosun up's death:\nbefore {before:#?}\nafter {after:#?}");
    ensure!(shims(&cluster.cri_socket()).is_superset(&shims_before), "shims gone across bosun up's restart");
    wait_for("only the web pods' shims", Duration::from_secs(60), || {
        Ok((shims(&cluster.cri_socket()) == shims_before).then_some(()))
    })?;
    wait_for("the ClusterIP answers", Duration::from_secs(60), || Ok(get(url).ok()))?;
    ensure!(one_of_each(cluster)?.is_some(), "not one of each daemon: {:?}", daemons(&cluster.dir));
    Ok(())
}

fn down_after_up_crash(cluster: &mut Cluster) -> Result<()> {
    let socket = cluster.cri_socket();
    let pod_processes = descendants(&shims(&socket));
    ensure!(!pod_processes.is_empty(), "no pod processes under the shims");
    cluster.kill_up()?;
    let said = cluster.down()?;
    // The web pods, and maybe the stopped sandbox of the last probe pod.
    ensure!(said.contains("tearing down") && !said.contains("removed 0 "), "bosun down after a killed up: {said}");
    let left = left_on_host(&cluster.dir, &socket, &pod_processes, &cluster.bridge());
    ensure!(left.is_empty(), "left after bosun down: {left:#?}");
    Ok(())
}

#[test]
fn the_data_plane_survives_containerd_and_bosun_up_being_killed() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut cluster = Cluster::start("supervise-node")?;
    let (ok, out, err) = cluster.apply_stdin(&cluster.web_manifest()?)?;
    ensure!(ok, "apply web: {err}{out}");
    cluster.wait_running(3, Duration::from_secs(120))?;
    let cluster_ip = cluster.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"])?;
    let url = format!("http://{cluster_ip}/");
    wait_for("the ClusterIP answers", Duration::from_secs(60), || Ok(get(&url).ok()))?;
    let pods = pod_identities(&cluster, "app=web")?;
    ensure!(pods.len() == 3 && pods.values().all(|p| p.1 == "Running" && p.2 == 0), "web pods: {pods:#?}");

    containerd_crash(&cluster, &runtime, &url)?;
    up_crash(&mut cluster, &url)?;

    down_after_up_crash(&mut cluster)?;
    Ok(())
}
