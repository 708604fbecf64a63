//! `bosun up --datastore-endpoint`: the whole stack on an etcd store (a
//! one-member etcd on loopback, `bosun_testing::etcd`). A Deployment and
//! its Service are applied and the pods become Ready; then `bosun control`
//! is killed with SIGKILL and comes back (restarted by `bosun up`'s
//! supervisor) with every object as it was, the objects are in etcd
//! (`etcdctl get --prefix /registry/ --keys-only`), and no SQLite database
//! was made. With etcd killed the apiserver answers 503; with etcd back the
//! same control process serves again.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bosun_testing::etcd::EtcdCluster;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::cluster::Cluster;
use support::wait::wait_until;

/// Generous: a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(120);

/// kind/name -> (uid, resourceVersion) of the objects the test made and their pods.
fn objects(cluster: &Cluster) -> Result<BTreeMap<String, (String, String)>> {
    let list = cluster.json(&["get", "deployments,replicasets,services,pods", "-l", "app=web"])?;
    let service = cluster.json(&["get", "service", "web"])?;
    let items = list["items"].as_array().into_iter().flatten().chain(std::iter::once(&service));
    let field = |v: &Value, f: &str| v["metadata"][f].as_str().unwrap_or_default().to_string();
    Ok(items
        .map(|o| {
            let key = format!("{}/{}", o["kind"].as_str().unwrap_or_default(), field(o, "name"));
            (key, (field(o, "uid"), field(o, "resourceVersion")))
        })
        .collect())
}

#[test]
fn objects_survive_a_control_kill_on_etcd() -> Result<()> {
    let mut etcd = EtcdCluster::start(1)?;
    let endpoints = etcd.endpoints().join(",");
    let cluster = Cluster::start_with("etcd-node", &["--datastore-endpoint".into(), endpoints])?;
    let (ok, out, err) = cluster.apply_stdin(&cluster.web_manifest()?)?;
    ensure!(ok, "kubectl apply: {out}{err}");
    cluster.wait_running(3, Duration::from_secs(180))?;
    let before = objects(&cluster)?;
    ensure!(before.len() >= 6, "deployment, replicaset, service, 3 pods: {before:?}");

    let (control, _) = cluster.component_pids()?;
    let killed = Instant::now();
    kill(Pid::from_raw(control), Signal::SIGKILL)?;
    let restarted = wait_until("a new bosun control", || {
        Ok(cluster.component_pids().ok().map(|(pid, _)| pid).filter(|pid| *pid != control))
    })?;
    wait_until("the apiserver back", || Ok(cluster.kubectl(&["get", "--raw", "/readyz"])?.0.then_some(())))?;
    println!("control {control} killed; {restarted} serving after {:?}", killed.elapsed());

    // Every object is there, the same (the pods keep running: nothing was
    // re-created, so uids match; resourceVersions may move on as status is written).
    let after = objects(&cluster)?;
    let uids = |m: &BTreeMap<String, (String, String)>| -> BTreeMap<String, String> {
        m.iter().map(|(k, (uid, _))| (k.clone(), uid.clone())).collect()
    };
    ensure!(uids(&after) == uids(&before), "objects changed:\nbefore {before:#?}\nafter {after:#?}");
    cluster.wait_running(3, DEADLINE)?;

    // They live in etcd, under the /registry/ keys.
    let keys = etcd.etcdctl(&["get", "--prefix", "/registry/", "--keys-only"])?;
    for key in ["/registry/apps/deployments/default/web", "/registry/core/services/default/web"] {
        ensure!(keys.lines().any(|l| l == key), "{key} not in etcd:\n{keys}");
    }
    let pods_in_etcd = keys.lines().filter(|l| l.starts_with("/registry/core/pods/default/web-")).count();
    ensure!(pods_in_etcd == 3, "{pods_in_etcd} web pods in etcd:\n{keys}");
    let db = cluster.dir.join("control/store.db");
    ensure!(!db.exists(), "{} made although the store is etcd", db.display());
    let status = cluster.kubectl_ok(&["get", "--raw", "/metrics"])?;
    let pods_metric = status
        .lines()
        .find(|l| l.starts_with("apiserver_storage_objects{resource=\"pods\"}"))
        .context("apiserver_storage_objects for pods")?;
    println!("{pods_metric}; etcd keys: {}", keys.lines().filter(|l| !l.is_empty()).count());

    // etcd down: the apiserver answers 503, not 500 and not a hang.
    etcd.kill(0)?;
    let (ok, out, err) = cluster.kubectl(&["get", "--raw", "/api/v1/namespaces/default/configmaps"])?;
    ensure!(!ok, "a list with etcd down succeeded: {out}");
    ensure!(err.contains("ServiceUnavailable") || err.contains("503"), "not a 503: {err}");
    // etcd back: the same control process serves again.
    etcd.spawn(0)?;
    etcd.wait_healthy(DEADLINE)?;
    wait_until("the apiserver serving from etcd again", || {
        Ok(cluster.kubectl(&["get", "deployment", "web"])?.0.then_some(()))
    })?;
    Ok(())
}
