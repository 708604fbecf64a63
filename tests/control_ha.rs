//! HA control plane: two `bosun control` processes on one etcd (a real
//! one-member etcd on loopback, `bosun_testing::etcd`). Both serve the API;
//! the holder of the Lease `kube-system/bosun-control-lite` runs the
//! scheduler and controllers. A fake Node (Ready, with capacity) is
//! registered through the API. The leader is `kill -9`ed; a Deployment
//! created through the survivor then gets its pods created and bound to
//! the node (all with the default leader-election timing), the standby's
//! takeover is measured against the kill, and every
//! write acknowledged before the kill is still there. No kubelet runs.

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bosun_testing::etcd::EtcdCluster;
use serde_json::{json, Value};
use support::wait::wait_until;

/// The target for pods created and scheduled after the kill: it
/// is printed, not asserted (a loaded 2-core machine must not fail the
/// test on timing).
const TAKEOVER_TARGET: Duration = Duration::from_secs(15);
/// What is asserted: a takeover happened at all, long before this.
const TAKEOVER_BOUND: Duration = Duration::from_secs(90);
const NODE: &str = "ha-node";

/// One `bosun control` child, killed (SIGKILL) and reaped on drop.
struct Control {
    name: &'static str,
    child: Child,
    kubeconfig: PathBuf,
    log: PathBuf,
}

impl Control {
    fn start(name: &'static str, dir: &Path, data: &Path, etcd: &str) -> Result<Control> {
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_bosun"))
            .args(["control", "--listen", "127.0.0.1:0", "--datastore-endpoint", etcd])
            .arg("--data-dir")
            .arg(data)
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting bosun control")?;
        let control = Control { name, child, kubeconfig, log };
        wait_until(&format!("control {name} serving"), || {
            if let Some(status) = control.child_status()? {
                bail!("control {name} exited ({status}):\n{}", control.logs());
            }
            Ok((control.kubeconfig.exists() && control.kubectl(&["get", "--raw", "/readyz"])?.0).then_some(()))
        })?;
        Ok(control)
    }

    fn child_status(&self) -> Result<Option<String>> {
        // `try_wait` needs `&mut`; read /proc instead to keep `&self`.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or_default().split_whitespace().next().unwrap_or("Z");
        Ok((state == "Z").then(|| "exited".to_string()))
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kubectl(&self, args: &[&str]) -> Result<(bool, String, String)> {
        let out = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["--request-timeout", "10s"])
            .args(args)
            .output()?;
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        Ok((out.status.success(), text(out.stdout), text(out.stderr)))
    }

    fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let (ok, out, err) = self.kubectl(args)?;
        ensure!(ok, "control {}: kubectl {args:?}: {err}", self.name);
        Ok(out)
    }

    fn json(&self, args: &[&str]) -> Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        Ok(serde_json::from_str(&self.kubectl_ok(&all)?)?)
    }

    /// `kubectl create -f -` of `obj`; returns the created object.
    fn create(&self, obj: &Value) -> Result<Value> {
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["create", "-o", "json", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        std::io::Write::write_all(child.stdin.as_mut().context("stdin")?, obj.to_string().as_bytes())?;
        drop(child.stdin.take());
        let out = child.wait_with_output()?;
        ensure!(out.status.success(), "create via {}: {}", self.name, String::from_utf8_lossy(&out.stderr));
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// The Lease holder's identity, if the Lease exists and is held.
    fn leader(&self) -> Result<Option<(String, String)>> {
        let (ok, out, _) = self.kubectl(&["get", "lease", "-n", "kube-system", "bosun-control-lite", "-o", "json"])?;
        if !ok {
            return Ok(None);
        }
        let lease: Value = serde_json::from_str(&out)?;
        let holder = lease["spec"]["holderIdentity"].as_str().filter(|h| !h.is_empty());
        let acquired = lease["spec"]["acquireTime"].as_str().unwrap_or_default().to_string();
        Ok(holder.map(|h| (h.to_string(), acquired)))
    }

    /// The apiserver URL in this control's kubeconfig.
    fn server(&self) -> Result<String> {
        let file = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        let cluster = file.clusters.first().and_then(|c| c.cluster.as_ref()).context("cluster")?;
        cluster.server.clone().context("server")
    }

    fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An agent's API client (`bosun agent --api-servers`) with `control`'s credentials.
async fn failover_client(control: &Control, servers: &[String]) -> Result<kube::Client> {
    let file = kube::config::Kubeconfig::read_from(&control.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default()).await?;
    let servers = bosun_agent::api_failover::parse_servers(servers)?;
    Ok(bosun_agent::api_failover::client(config, &servers)?)
}

async fn list_nodes(client: &kube::Client) -> Result<usize> {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    Ok(nodes.list(&Default::default()).await?.items.len())
}

/// Names of ConfigMaps as a watcher (re-listing and re-watching with
/// backoff after errors, as informers do) sees them applied.
fn configmap_watch(client: kube::Client) -> futures::stream::BoxStream<'static, String> {
    use futures::StreamExt;
    use kube::runtime::{watcher, WatchStreamExt};
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(client, "default");
    watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .filter_map(|o| async move { o.ok().and_then(|cm| cm.metadata.name) })
        .boxed()
}

/// A Node with capacity and a fresh Ready heartbeat.
fn register_node(control: &Control) -> Result<()> {
    control.create(&json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}))?;
    heartbeat(control)
}

/// Writes the node's status, Ready as of now (no kubelet renews it).
fn heartbeat(control: &Control) -> Result<()> {
    let now = jiff::Timestamp::now().round(jiff::Unit::Second)?.to_string();
    let capacity = json!({"cpu": "8", "memory": "16Gi", "pods": "110"});
    let status = json!({"status": {"capacity": capacity, "allocatable": capacity, "conditions": [{
        "type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
    control.kubectl_ok(&["patch", "node", NODE, "--subresource=status", "--type=merge", "-p", &status.to_string()])?;
    Ok(())
}

fn deployment(name: &str, replicas: u32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/app:1",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}})
}

/// The pods of Deployment `name` bound to the node, once there are `want`.
fn bound_pods(control: &Control, name: &str, want: usize) -> Result<Option<Vec<String>>> {
    let (ok, out, _) =
        control.kubectl(&["get", "pods", "-n", "default", "-l", &format!("app={name}"), "-o", "json"])?;
    if !ok {
        return Ok(None);
    }
    let pods: Value = serde_json::from_str(&out)?;
    let bound: Vec<String> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["spec"]["nodeName"] == NODE)
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    Ok((bound.len() >= want).then_some(bound))
}

#[test]
fn a_standby_takes_over_within_15s_of_the_leaders_kill() -> Result<()> {
    let etcd = EtcdCluster::start(1)?;
    let endpoints = etcd.endpoints().join(",");
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    // The first start makes the CA and service-account key the second shares.
    let a = Control::start("a", dir.path(), &data, &endpoints)?;
    let b = Control::start("b", dir.path(), &data, &endpoints)?;
    register_node(&a)?;

    let (holder, _) = wait_until("a leader", || a.leader())?;
    let (mut leader, survivor) = match (a.logs().contains(&holder), b.logs().contains(&holder)) {
        (true, false) => (a, b),
        (false, true) => (b, a),
        other => bail!("leader {holder} in which log? {other:?}"),
    };
    println!("leader: control {} ({holder})", leader.name);

    // The leader's controllers and scheduler work; both apiservers take writes.
    leader.create(&deployment("before", 2))?;
    let before = wait_until("pods of 'before' bound", || bound_pods(&survivor, "before", 2))?;
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let via = if i % 2 == 0 { &leader } else { &survivor };
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("ack-{i}"), "namespace": "default"}, "data": {"i": i.to_string()}});
        let created = via.create(&cm)?;
        let rv = created["metadata"]["resourceVersion"].as_str().context("resourceVersion")?.to_string();
        acknowledged.push((format!("configmap/ack-{i}"), rv));
    }

    // The two apiservers' allocators never hand out one address twice.
    let mut ips = std::collections::BTreeSet::new();
    let mut ports = std::collections::BTreeSet::new();
    for i in 0..8 {
        let via = if i % 2 == 0 { &leader } else { &survivor };
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc-{i}"), "namespace": "default"},
            "spec": {"type": "NodePort", "selector": {"app": "before"}, "ports": [{"port": 80}]}});
        let created = via.create(&svc)?;
        let ip = created["spec"]["clusterIP"].as_str().context("clusterIP")?.to_string();
        let port = created["spec"]["ports"][0]["nodePort"].as_u64().context("nodePort")?;
        ensure!(ips.insert(ip.clone()) && ports.insert(port), "svc-{i} got a taken address {ip} / {port}");
        acknowledged.push((
            format!("service/svc-{i}"),
            created["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string(),
        ));
    }
    println!("services got distinct addresses through both apiservers: {ips:?} {ports:?}");

    // An agent's client of both apiservers, the leader's first, and a
    // watch through it (as the agent's informers watch).
    let runtime = tokio::runtime::Runtime::new()?;
    let agent = runtime.block_on(failover_client(&leader, &[leader.server()?, survivor.server()?]))?;
    let mut watch = runtime.block_on(async { configmap_watch(agent.clone()) });
    runtime.block_on(list_nodes(&agent)).context("the agent's client before the kill")?;
    let first = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), futures::StreamExt::next(&mut watch)).await });
    ensure!(matches!(first, Ok(Some(_))), "the agent's watch saw nothing before the kill");

    let killed_wall = jiff::Timestamp::now();
    let killed = Instant::now();
    leader.kill()?;
    heartbeat(&survivor)?;
    survivor.create(&deployment("after", 2))?;
    let ((_, acquire_time), seen) = wait_until("a new leader", || {
        Ok(survivor.leader()?.filter(|(h, _)| *h != holder).map(|found| (found, killed.elapsed())))
    })?;
    let pods = wait_until("pods of 'after' bound", || bound_pods(&survivor, "after", 2))?;
    let scheduled = killed.elapsed();
    let acquired_at: jiff::Timestamp = acquire_time.parse().context("acquireTime")?;
    let takeover = acquired_at.duration_since(killed_wall);
    println!(
        "killed control {}; control {} acquired the Lease {takeover:#} after the kill (seen after {seen:?}); \
         pods {pods:?} bound {scheduled:?} after the kill (target {TAKEOVER_TARGET:?}; earlier pods: {before:?})",
        leader.name, survivor.name
    );
    ensure!(
        takeover < jiff::SignedDuration::try_from(TAKEOVER_BOUND)?,
        "takeover took {takeover:#}:\n{}",
        survivor.logs()
    );
    ensure!(scheduled < TAKEOVER_BOUND, "pods bound only {scheduled:?} after the kill");

    // Every write acknowledged before the kill is there, unchanged.
    for (name, rv) in &acknowledged {
        let obj = survivor.json(&["get", "-n", "default", name])?;
        ensure!(obj["metadata"]["resourceVersion"] == rv.as_str(), "{name}: {obj}");
    }
    // The agent's client failed over to the survivor: at most one request
    // failed, and its watch saw a write made after the kill.
    let failures = runtime.block_on(async {
        for failures in 0..3 {
            if list_nodes(&agent).await.is_ok() {
                return Some(failures);
            }
        }
        None
    });
    ensure!(matches!(failures, Some(0..=1)), "the agent's client did not fail over: {failures:?}");
    survivor.create(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "after-failover", "namespace": "default"}}))?;
    runtime
        .block_on(async {
            let seen = async {
                while let Some(name) = futures::StreamExt::next(&mut watch).await {
                    if name == "after-failover" {
                        return true;
                    }
                }
                false
            };
            tokio::time::timeout(Duration::from_secs(120), seen).await
        })
        .map_err(|_| anyhow::anyhow!("the agent's watch did not see the write after the kill"))
        .and_then(|seen| seen.then_some(()).context("the agent's watch ended"))?;
    println!("the agent's client failed over after {failures:?} failed requests; its watch resumed on the survivor");

    let deployment = survivor.json(&["get", "deployment", "-n", "default", "before"])?;
    ensure!(deployment["spec"]["replicas"] == 2, "{deployment}");
    Ok(())
}
