//! Pod spec fields on the real stack (`bosun up`, real kubectl) that issue 8
//! left for last: `readinessGates` (Ready waits for every gate's condition,
//! which someone else writes through the status subresource and the agent
//! keeps); `enableServiceLinks` (Service variables of the pod's namespace,
//! and the `kubernetes` Service's in every pod); `securityContext.fsGroup`
//! volume ownership (emptyDir, configMap, secret, downwardAPI, projected
//! get the group, setgid directories, group read/write as upstream).
//!
//! One cluster for the whole binary; the scenarios share it.

mod support;

use std::time::Duration;

use anyhow::{ensure, Result};
use serde_json::Value;
use support::cluster::Cluster;
use support::pods::{condition, wait_pod};

const WAIT: Duration = Duration::from_secs(90);

fn status_of<'a>(pod: &'a Value, type_: &str) -> &'a str {
    condition(pod, type_).and_then(|c| c["status"].as_str()).unwrap_or("missing")
}

fn apply(cluster: &Cluster, manifest: &str) -> Result<()> {
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    let (ok, out, err) = cluster.apply_stdin(&manifest.replace("IMAGE", &image))?;
    ensure!(ok, "kubectl apply: {err}{out}");
    Ok(())
}

const GATED: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: gated, labels: {app: gated}}
  spec:
    terminationGracePeriodSeconds: 1
    readinessGates: [{conditionType: example.com/lb}]
    containers:
    - {name: app, image: IMAGE, command: ["sleep", "3600"], ports: [{containerPort: 80}]}
- apiVersion: v1
  kind: Service
  metadata: {name: gated}
  spec:
    selector: {app: gated}
    ports: [{port: 80}]
"#;

/// Ready of the gated pod's endpoint in its Service's EndpointSlice.
fn endpoint_ready(cluster: &Cluster) -> Result<Option<bool>> {
    let slices = cluster.json(&["get", "endpointslices", "-l", "kubernetes.io/service-name=gated"])?;
    Ok(slices["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
        .find(|e| e["targetRef"]["name"] == "gated")
        .and_then(|e| e["conditions"]["ready"].as_bool()))
}

fn wait_endpoint(cluster: &Cluster, ready: bool) -> Result<()> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = endpoint_ready(cluster)?;
        if now == Some(ready) {
            return Ok(());
        }
        ensure!(std::time::Instant::now() < deadline, "gated endpoint ready={now:?}, want {ready}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn patch_gate(cluster: &Cluster, status: &str) -> Result<()> {
    let patch = format!(r#"{{"status":{{"conditions":[{{"type":"example.com/lb","status":"{status}"}}]}}}}"#);
    cluster.kubectl_ok(&["patch", "pod", "gated", "--subresource=status", "-p", &patch])?;
    Ok(())
}

/// A gated pod is not Ready while its containers are, until the gate's
/// condition is True; the agent keeps that condition in every write.
fn readiness_gates(cluster: &Cluster) -> Result<()> {
    apply(cluster, GATED)?;
    let pod = wait_pod(cluster, "gated", "containers ready", WAIT, |p| status_of(p, "ContainersReady") == "True")?;
    let ready = condition(&pod, "Ready").cloned().unwrap_or_default();
    ensure!(ready["status"] == "False", "Ready while the gate is missing: {ready}");
    ensure!(ready["reason"] == "ReadinessGatesNotReady", "reason: {ready}");
    let message = ready["message"].as_str().unwrap_or_default();
    ensure!(message.contains(r#"readiness gate "example.com/lb" does not exist"#), "message: {message}");
    wait_endpoint(cluster, false)?;

    patch_gate(cluster, "True")?;
    let pod = wait_pod(cluster, "gated", "Ready", WAIT, |p| status_of(p, "Ready") == "True")?;
    ensure!(status_of(&pod, "example.com/lb") == "True", "gate condition kept: {:#?}", pod["status"]);
    wait_endpoint(cluster, true)?;

    patch_gate(cluster, "False")?;
    let pod = wait_pod(cluster, "gated", "unready again", WAIT, |p| status_of(p, "Ready") == "False")?;
    let message = condition(&pod, "Ready").and_then(|c| c["message"].as_str()).unwrap_or_default();
    ensure!(message.contains(r#"is not "True", but False"#), "message: {message}");
    ensure!(status_of(&pod, "example.com/lb") == "False", "gate condition kept: {:#?}", pod["status"]);
    ensure!(status_of(&pod, "ContainersReady") == "True", "containers stay ready");
    wait_endpoint(cluster, false)?;
    cluster.kubectl_ok(&["delete", "pod", "gated", "--wait=false"])?;
    Ok(())
}

const LINKS: &str = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: links}}
- apiVersion: v1
  kind: Service
  metadata: {name: backend, namespace: links}
  spec:
    ports: [{name: http, port: 8080}, {name: dns, port: 53, protocol: UDP}]
- apiVersion: v1
  kind: Service
  metadata: {name: far, namespace: default}
  spec:
    ports: [{port: 80}]
"#;

/// A pod that prints its environment, then sleeps.
fn env_pod(namespace: &str, name: &str, links: bool) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  \
         terminationGracePeriodSeconds: 1\n  enableServiceLinks: {links}\n  containers:\n  - name: c\n    \
         image: IMAGE\n    command: [sh, -c, 'env | sort; echo END; exec sleep 3600']\n    \
         env: [{{name: BACKEND_URL, value: 'http://$(BACKEND_SERVICE_HOST):$(BACKEND_SERVICE_PORT_HTTP)'}}]\n"
    )
}

/// The environment a pod printed, as `NAME=value` lines.
fn printed_env(cluster: &Cluster, namespace: &str, name: &str) -> Result<Vec<String>> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, out, _) = cluster.kubectl(&["logs", "-n", namespace, name])?;
        if out.lines().any(|l| l == "END") {
            return Ok(out.lines().map(str::to_string).collect());
        }
        ensure!(std::time::Instant::now() < deadline, "{namespace}/{name} printed no environment: {out}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn cluster_ip(cluster: &Cluster, namespace: &str, name: &str) -> Result<String> {
    let ip = cluster.kubectl_ok(&["get", "svc", "-n", namespace, name, "-o", "jsonpath={.spec.clusterIP}"])?;
    ensure!(!ip.is_empty(), "service {namespace}/{name} has a ClusterIP");
    Ok(ip)
}

/// Service variables: the pod's namespace's Services (unless
/// `enableServiceLinks: false`), never another namespace's; the
/// `kubernetes` Service's everywhere, once it exists.
fn service_links(cluster: &Cluster) -> Result<()> {
    apply(cluster, LINKS)?;
    let backend = cluster_ip(cluster, "links", "backend")?;
    apply(cluster, &env_pod("links", "linked", true))?;
    apply(cluster, &env_pod("links", "unlinked", false))?;
    let linked = printed_env(cluster, "links", "linked")?;
    let want = [
        format!("BACKEND_SERVICE_HOST={backend}"),
        "BACKEND_SERVICE_PORT=8080".to_string(),
        "BACKEND_SERVICE_PORT_HTTP=8080".to_string(),
        "BACKEND_SERVICE_PORT_DNS=53".to_string(),
        format!("BACKEND_PORT=tcp://{backend}:8080"),
        format!("BACKEND_PORT_8080_TCP=tcp://{backend}:8080"),
        "BACKEND_PORT_8080_TCP_PROTO=tcp".to_string(),
        "BACKEND_PORT_8080_TCP_PORT=8080".to_string(),
        format!("BACKEND_PORT_8080_TCP_ADDR={backend}"),
        format!("BACKEND_PORT_53_UDP=udp://{backend}:53"),
        format!("BACKEND_URL=http://{backend}:8080"),
    ];
    for line in &want {
        ensure!(linked.contains(line), "linked pod lacks {line}: {linked:#?}");
    }
    let foreign = |env: &[String], prefix: &str| env.iter().any(|l| l.starts_with(prefix));
    ensure!(!foreign(&linked, "FAR_"), "another namespace's Service leaked: {linked:#?}");
    let unlinked = printed_env(cluster, "links", "unlinked")?;
    let linked_back = foreign(&unlinked, "BACKEND_SERVICE") || foreign(&unlinked, "BACKEND_PORT");
    ensure!(!linked_back, "enableServiceLinks: false still linked: {unlinked:#?}");
    ensure!(unlinked.contains(&"BACKEND_URL=http://$(BACKEND_SERVICE_HOST):$(BACKEND_SERVICE_PORT_HTTP)".to_string()));

    // The master Service (`bosun up` creates default/kubernetes) reaches
    // every pod, links or not.
    let master = cluster_ip(cluster, "default", "kubernetes")?;
    for env in [&linked, &unlinked] {
        for line in [format!("KUBERNETES_SERVICE_HOST={master}"), format!("KUBERNETES_PORT_443_TCP_ADDR={master}")] {
            ensure!(env.contains(&line), "pod lacks {line}: {env:#?}");
        }
    }

    cluster.kubectl_ok(&["delete", "namespace", "links", "--wait=false"])?;
    Ok(())
}

const FS_GROUP: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: owned-cm}
  data: {key: cm-value}
- apiVersion: v1
  kind: Secret
  metadata: {name: owned-secret}
  stringData: {k: secret-value}
- apiVersion: v1
  kind: Pod
  metadata: {name: owned}
  spec:
    terminationGracePeriodSeconds: 1
    securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, fsGroupChangePolicy: OnRootMismatch}
    volumes:
    - {name: e, emptyDir: {}}
    - {name: m, emptyDir: {medium: Memory}}
    - {name: cm, configMap: {name: owned-cm}}
    - {name: sec, secret: {secretName: owned-secret, defaultMode: 0400}}
    - {name: down, downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}}
    - {name: proj, projected: {sources: [{configMap: {name: owned-cm, items: [{key: key, path: p}]}}]}}
    containers:
    - name: c
      image: IMAGE
      command:
      - sh
      - -c
      - |
        s() { echo "$1=$(stat -L -c '%g %a' "$2" 2>&1)"; }
        s E /e; s M /m; s CM /cm/key; s SEC /sec/k; s DOWN /down/name; s PROJ /proj/p
        touch /e/new && s NEW /e/new
        mkdir /e/d && s NEWDIR /e/d
        echo "READ=$(cat /sec/k)"
        echo "IDS=$(id -u) $(id -G)"
        echo END
        exec sleep 3600
      volumeMounts:
      - {name: e, mountPath: /e}
      - {name: m, mountPath: /m}
      - {name: cm, mountPath: /cm}
      - {name: sec, mountPath: /sec}
      - {name: down, mountPath: /down}
      - {name: proj, mountPath: /proj}
"#;

/// fsGroup: every supported volume type gets the group; directories are
/// setgid, so what a non-root container creates inherits it; a 0400 secret
/// becomes 0440, readable by the container through the group.
fn fs_group(cluster: &Cluster) -> Result<()> {
    apply(cluster, FS_GROUP)?;
    let out = printed_env(cluster, "default", "owned")?;
    let want = [
        "E=2000 2777",
        "M=2000 2777",
        "CM=2000 644",
        "SEC=2000 440",
        "DOWN=2000 644",
        "PROJ=2000 644",
        "NEW=2000 644",
        "NEWDIR=2000 2755",
        "READ=secret-value",
    ];
    for line in want {
        ensure!(out.iter().any(|l| l == line), "fsGroup pod lacks {line:?}: {out:#?}");
    }
    ensure!(
        out.iter().any(|l| l.starts_with("IDS=1000 ") && l.contains("2000")),
        "fsGroup is a supplemental group: {out:#?}"
    );
    cluster.kubectl_ok(&["delete", "pod", "owned", "--wait=false"])?;
    Ok(())
}

#[test]
fn pod_fields_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start("fields-node")?;
    readiness_gates(&cluster)?;
    service_links(&cluster)?;
    fs_group(&cluster)?;
    Ok(())
}
