//! Probes on the real stack (`bosun up`, real kubectl), mirroring upstream's
//! container_probe conformance tests: a readiness probe that never passes
//! keeps a pod unready and never restarts it; exec, httpGet (named port),
//! tcpSocket liveness probes restart failing containers with Unhealthy and
//! Killing Events and leave healthy ones alone; an exec probe that outlives
//! its timeout fails; a startup probe gates liveness and readiness (and
//! restarts when it fails). And the acceptance point: a pod whose readiness
//! probe fails stays out of its Service (curl to the ClusterIP never reaches
//! it) and joins within one period once the probe passes.
//!
//! All pods are created at once so their timers run side by side; one
//! cluster for the whole binary.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use support::cluster::{get, Cluster};
use support::pods::{condition, container, events, now_seconds, pod, restarts, seconds, wait_event, wait_pod};

const MANIFEST: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: never-ready}
  spec:
    containers:
    - name: app
      image: IMAGE
      command: ["sleep", "600"]
      readinessProbe: {exec: {command: ["false"]}, periodSeconds: 1}
- apiVersion: v1
  kind: Pod
  metadata: {name: gate-always, labels: {gate: "yes"}}
  spec:
    containers:
    - name: web
      image: IMAGE
      command: ["sh", "-c", "echo always > /www/index.html; exec httpd -f -p 8080 -h /www"]
      ports: [{name: http, containerPort: 8080}]
- apiVersion: v1
  kind: Pod
  metadata: {name: gate-probed, labels: {gate: "yes"}}
  spec:
    containers:
    - name: web
      image: IMAGE
      command: ["sh", "-c", "echo probed > /www/index.html; (sleep 20; date +%s > /www/readyat) & exec httpd -f -p 8080 -h /www"]
      ports: [{name: http, containerPort: 8080}]
      readinessProbe:
        httpGet: {path: /readyat, port: http, httpHeaders: [{name: X-Probe, value: bosun}]}
        periodSeconds: 2
- apiVersion: v1
  kind: Service
  metadata: {name: gate}
  spec:
    selector: {gate: "yes"}
    ports: [{port: 80, targetPort: 8080}]
- apiVersion: v1
  kind: Pod
  metadata: {name: live-exec}
  spec:
    containers:
    - name: app
      image: IMAGE
      command: ["sh", "-c", "echo ok > /tmp/health; sleep 5; rm -f /tmp/health; sleep 600"]
      livenessProbe: {exec: {command: ["cat", "/tmp/health"]}, initialDelaySeconds: 1, periodSeconds: 1, failureThreshold: 1}
- apiVersion: v1
  kind: Pod
  metadata: {name: live-exec-ok}
  spec:
    containers:
    - name: app
      image: IMAGE
      command: ["sh", "-c", "echo ok > /tmp/health; sleep 600"]
      livenessProbe: {exec: {command: ["cat", "/tmp/health"]}, periodSeconds: 1, failureThreshold: 1}
- apiVersion: v1
  kind: Pod
  metadata: {name: live-http}
  spec:
    containers:
    - name: web
      image: IMAGE
      command: ["sh", "-c", "echo ok > /www/healthz; (sleep 5; rm -f /www/healthz) & exec httpd -f -p 8080 -h /www"]
      ports: [{name: http, containerPort: 8080}]
      livenessProbe: {httpGet: {path: /healthz, port: http}, initialDelaySeconds: 1, periodSeconds: 1, failureThreshold: 1}
- apiVersion: v1
  kind: Pod
  metadata: {name: live-tcp-ok}
  spec:
    containers:
    - name: web
      image: IMAGE
      command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
      livenessProbe: {tcpSocket: {port: 8080}, initialDelaySeconds: 1, periodSeconds: 1, failureThreshold: 1}
- apiVersion: v1
  kind: Pod
  metadata: {name: live-tcp-fail}
  spec:
    containers:
    - name: app
      image: IMAGE
      command: ["sleep", "600"]
      livenessProbe: {tcpSocket: {port: 9999}, initialDelaySeconds: 1, periodSeconds: 1, failureThreshold: 2}
- apiVersion: v1
  kind: Pod
  metadata: {name: exec-timeout}
  spec:
    containers:
    - name: app
      image: IMAGE
      command: ["sleep", "600"]
      livenessProbe: {exec: {command: ["sleep", "10"]}, timeoutSeconds: 1, periodSeconds: 2, failureThreshold: 1}
- apiVersion: v1
  kind: Pod
  metadata: {name: startup-gated}
  spec:
    containers:
    - name: app
      image: IMAGE
      command: ["sh", "-c", "sleep 8; touch /tmp/started; sleep 600"]
      startupProbe: {exec: {command: ["cat", "/tmp/started"]}, periodSeconds: 1, failureThreshold: 60}
      livenessProbe: {exec: {command: ["cat", "/tmp/started"]}, periodSeconds: 1, failureThreshold: 1}
      readinessProbe: {exec: {command: ["true"]}, periodSeconds: 1}
- apiVersion: v1
  kind: Pod
  metadata: {name: startup-fail}
  spec:
    containers:
    - name: app
      image: IMAGE
      command: ["sleep", "600"]
      startupProbe: {exec: {command: ["false"]}, periodSeconds: 1, failureThreshold: 2}
"#;

const LONG: Duration = Duration::from_secs(120);

#[test]
fn probes_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start("probe-node")?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    let (ok, out, err) = cluster.apply_stdin(&MANIFEST.replace("IMAGE", &image))?;
    ensure!(ok, "apply: {out}{err}");

    readiness_gates_the_service(&cluster)?;
    liveness_restarts(&cluster, "live-exec", "Liveness probe failed")?;
    liveness_restarts(&cluster, "live-http", "HTTP probe failed with statuscode: 404")?;
    liveness_restarts(&cluster, "live-tcp-fail", "dial tcp")?;
    liveness_restarts(&cluster, "exec-timeout", "timed out")?;
    startup_gates_liveness_and_readiness(&cluster)?;
    startup_failure_restarts(&cluster)?;
    // Checked last, after every other scenario ran for a while.
    never_ready_is_never_restarted(&cluster)?;
    for healthy in ["live-exec-ok", "live-tcp-ok"] {
        let p = pod(&cluster, healthy)?.context(healthy)?;
        ensure!(restarts(&p) == 0 && container(&p)["ready"] == true, "{healthy} healthy and never restarted: {p:#}");
        let unhealthy = events(&cluster, healthy)?.into_iter().filter(|(r, _)| r == "Unhealthy").count();
        ensure!(unhealthy == 0, "{healthy}: no Unhealthy events");
    }
    Ok(())
}

/// Curl through the ClusterIP reaches only the pod without a probe until
/// the probed pod's readiness passes; the pod is Ready within one period
/// (2 s) of its check starting to pass (times from the pod and the Ready
/// condition, both recorded by the system, second precision).
fn readiness_gates_the_service(cluster: &Cluster) -> Result<()> {
    let running = |p: &serde_json::Value| container(p)["state"]["running"].is_object();
    wait_pod(cluster, "gate-always", "ready", LONG, |p| container(p)["ready"] == true)?;
    let probed = wait_pod(cluster, "gate-probed", "running", LONG, running)?;
    ensure!(container(&probed)["ready"] == false, "not ready before its probe passes: {probed:#}");
    let service = cluster.json(&["get", "service", "gate"])?;
    let url = format!("http://{}/", service["spec"]["clusterIP"].as_str().context("clusterIP")?);
    let mut answers: Vec<(i64, String)> = Vec::new();
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let answer = get(&url).unwrap_or_default();
        answers.push((now_seconds(), answer.clone()));
        if answer == "probed" {
            break;
        }
        ensure!(std::time::Instant::now() < deadline, "probed pod never joined the Service: {answers:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ip = probed["status"]["podIP"].as_str().context("pod IP")?;
    let ready_at: i64 = get(&format!("http://{ip}:8080/readyat"))?.parse()?;
    let before: BTreeSet<&str> = answers.iter().filter(|(t, _)| *t < ready_at).map(|(_, a)| a.as_str()).collect();
    ensure!(before.contains("always"), "the Service answered while the probe failed: {answers:?}");
    ensure!(!before.contains("probed"), "the unready pod was reached through the Service: {answers:?}");
    let p = pod(cluster, "gate-probed")?.context("gate-probed")?;
    let ready = condition(&p, "Ready").context("Ready condition")?;
    ensure!(ready["status"] == "True", "Ready: {ready}");
    let became_ready = seconds(&ready["lastTransitionTime"]).context("transition time")?;
    let lag = became_ready - ready_at;
    println!("readiness: check passes at {ready_at}, pod Ready at {became_ready} (+{lag} s, period 2 s)");
    ensure!((0..=3).contains(&lag), "Ready {lag} s after the check passed (period 2 s, +1 s rounding)");
    ensure!(
        condition(&p, "ContainersReady").is_some_and(|c| c["status"] == "True"),
        "ContainersReady follows readiness: {p:#}"
    );
    Ok(())
}

fn liveness_restarts(cluster: &Cluster, name: &str, unhealthy: &str) -> Result<()> {
    let p = wait_pod(cluster, name, "restarted", LONG, |p| restarts(p) >= 1)?;
    let last = &container(&p)["lastState"]["terminated"];
    ensure!(last.is_object(), "{name}: previous attempt terminated: {p:#}");
    let message = wait_event(cluster, name, "Unhealthy", unhealthy, LONG)?;
    let kind = if name.starts_with("startup") { "Startup" } else { "Liveness" };
    ensure!(message.starts_with(&format!("{kind} probe failed: ")), "{name}: {message}");
    let killing = format!(
        "Container {} failed {} probe, will be restarted",
        container(&p)["name"].as_str().unwrap_or_default(),
        kind.to_lowercase()
    );
    wait_event(cluster, name, "Killing", &killing, LONG)?;
    Ok(())
}

/// Startup gates: liveness (`cat /tmp/started`, threshold 1) would kill the
/// container during its first 8 s; it never does, and the container is
/// started and ready only after the file appears.
fn startup_gates_liveness_and_readiness(cluster: &Cluster) -> Result<()> {
    let p = wait_pod(cluster, "startup-gated", "ready", LONG, |p| container(p)["ready"] == true)?;
    ensure!(restarts(&p) == 0, "liveness never ran before startup succeeded: {p:#}");
    ensure!(container(&p)["started"] == true, "started: {p:#}");
    let started_at = seconds(&container(&p)["state"]["running"]["startedAt"]).context("startedAt")?;
    let ready_at = seconds(&condition(&p, "Ready").context("Ready")?["lastTransitionTime"]).context("Ready time")?;
    ensure!(
        ready_at - started_at >= 8,
        "ready {} s after start; the startup check passes only after 8 s",
        ready_at - started_at
    );
    ensure!(
        !events(cluster, "startup-gated")?.iter().any(|(r, m)| r == "Unhealthy" && m.starts_with("Liveness")),
        "no liveness failures while startup was pending"
    );
    Ok(())
}

fn startup_failure_restarts(cluster: &Cluster) -> Result<()> {
    liveness_restarts(cluster, "startup-fail", "Startup probe failed")?;
    let p = pod(cluster, "startup-fail")?.context("startup-fail")?;
    ensure!(container(&p)["started"] == false && container(&p)["ready"] == false, "never started: {p:#}");
    Ok(())
}

/// Upstream: "with readiness probe that fails should never be ready and
/// never restart".
fn never_ready_is_never_restarted(cluster: &Cluster) -> Result<()> {
    let p = pod(cluster, "never-ready")?.context("never-ready")?;
    let running_since = seconds(&container(&p)["state"]["running"]["startedAt"]).context("running")?;
    ensure!(now_seconds() - running_since >= 15, "observed for at least 15 s");
    ensure!(container(&p)["ready"] == false && restarts(&p) == 0, "never ready, never restarted: {p:#}");
    ensure!(p["status"]["phase"] == "Running", "Running: {p:#}");
    for type_ in ["Ready", "ContainersReady"] {
        ensure!(condition(&p, type_).is_some_and(|c| c["status"] == "False"), "{type_} False: {p:#}");
    }
    wait_event(cluster, "never-ready", "Unhealthy", "Readiness probe failed", LONG)?;
    Ok(())
}
