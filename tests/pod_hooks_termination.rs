//! Lifecycle hooks and termination on the real stack (`bosun up`, real
//! kubectl), after upstream's lifecycle_hook and pods conformance tests:
//! postStart runs in the container right after it starts (a failing one
//! kills it: FailedPostStartHook, restart); preStop runs before the stop
//! signal (an httpGet preStop reaches a recorder pod before the container's
//! TERM trap does), a `sleep` preStop delays the stop; a TERM-ignoring
//! container is killed when its grace period ends (deletionTimestamp vs the
//! container's finishedAt, both recorded by the system); a second delete
//! with a shorter grace shortens the deadline and the agent follows it;
//! app containers and then sidecars share one grace (a TERM-ignoring
//! sidecar is killed at the pod's deadline too, not a grace after the app);
//! `--force` removes the pod at once.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use support::cluster::Cluster;
use support::pods::{container, events, now_seconds, pod, restarts, seconds, wait_event, wait_pod, watch_objects};

const HOOKS: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: poststart-ok}
  spec:
    containers:
    - name: app
      image: IMAGE
      command: ["sleep", "600"]
      lifecycle: {postStart: {exec: {command: ["sh", "-c", "echo hook > /tmp/hook"]}}}
      readinessProbe: {exec: {command: ["cat", "/tmp/hook"]}, periodSeconds: 1}
- apiVersion: v1
  kind: Pod
  metadata: {name: poststart-fail}
  spec:
    containers:
    - name: app
      image: IMAGE
      command: ["sleep", "600"]
      lifecycle: {postStart: {exec: {command: ["false"]}}}
- apiVersion: v1
  kind: Pod
  metadata: {name: recorder}
  spec:
    containers:
    - name: web
      image: IMAGE
      command: ["sh", "-c", "touch /www/prestop /www/term; exec httpd -f -vv -p 8080 -h /www"]
- apiVersion: v1
  kind: Pod
  metadata: {name: stubborn}
  spec:
    terminationGracePeriodSeconds: 5
    containers:
    - name: app
      image: IMAGE
      command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
- apiVersion: v1
  kind: Pod
  metadata: {name: shorten}
  spec:
    terminationGracePeriodSeconds: 60
    containers:
    - name: app
      image: IMAGE
      command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
- apiVersion: v1
  kind: Pod
  metadata: {name: prestop-sleep}
  spec:
    terminationGracePeriodSeconds: 30
    containers:
    - name: app
      image: IMAGE
      command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
      lifecycle: {preStop: {sleep: {seconds: 4}}}
- apiVersion: v1
  kind: Pod
  metadata: {name: waves}
  spec:
    terminationGracePeriodSeconds: 5
    initContainers:
    - name: sidecar
      image: IMAGE
      restartPolicy: Always
      command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
    containers:
    - name: app
      image: IMAGE
      command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
- apiVersion: v1
  kind: Pod
  metadata: {name: forced}
  spec:
    containers:
    - name: app
      image: IMAGE
      command: ["sleep", "600"]
"#;

const PRESTOP: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: prestop}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: app
    image: IMAGE
    env: [{name: REC, value: "RECORDER"}]
    command: ["sh", "-c", "trap 'wget -q -O /dev/null http://$REC:8080/term; exit 0' TERM; while true; do sleep 1; done"]
    lifecycle: {preStop: {httpGet: {host: "RECORDER", path: /prestop, port: 8080}}}
"#;

const LONG: Duration = Duration::from_secs(120);

fn running(p: &Value) -> bool {
    container(p)["state"]["running"].is_object()
}

/// `kubectl get pod NAME -w -o json` in the background.
struct PodWatch(Child);

impl PodWatch {
    fn start(cluster: &Cluster, name: &str) -> Result<PodWatch> {
        let child = Command::new("kubectl")
            .env("KUBECONFIG", &cluster.kubeconfig)
            .args(["get", "pod", name, "-w", "-o", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(PodWatch(child))
    }

    /// Stops the watch; every pod version it saw.
    fn finish(mut self) -> Result<Vec<Value>> {
        let _ = self.0.kill();
        let out = self.0.wait_with_output()?;
        Ok(watch_objects(&String::from_utf8_lossy(&out.stdout)))
    }
}

/// Deletes `name` (extra kubectl args), waits until it is gone and returns
/// the versions a watch saw meanwhile.
fn delete_and_watch(
    cluster: &Cluster,
    name: &str,
    extra: &[&str],
    between: impl FnOnce() -> Result<()>,
) -> Result<Vec<Value>> {
    let watch = PodWatch::start(cluster, name)?;
    let mut args = vec!["delete", "pod", name, "--wait=false"];
    args.extend(extra);
    cluster.kubectl_ok(&args)?;
    between()?;
    let deadline = std::time::Instant::now() + LONG;
    while pod(cluster, name)?.is_some() {
        ensure!(std::time::Instant::now() < deadline, "{name} still there after {LONG:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    watch.finish()
}

/// (deletionTimestamp, deletionGracePeriodSeconds, finishedAt, exitCode)
/// from the last version showing the container terminated.
fn final_times(versions: &[Value]) -> Result<(i64, i64, i64, i64)> {
    let last = versions
        .iter()
        .rev()
        .find(|p| container(p)["state"]["terminated"].is_object())
        .context(format!("no version with the container terminated among {}", versions.len()))?;
    let terminated = &container(last)["state"]["terminated"];
    Ok((
        seconds(&last["metadata"]["deletionTimestamp"]).context("deletionTimestamp")?,
        last["metadata"]["deletionGracePeriodSeconds"].as_i64().context("grace")?,
        seconds(&terminated["finishedAt"]).context("finishedAt")?,
        terminated["exitCode"].as_i64().unwrap_or(-1),
    ))
}

#[test]
fn hooks_and_termination_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start("hooks-node")?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    let (ok, out, err) = cluster.apply_stdin(&HOOKS.replace("IMAGE", &image))?;
    ensure!(ok, "apply: {out}{err}");

    // postStart ran inside the container (its file makes the pod ready).
    let p = wait_pod(&cluster, "poststart-ok", "ready", LONG, |p| container(p)["ready"] == true)?;
    ensure!(restarts(&p) == 0, "poststart-ok never restarted: {p:#}");
    // A failing postStart kills the container; it is restarted per policy.
    wait_event(&cluster, "poststart-fail", "FailedPostStartHook", "PostStartHook failed", LONG)?;
    wait_pod(&cluster, "poststart-fail", "restarted", LONG, |p| restarts(p) >= 1)?;

    prestop_runs_before_the_stop_signal(&cluster, &image)?;
    term_ignoring_container_is_killed_at_its_grace(&cluster)?;
    second_delete_shortens_the_grace(&cluster)?;
    sidecars_share_the_grace_of_the_app_containers(&cluster)?;
    prestop_sleep_delays_the_stop(&cluster)?;

    // --force: gone from the API at once.
    wait_pod(&cluster, "forced", "running", LONG, running)?;
    cluster.kubectl_ok(&["delete", "pod", "forced", "--grace-period=0", "--force", "--wait=false"])?;
    ensure!(pod(&cluster, "forced")?.is_none(), "a forced delete removes the pod at once");
    Ok(())
}

fn prestop_runs_before_the_stop_signal(cluster: &Cluster, image: &str) -> Result<()> {
    let recorder = wait_pod(cluster, "recorder", "running", LONG, running)?;
    let ip = recorder["status"]["podIP"].as_str().context("recorder IP")?.to_string();
    let (ok, out, err) = cluster.apply_stdin(&PRESTOP.replace("IMAGE", image).replace("RECORDER", &ip))?;
    ensure!(ok, "apply prestop: {out}{err}");
    wait_pod(cluster, "prestop", "running", LONG, running)?;
    let versions = delete_and_watch(cluster, "prestop", &[], || Ok(()))?;
    let (_, _, _, exit_code) = final_times(&versions)?;
    ensure!(exit_code == 0, "the container left on its TERM trap (exit 0), not SIGKILL: {exit_code}");
    let log = cluster.kubectl_ok(&["logs", "recorder"])?;
    let at = |path: &str| log.lines().position(|l| l.contains(&format!("url:{path}")));
    let (pre, term) = (
        at("/prestop").context(format!("preStop request in {log}"))?,
        at("/term").context(format!("TERM request in {log}"))?,
    );
    ensure!(pre < term, "preStop ran before SIGTERM:\n{log}");
    ensure!(!events(cluster, "prestop")?.iter().any(|(r, _)| r == "FailedPreStopHook"), "the preStop hook succeeded");
    Ok(())
}

fn term_ignoring_container_is_killed_at_its_grace(cluster: &Cluster) -> Result<()> {
    wait_pod(cluster, "stubborn", "running", LONG, running)?;
    let asked = now_seconds();
    let versions = delete_and_watch(cluster, "stubborn", &[], || Ok(()))?;
    let (deadline, grace, finished, exit_code) = final_times(&versions)?;
    println!(
        "stubborn: deletionTimestamp {deadline}, finishedAt {finished} ({:+} s), exit {exit_code}",
        finished - deadline
    );
    ensure!(grace == 5, "deletionGracePeriodSeconds from the pod's terminationGracePeriodSeconds: {grace}");
    ensure!(
        (4..=6).contains(&(deadline - asked)),
        "deletionTimestamp = now + grace: {} s after the request",
        deadline - asked
    );
    ensure!((finished - deadline).abs() <= 1, "killed at the grace deadline ±1 s: {} s", finished - deadline);
    ensure!(exit_code == 137, "killed by SIGKILL: exit {exit_code}");
    Ok(())
}

fn second_delete_shortens_the_grace(cluster: &Cluster) -> Result<()> {
    wait_pod(cluster, "shorten", "running", LONG, running)?;
    let versions = delete_and_watch(cluster, "shorten", &[], || {
        let first = wait_pod(cluster, "shorten", "marked", LONG, |p| p["metadata"]["deletionTimestamp"].is_string())?;
        let first_deadline = seconds(&first["metadata"]["deletionTimestamp"]).context("deadline")?;
        ensure!(first["metadata"]["deletionGracePeriodSeconds"] == 60, "first grace 60: {first:#}");
        cluster.kubectl_ok(&["delete", "pod", "shorten", "--grace-period=5", "--wait=false"])?;
        let second = pod(cluster, "shorten")?.context("still terminating")?;
        ensure!(second["metadata"]["deletionGracePeriodSeconds"] == 5, "shortened to 5: {second:#}");
        let second_deadline = seconds(&second["metadata"]["deletionTimestamp"]).context("deadline")?;
        ensure!(second_deadline == first_deadline - 55, "deadline moved 55 s earlier");
        cluster.kubectl_ok(&["delete", "pod", "shorten", "--grace-period=30", "--wait=false"])?;
        let third = pod(cluster, "shorten")?.context("still terminating")?;
        ensure!(third["metadata"]["deletionGracePeriodSeconds"] == 5, "a longer grace does not extend: {third:#}");
        Ok(())
    })?;
    let (deadline, grace, finished, exit_code) = final_times(&versions)?;
    println!(
        "shorten: deletionTimestamp {deadline}, finishedAt {finished} ({:+} s), exit {exit_code}",
        finished - deadline
    );
    ensure!(grace == 5 && exit_code == 137, "killed under the shortened grace: {grace} {exit_code}");
    ensure!((finished - deadline).abs() <= 1, "killed at the shortened deadline ±1 s: {} s", finished - deadline);
    Ok(())
}

fn sidecars_share_the_grace_of_the_app_containers(cluster: &Cluster) -> Result<()> {
    wait_pod(cluster, "waves", "running", LONG, running)?;
    let versions = delete_and_watch(cluster, "waves", &[], || Ok(()))?;
    let (deadline, grace, app_finished, app_exit) = final_times(&versions)?;
    let last = versions
        .iter()
        .rev()
        .find(|p| p["status"]["initContainerStatuses"][0]["state"]["terminated"].is_object())
        .context("no version with the sidecar terminated")?;
    let sidecar = &last["status"]["initContainerStatuses"][0]["state"]["terminated"];
    let sidecar_finished = seconds(&sidecar["finishedAt"]).context("sidecar finishedAt")?;
    println!(
        "waves: deletionTimestamp {deadline}, app finishedAt {:+} s, sidecar finishedAt {:+} s",
        app_finished - deadline,
        sidecar_finished - deadline
    );
    ensure!(grace == 5 && app_exit == 137, "the app was killed at the grace: {grace} {app_exit}");
    ensure!(sidecar_finished >= app_finished, "the sidecar stopped after the app");
    ensure!(
        (sidecar_finished - deadline).abs() <= 1,
        "the sidecar got what was left of the one grace, killed at the deadline ±1 s: {} s",
        sidecar_finished - deadline
    );
    ensure!(sidecar["exitCode"] == 137, "the sidecar was killed: {sidecar:#}");
    Ok(())
}

fn prestop_sleep_delays_the_stop(cluster: &Cluster) -> Result<()> {
    wait_pod(cluster, "prestop-sleep", "running", LONG, running)?;
    let versions = delete_and_watch(cluster, "prestop-sleep", &[], || Ok(()))?;
    let (deadline, grace, finished, exit_code) = final_times(&versions)?;
    let requested = deadline - grace;
    println!("prestop-sleep: stopped {} s after the delete (preStop sleep 4 s)", finished - requested);
    ensure!(exit_code == 0, "exited on TERM after the hook: {exit_code}");
    ensure!((3..=10).contains(&(finished - requested)), "the 4 s sleep ran before TERM: {} s", finished - requested);
    Ok(())
}
