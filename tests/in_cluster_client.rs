//! An in-cluster client on the real stack (`bosun up`, real kubectl): pods
//! reach the apiserver through the `kubernetes` Service and get exactly the
//! RBAC their ServiceAccount was granted.
//! - control-lite keeps `default/kubernetes`'s EndpointSlice (and
//!   Endpoints) at its advertise address (`bosun up`: the node's IP) and
//!   port; a deleted slice comes back, an edited one is put back;
//! - a pod running as ServiceAccount `reader` (a Role allowing get/list
//!   pods) runs `in-cluster-client` (kube-rs `Client::try_default()`: the
//!   `KUBERNETES_SERVICE_HOST/PORT` the agent sets, the projected token and
//!   `ca.crt`, rustls verifying the ClusterIP SAN): `pods: ok`,
//!   `secrets: forbidden`; a pod running as `default` gets both forbidden.

mod support;

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context as _, Result};
use bosun_images::fixtures::in_cluster_client_image;
use bosun_images::{publish, write_layout};
use serde_json::Value;
use support::cluster::Cluster;
use support::wait::wait_until;

const NAMESPACE: &str = "incluster";

const MANIFEST: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: reader, namespace: incluster}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: Role
  metadata: {name: pod-reader, namespace: incluster}
  rules:
  - apiGroups: [""]
    resources: [pods]
    verbs: [get, list]
- apiVersion: rbac.authorization.k8s.io/v1
  kind: RoleBinding
  metadata: {name: reader-reads-pods, namespace: incluster}
  subjects: [{kind: ServiceAccount, name: reader, namespace: incluster}]
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
- apiVersion: v1
  kind: Pod
  metadata: {name: reader, namespace: incluster}
  spec:
    serviceAccountName: reader
    restartPolicy: Never
    containers:
    - {name: client, image: CLIENT_IMAGE, command: ["in-cluster-client"]}
- apiVersion: v1
  kind: Pod
  metadata: {name: nobody, namespace: incluster}
  spec:
    restartPolicy: Never
    containers:
    - {name: client, image: CLIENT_IMAGE, command: ["in-cluster-client"]}
"#;

/// The static `in-cluster-client` binary (`make pause` builds it).
fn client_binary() -> PathBuf {
    std::env::var_os("BOSUN_IN_CLUSTER_CLIENT").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/x86_64-unknown-linux-gnu/release/in-cluster-client")
    })
}

/// Builds the fixture image and pushes it to the cluster's registry.
fn publish_client(cluster: &Cluster) -> Result<String> {
    let binary = client_binary();
    ensure!(binary.exists(), "{} is missing: run `make pause`", binary.display());
    let layout = write_layout(
        &cluster.dir.join("in-cluster-client"),
        &in_cluster_client_image(Path::new("/bin/busybox"), &binary),
    )?;
    Ok(publish::push(&layout, &cluster.registry)?)
}

/// The node's InternalIP: what `bosun up` advertises.
fn node_ip(cluster: &Cluster) -> Result<String> {
    let nodes = cluster.json(&["get", "nodes"])?;
    let addresses = nodes["items"][0]["status"]["addresses"].as_array().context("node addresses")?;
    let internal = addresses.iter().find(|a| a["type"] == "InternalIP").context("no InternalIP")?;
    Ok(internal["address"].as_str().unwrap_or_default().to_string())
}

/// What `default/kubernetes`'s slice lists.
#[derive(Debug, PartialEq, Eq)]
struct Slice {
    addresses: Vec<String>,
    /// (name, port).
    ports: Vec<(String, i64)>,
}

/// `default/kubernetes`'s slice, if it exists.
fn kubernetes_slice(cluster: &Cluster) -> Result<Option<Slice>> {
    let (ok, out, err) = cluster.kubectl(&["get", "endpointslice", "-n", "default", "kubernetes", "-o", "json"])?;
    if !ok {
        ensure!(err.contains("NotFound"), "get slice: {err}");
        return Ok(None);
    }
    let slice: Value = serde_json::from_str(&out)?;
    let addresses = slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let ports = slice["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["name"].as_str().unwrap_or_default().to_string(), p["port"].as_i64().unwrap_or_default()))
        .collect();
    Ok(Some(Slice { addresses, ports }))
}

/// Waits until the slice lists exactly `ip` on port `https`/`port`.
fn wait_slice_at(cluster: &Cluster, ip: &str, port: i64, what: &str) -> Result<()> {
    let want = Slice { addresses: vec![ip.to_string()], ports: vec![("https".to_string(), port)] };
    wait_until(what, || Ok(kubernetes_slice(cluster)?.filter(|slice| *slice == want))).map(drop)
}

/// The log lines of pod `name` once its client printed a verdict for both lists.
fn verdicts(cluster: &Cluster, name: &str) -> Result<Vec<String>> {
    wait_until(&format!("pod {name}'s verdicts"), || {
        let (_, out, _) = cluster.kubectl(&["logs", "-n", NAMESPACE, name])?;
        let lines: Vec<String> = out.lines().map(str::to_string).collect();
        let answered = |what: &str| lines.iter().any(|l| l.starts_with(what) && !l.contains(": error"));
        Ok((answered("pods: ") && answered("secrets: ")).then_some(lines))
    })
}

#[test]
fn in_cluster_client_gets_what_its_service_account_was_granted() -> Result<()> {
    let cluster = Cluster::start("incluster-node")?;
    let ip = node_ip(&cluster)?;
    let port: i64 = cluster.api.rsplit(':').next().context("api port")?.parse()?;

    // The kubernetes Service points at the advertise address, reconciled.
    wait_slice_at(&cluster, &ip, port, "kubernetes slice at the advertise address")?;
    let table = cluster.kubectl_ok(&["get", "endpointslices", "-n", "default"])?;
    let row = table.lines().find(|l| l.starts_with("kubernetes ")).context("kubernetes slice row")?;
    ensure!(row.contains(&ip) && row.contains(&port.to_string()), "{table}");
    let endpoints = cluster.kubectl_ok(&["get", "endpoints", "-n", "default", "kubernetes"])?;
    ensure!(endpoints.contains(&format!("{ip}:{port}")), "{endpoints}");
    cluster.kubectl_ok(&["delete", "endpointslice", "-n", "default", "kubernetes"])?;
    wait_slice_at(&cluster, &ip, port, "kubernetes slice recreated")?;
    let edit = r#"[{"op": "replace", "path": "/endpoints/0/addresses/0", "value": "10.9.9.9"}]"#;
    cluster.kubectl_ok(&["patch", "endpointslice", "-n", "default", "kubernetes", "--type=json", "-p", edit])?;
    wait_slice_at(&cluster, &ip, port, "kubernetes slice put back")?;

    // A pod's in-cluster client gets exactly its ServiceAccount's RBAC.
    let image = publish_client(&cluster)?;
    cluster.kubectl_ok(&["create", "namespace", NAMESPACE])?;
    let (ok, out, err) = cluster.apply_stdin(&MANIFEST.replace("CLIENT_IMAGE", &image))?;
    ensure!(ok, "apply: {out}{err}");
    let applied = std::time::Instant::now();
    let reader = verdicts(&cluster, "reader")?;
    println!("measured: apply -> reader's verdicts in its log: {:.2}s", applied.elapsed().as_secs_f64());
    println!("reader: {reader:?}");
    let service_ip =
        cluster.kubectl_ok(&["get", "svc", "-n", "default", "kubernetes", "-o", "jsonpath={.spec.clusterIP}"])?;
    ensure!(reader.contains(&format!("server: {service_ip}:443")), "dials the kubernetes Service: {reader:?}");
    let last = |lines: &[String], what: &str| lines.iter().rev().find(|l| l.starts_with(what)).cloned();
    let pods = last(&reader, "pods: ").unwrap_or_default();
    ensure!(pods.starts_with("pods: ok "), "reader lists pods: {reader:?}");
    let listed: usize = pods.trim_start_matches("pods: ok ").parse()?;
    ensure!((1..=2).contains(&listed), "reader sees the namespace's pods: {reader:?}");
    ensure!(last(&reader, "secrets: ").as_deref() == Some("secrets: forbidden"), "{reader:?}");
    ensure!(reader.contains(&format!("namespace: {NAMESPACE}")), "{reader:?}");
    let nobody = verdicts(&cluster, "nobody")?;
    println!("nobody: {nobody:?}");
    ensure!(last(&nobody, "pods: ").as_deref() == Some("pods: forbidden"), "default SA: {nobody:?}");
    ensure!(last(&nobody, "secrets: ").as_deref() == Some("secrets: forbidden"), "default SA: {nobody:?}");
    Ok(())
}
