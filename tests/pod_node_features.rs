//! Node features on the real stack (`bosun up`, real kubectl, real
//! containerd) that unit tests cannot show:
//! - an image's `StopSignal`: a container of an image whose OCI config says
//!   `StopSignal: SIGUSR1` is stopped with SIGUSR1, one of the plain app
//!   image with SIGTERM (both trap both signals and record which came, in
//!   their termination message; a liveness failure stops them);
//! - httpGet probes with `scheme: HTTPS` against a server with a
//!   self-signed certificate in the container (the prober does not verify
//!   certificates, as upstream), and gRPC probes against a real
//!   `grpc.health.v1` server in the container: passing probes make pods
//!   Ready, a NOT_SERVING / HTTP 500 answer fails liveness and restarts, an
//!   unknown gRPC service keeps a pod unready. The servers are our static
//!   `probe-target` binary (`images/probe-target`) in a fixture image;
//! - Bidirectional mount propagation: a mount a privileged container makes
//!   below a Bidirectional hostPath volume appears on the host and in
//!   another pod's HostToContainer mount of the same path;
//! - ConfigMap and Secret volumes follow updates through the agent's watch
//!   of the object: the delay from `kubectl patch` to the new file content
//!   on the node is measured (printed) and must stay well under the old
//!   10 s poll.
//!
//! One cluster for the whole binary; all pods are created at once.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bosun_images::fixtures::{probe_target_image, stop_signal_image};
use bosun_images::{publish, write_layout};
use support::cluster::Cluster;
use support::pods::{condition, container, events, pod, restarts, wait_event, wait_pod};

const LONG: Duration = Duration::from_secs(120);

/// Traps both stop signals and records which one came.
const STOP_SCRIPT: &str = "trap 'echo USR1 > /dev/termination-log; exit 0' USR1; \
     trap 'echo TERM > /dev/termination-log; exit 0' TERM; \
     echo ok > /tmp/alive; (sleep 3; rm /tmp/alive) & while true; do sleep 1; done";

const MANIFEST: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: stop-image-signal}
  spec:
    terminationGracePeriodSeconds: 60
    containers:
    - name: app
      image: STOPSIGNAL_IMAGE
      command: ["sh", "-c", "STOP_SCRIPT"]
      livenessProbe: {exec: {command: ["cat", "/tmp/alive"]}, initialDelaySeconds: 1, periodSeconds: 1, failureThreshold: 1}
- apiVersion: v1
  kind: Pod
  metadata: {name: stop-default-signal}
  spec:
    terminationGracePeriodSeconds: 60
    containers:
    - name: app
      image: APP_IMAGE
      command: ["sh", "-c", "STOP_SCRIPT"]
      livenessProbe: {exec: {command: ["cat", "/tmp/alive"]}, initialDelaySeconds: 1, periodSeconds: 1, failureThreshold: 1}
- apiVersion: v1
  kind: Pod
  metadata: {name: https-ready}
  spec:
    volumes: [{name: tls, secret: {secretName: probe-tls}}]
    containers:
    - name: server
      image: PROBE_IMAGE
      command: ["probe-target", "--https", "8443", "--cert", "/tls/tls.crt", "--key", "/tls/tls.key"]
      ports: [{name: https, containerPort: 8443}]
      volumeMounts: [{name: tls, mountPath: /tls}]
      readinessProbe: {httpGet: {scheme: HTTPS, path: /healthz, port: https}, periodSeconds: 1}
      livenessProbe: {httpGet: {scheme: HTTPS, path: /healthz, port: 8443}, periodSeconds: 1, failureThreshold: 1}
- apiVersion: v1
  kind: Pod
  metadata: {name: https-live-fail}
  spec:
    volumes: [{name: tls, secret: {secretName: probe-tls}}]
    containers:
    - name: server
      image: PROBE_IMAGE
      command: ["sh", "-c", "(sleep 5; touch /tmp/unhealthy) & exec probe-target --https 8443 --cert /tls/tls.crt --key /tls/tls.key"]
      volumeMounts: [{name: tls, mountPath: /tls}]
      livenessProbe: {httpGet: {scheme: HTTPS, path: /healthz, port: 8443}, initialDelaySeconds: 1, periodSeconds: 1, failureThreshold: 1}
- apiVersion: v1
  kind: Pod
  metadata: {name: grpc-ready}
  spec:
    containers:
    - name: server
      image: PROBE_IMAGE
      command: ["probe-target", "--grpc", "9090"]
      readinessProbe: {grpc: {port: 9090}, periodSeconds: 1}
      livenessProbe: {grpc: {port: 9090, service: probe-target}, periodSeconds: 1, failureThreshold: 1}
- apiVersion: v1
  kind: Pod
  metadata: {name: grpc-live-fail}
  spec:
    containers:
    - name: server
      image: PROBE_IMAGE
      command: ["sh", "-c", "(sleep 5; touch /tmp/not-serving) & exec probe-target --grpc 9090"]
      livenessProbe: {grpc: {port: 9090}, initialDelaySeconds: 1, periodSeconds: 1, failureThreshold: 1}
- apiVersion: v1
  kind: Pod
  metadata: {name: grpc-unknown-service}
  spec:
    containers:
    - name: server
      image: PROBE_IMAGE
      command: ["probe-target", "--grpc", "9090"]
      readinessProbe: {grpc: {port: 9090, service: nobody}, periodSeconds: 1}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: followed}
  data: {value: v0}
- apiVersion: v1
  kind: Secret
  metadata: {name: followed-secret}
  data: {token: czA=}
- apiVersion: v1
  kind: Pod
  metadata: {name: config-follower}
  spec:
    volumes:
    - {name: config, configMap: {name: followed}}
    - {name: secret, secret: {secretName: followed-secret}}
    containers:
    - name: app
      image: APP_IMAGE
      command: ["sleep", "600"]
      volumeMounts: [{name: config, mountPath: /config}, {name: secret, mountPath: /secret}]
- apiVersion: v1
  kind: Pod
  metadata: {name: propagation-bidirectional}
  spec:
    terminationGracePeriodSeconds: 1
    volumes: [{name: shared, hostPath: {path: SHARED_DIR, type: Directory}}]
    containers:
    - name: app
      image: APP_IMAGE
      securityContext: {privileged: true}
      command: ["sh", "-c", "mkdir -p /shared/inner && mount -t tmpfs -o size=1m tmpfs /shared/inner && echo from-container > /shared/inner/file && exec sleep 600"]
      volumeMounts: [{name: shared, mountPath: /shared, mountPropagation: Bidirectional}]
- apiVersion: v1
  kind: Pod
  metadata: {name: propagation-host-to-container}
  spec:
    terminationGracePeriodSeconds: 1
    volumes: [{name: shared, hostPath: {path: SHARED_DIR, type: Directory}}]
    containers:
    - name: app
      image: APP_IMAGE
      command: ["sleep", "600"]
      volumeMounts: [{name: shared, mountPath: /shared, mountPropagation: HostToContainer}]
      readinessProbe: {exec: {command: ["cat", "/shared/inner/file"]}, periodSeconds: 1}
"#;

/// A path made a shared mount point on the host (bind-mounted onto itself,
/// `--make-rshared`), as Bidirectional propagation needs; unmounted with
/// everything below it on drop.
struct SharedDir(PathBuf);

impl SharedDir {
    fn new(path: PathBuf) -> Result<SharedDir> {
        std::fs::create_dir_all(&path)?;
        let dir = SharedDir(path);
        run("mount", &["--bind", &dir.path(), &dir.path()])?;
        run("mount", &["--make-rshared", &dir.path()])?;
        Ok(dir)
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        let _ = run("umount", &["--recursive", "--lazy", &self.path()]);
    }
}

fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    ensure!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The static `probe-target` binary (`make pause` builds it).
fn probe_target_binary() -> PathBuf {
    std::env::var_os("BOSUN_PROBE_TARGET").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/x86_64-unknown-linux-gnu/release/probe-target")
    })
}

/// Builds the two fixture images and pushes them to the cluster's registry;
/// returns (stop-signal image, probe-target image).
fn publish_fixtures(cluster: &Cluster, work: &Path) -> Result<(String, String)> {
    let binary = probe_target_binary();
    ensure!(binary.exists(), "{} is missing: run `make pause`", binary.display());
    let busybox = Path::new("/bin/busybox");
    let stop = write_layout(&work.join("app-stopsignal"), &stop_signal_image(busybox))?;
    let probe = write_layout(&work.join("probe-target"), &probe_target_image(busybox, &binary))?;
    Ok((publish::push(&stop, &cluster.registry)?, publish::push(&probe, &cluster.registry)?))
}

/// A self-signed certificate for the HTTPS server, as Secret `probe-tls`.
fn create_tls_secret(cluster: &Cluster, work: &Path) -> Result<()> {
    let (cert, key) = (work.join("tls.crt"), work.join("tls.key"));
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=probe-target",
            "-keyout",
            &key.display().to_string(),
            "-out",
            &cert.display().to_string(),
        ],
    )?;
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "tls",
        "probe-tls",
        &format!("--cert={}", cert.display()),
        &format!("--key={}", key.display()),
    ])?;
    Ok(())
}

#[test]
fn node_features_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start("features-node")?;
    let work = cluster.dir.join("fixtures");
    let (stop_image, probe_image) = publish_fixtures(&cluster, &work)?;
    create_tls_secret(&cluster, &work)?;
    let shared = SharedDir::new(cluster.dir.join("shared"))?;
    let manifest = MANIFEST
        .replace("STOP_SCRIPT", STOP_SCRIPT)
        .replace("STOPSIGNAL_IMAGE", &stop_image)
        .replace("APP_IMAGE", &format!("{}/bosun/app:1.0", cluster.registry))
        .replace("PROBE_IMAGE", &probe_image)
        .replace("SHARED_DIR", &shared.path());
    let (ok, out, err) = cluster.apply_stdin(&manifest)?;
    ensure!(ok, "apply: {out}{err}");

    stopped_with(&cluster, "stop-image-signal", "USR1")?;
    stopped_with(&cluster, "stop-default-signal", "TERM")?;
    ready_and_healthy(&cluster, "https-ready")?;
    ready_and_healthy(&cluster, "grpc-ready")?;
    liveness_restarts(&cluster, "https-live-fail", "HTTP probe failed with statuscode: 500")?;
    liveness_restarts(&cluster, "grpc-live-fail", "service unhealthy (responded with \"NOT_SERVING\")")?;
    unknown_grpc_service_is_never_ready(&cluster)?;
    bidirectional_mounts_reach_host_and_other_pods(&cluster, &shared)?;
    config_map_updates_follow_the_watch(&cluster)?;
    Ok(())
}

/// The container was stopped (by its failed liveness probe) with `signal`:
/// its trap wrote the name and exited 0, long before the 60 s grace.
fn stopped_with(cluster: &Cluster, name: &str, signal: &str) -> Result<()> {
    let p = wait_pod(cluster, name, "restarted", LONG, |p| restarts(p) >= 1)?;
    let last = &container(&p)["lastState"]["terminated"];
    ensure!(
        last["message"].as_str().map(str::trim) == Some(signal),
        "{name}: stopped with {signal}, so its {signal} trap wrote the message: {last:#}"
    );
    ensure!(last["exitCode"] == 0, "{name}: the trap exited 0 (not SIGKILL at the grace's end): {last:#}");
    Ok(())
}

/// Ready through its probes, and its liveness probe never failed.
fn ready_and_healthy(cluster: &Cluster, name: &str) -> Result<()> {
    let p = wait_pod(cluster, name, "ready", LONG, |p| container(p)["ready"] == true)?;
    ensure!(condition(&p, "Ready").is_some_and(|c| c["status"] == "True"), "{name}: Ready: {p:#}");
    // Several liveness periods pass while the other scenarios run; checked
    // again at the end through `liveness_never_failed`.
    liveness_never_failed(cluster, name)
}

fn liveness_never_failed(cluster: &Cluster, name: &str) -> Result<()> {
    let p = pod(cluster, name)?.context(name.to_string())?;
    ensure!(restarts(&p) == 0 && container(&p)["ready"] == true, "{name}: ready, never restarted: {p:#}");
    let unhealthy: Vec<_> = events(cluster, name)?.into_iter().filter(|(r, _)| r == "Unhealthy").collect();
    ensure!(unhealthy.is_empty(), "{name}: no Unhealthy events: {unhealthy:?}");
    Ok(())
}

fn liveness_restarts(cluster: &Cluster, name: &str, unhealthy: &str) -> Result<()> {
    wait_pod(cluster, name, "restarted", LONG, |p| restarts(p) >= 1)?;
    let message = wait_event(cluster, name, "Unhealthy", unhealthy, LONG)?;
    ensure!(message.starts_with("Liveness probe failed: "), "{name}: {message}");
    wait_event(cluster, name, "Killing", "failed liveness probe, will be restarted", LONG)?;
    Ok(())
}

/// Upstream's gRPC probe: an unknown service is an rpc error (NotFound),
/// so the pod runs but never becomes ready.
fn unknown_grpc_service_is_never_ready(cluster: &Cluster) -> Result<()> {
    let name = "grpc-unknown-service";
    let message = wait_event(cluster, name, "Unhealthy", "NotFound", LONG)?;
    ensure!(message.starts_with("Readiness probe failed: "), "{name}: {message}");
    let p = pod(cluster, name)?.context(name)?;
    ensure!(container(&p)["state"]["running"].is_object(), "{name}: running: {p:#}");
    ensure!(container(&p)["ready"] == false && restarts(&p) == 0, "{name}: unready, not restarted: {p:#}");
    for healthy in ["https-ready", "grpc-ready"] {
        liveness_never_failed(cluster, healthy)?;
    }
    Ok(())
}

/// The privileged pod's tmpfs below its Bidirectional mount is a mount on
/// the host too, with the file it wrote, and the HostToContainer pod (whose
/// readiness reads that file) sees it and becomes ready.
fn bidirectional_mounts_reach_host_and_other_pods(cluster: &Cluster, shared: &SharedDir) -> Result<()> {
    let inner = shared.0.join("inner");
    wait_pod(cluster, "propagation-bidirectional", "running", LONG, |p| container(p)["state"]["running"].is_object())?;
    wait_pod(cluster, "propagation-host-to-container", "ready", LONG, |p| container(p)["ready"] == true)?;
    let on_host =
        run("findmnt", &["--noheadings", "--output", "FSTYPE", "--mountpoint", &inner.display().to_string()])?;
    ensure!(
        on_host.trim() == "tmpfs",
        "the container's tmpfs is mounted on the host at {}: {on_host:?}",
        inner.display()
    );
    let file = std::fs::read_to_string(inner.join("file"))?;
    ensure!(file.trim() == "from-container", "the host reads what the container wrote: {file:?}");
    cluster.kubectl_ok(&["delete", "pod", "propagation-bidirectional", "propagation-host-to-container", "--wait"])?;
    Ok(())
}

/// Patches ConfigMap `followed` 5 times and Secret `followed-secret` twice
/// and times each new value's arrival in the pod's volume on the node (from
/// before `kubectl patch` starts, so the kubectl process is included: an
/// upper bound).
fn config_map_updates_follow_the_watch(cluster: &Cluster) -> Result<()> {
    let p = wait_pod(cluster, "config-follower", "running", LONG, |p| container(p)["state"]["running"].is_object())?;
    let uid = p["metadata"]["uid"].as_str().context("uid")?;
    let volumes = cluster.dir.join("agent/pods").join(uid).join("volumes");
    let config = volumes.join("kubernetes.io~configmap/config/value");
    let secret = volumes.join("kubernetes.io~secret/secret/token");
    let read = |file: &Path| std::fs::read_to_string(file).unwrap_or_default();
    ensure!(read(&config) == "v0" && read(&secret) == "s0", "initial content: {:?} {:?}", read(&config), read(&secret));
    let mut delays = Vec::new();
    let mut update = |kind: &str, name: &str, key: &str, wire: String, want: String, file: &Path| -> Result<()> {
        let started = Instant::now();
        let patch = format!("{{\"data\":{{\"{key}\":\"{wire}\"}}}}");
        cluster.kubectl_ok(&["patch", kind, name, "-p", &patch])?;
        while read(file) != want {
            ensure!(started.elapsed() < LONG, "{want} never reached {}: {:?}", file.display(), read(file));
            std::thread::sleep(Duration::from_millis(10));
        }
        delays.push(started.elapsed());
        Ok(())
    };
    for round in 1..=5 {
        update("configmap", "followed", "value", format!("v{round}"), format!("v{round}"), &config)?;
    }
    // base64 of "s1" and "s2".
    for (wire, want) in [("czE=", "s1"), ("czI=", "s2")] {
        update("secret", "followed-secret", "token", wire.into(), want.into(), &secret)?;
    }
    delays.sort();
    println!(
        "configMap/secret update -> file on the node (incl. kubectl), {} updates: p50 {:?}, max {:?}",
        delays.len(),
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    ensure!(
        delays.iter().all(|d| *d < Duration::from_secs(5)),
        "updates arrive by watch, not by a 10 s poll: {delays:?}"
    );
    Ok(())
}
