//! Pod lifecycle on the real stack (`bosun up`, real kubectl), mirroring
//! what upstream's conformance tests check for init containers, native
//! sidecars, restart policies, image updates, activeDeadlineSeconds and
//! termination messages. One cluster; all pods are created up front and run
//! side by side, then each scenario waits for its own outcome.

mod support;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use support::cluster::Cluster;

const TIMEOUT: Duration = Duration::from_secs(120);

struct Env {
    cluster: Cluster,
    image: String,
}

impl Env {
    fn create(&self, name: &str, spec: Value) -> Result<()> {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec});
        let (ok, out, err) = self.cluster.apply_stdin(&pod.to_string())?;
        ensure!(ok, "create {name}: {err}{out}");
        Ok(())
    }

    fn container(&self, name: &str, script: &str) -> Value {
        json!({"name": name, "image": self.image, "command": ["sh", "-c", script]})
    }

    fn pod(&self, name: &str) -> Result<Value> {
        self.cluster.json(&["get", "pod", name])
    }

    /// Polls pod `name` until `done` holds, returning that pod.
    fn wait(&self, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let pod = self.pod(name)?;
            if done(&pod) {
                return Ok(pod);
            }
            if Instant::now() > deadline {
                bail!("pod {name}: not {what} within {TIMEOUT:?}: {:#}", pod["status"]);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The STATUS column `kubectl get pod` prints.
    fn status_column(&self, name: &str) -> Result<String> {
        let out = self.cluster.kubectl_ok(&["get", "pod", name, "--no-headers"])?;
        Ok(out.split_whitespace().nth(2).unwrap_or_default().to_string())
    }

    fn events(&self, name: &str) -> Result<Vec<(String, String)>> {
        let selector = format!("involvedObject.name={name}");
        let events = self.cluster.json(&["get", "events", "--field-selector", &selector])?;
        Ok(events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (e["reason"].as_str().unwrap_or_default().into(), e["message"].as_str().unwrap_or_default().into())
            })
            .collect())
    }
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

fn status_of<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    pod["status"][list].as_array().and_then(|l| l.iter().find(|c| c["name"] == name)).unwrap_or(&Value::Null)
}

fn app<'a>(pod: &'a Value, name: &str) -> &'a Value {
    status_of(pod, "containerStatuses", name)
}

fn init<'a>(pod: &'a Value, name: &str) -> &'a Value {
    status_of(pod, "initContainerStatuses", name)
}

fn restarts(status: &Value) -> i64 {
    status["restartCount"].as_i64().unwrap_or(-1)
}

fn time(state: &Value, field: &str) -> Result<jiff::Timestamp> {
    state[field].as_str().context(format!("{field} in {state}"))?.parse().context("timestamp")
}

fn condition<'a>(pod: &'a Value, type_: &str) -> &'a str {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .and_then(|c| c["status"].as_str())
        .unwrap_or_default()
}

#[test]
fn pod_lifecycle_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start("lifecycle-node")?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    let env = Env { cluster, image };
    create_all(&env)?;
    init_containers_run_in_order(&env)?;
    failed_init_container_fails_a_never_pod(&env)?;
    failed_init_container_restarts_with_on_failure(&env)?;
    sidecar_runs_beside_a_job_style_pod_that_completes(&env)?;
    exited_sidecar_restarts_while_the_app_runs(&env)?;
    restart_policies(&env)?;
    termination_messages(&env)?;
    active_deadline_fails_the_pod(&env)?;
    image_change_restarts_that_container_only(&env)?;
    Ok(())
}

const POLICIES: [(&str, i32); 6] =
    [("Always", 0), ("Always", 1), ("OnFailure", 0), ("OnFailure", 1), ("Never", 0), ("Never", 1)];

fn create_all(env: &Env) -> Result<()> {
    env.create(
        "init-order",
        json!({"restartPolicy": "Never", "initContainers": [
            env.container("init1", "sleep 2"),
            env.container("init2", "sleep 2"),
        ], "containers": [env.container("run1", "true")]}),
    )?;
    env.create(
        "init-stuck",
        json!({"terminationGracePeriodSeconds": 1, "initContainers": [
            env.container("init1", "exec sleep 3600"),
            env.container("init2", "true"),
        ], "containers": [env.container("run1", "true")]}),
    )?;
    env.create(
        "init-fail-never",
        json!({"restartPolicy": "Never", "initContainers": [
            env.container("init1", "exit 3"),
            env.container("init2", "true"),
        ], "containers": [env.container("run1", "true")]}),
    )?;
    env.create(
        "init-fail-onfailure",
        json!({"restartPolicy": "OnFailure", "initContainers": [env.container("init1", "exit 1")],
               "containers": [env.container("run1", "true")]}),
    )?;
    let mut sidecar = env.container("sidecar", "exec sleep 3600");
    sidecar["restartPolicy"] = json!("Always");
    env.create(
        "sidecar-job",
        json!({"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
               "initContainers": [sidecar, env.container("after", "true")],
               "containers": [env.container("job", "sleep 3; exit 0")]}),
    )?;
    let mut flaky = env.container("sidecar", "sleep 1; exit 0");
    flaky["restartPolicy"] = json!("Always");
    env.create(
        "sidecar-restart",
        json!({"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
               "initContainers": [flaky], "containers": [env.container("app", "exec sleep 3600")]}),
    )?;
    for (policy, code) in POLICIES {
        let name = format!("restart-{}-{code}", policy.to_lowercase());
        let spec = json!({"restartPolicy": policy, "containers": [env.container("c", &format!("exit {code}"))]});
        env.create(&name, spec)?;
    }
    let mut custom = env.container("c", "echo -n custom message > /dev/termination-custom-log");
    custom["terminationMessagePath"] = json!("/dev/termination-custom-log");
    let fallback = |script: &str| {
        let mut c = env.container("c", script);
        c["terminationMessagePolicy"] = json!("FallbackToLogsOnError");
        c
    };
    let messages = [
        ("msg-custom-path", custom),
        ("msg-fallback-failed", fallback("echo DONE; exit 1")),
        ("msg-fallback-succeeded", fallback("echo DONE; exit 0")),
        ("msg-fallback-file", fallback("echo -n OK > /dev/termination-log; echo DONE; exit 0")),
    ];
    for (name, container) in messages {
        env.create(name, json!({"restartPolicy": "Never", "containers": [container]}))?;
    }
    env.create(
        "deadline",
        json!({"activeDeadlineSeconds": 5, "terminationGracePeriodSeconds": 1,
               "containers": [env.container("c", "exec sleep 3600")]}),
    )?;
    env.create(
        "image-change",
        json!({"terminationGracePeriodSeconds": 1, "containers": [
            env.container("a", "exec sleep 3600"),
            env.container("b", "exec sleep 3600"),
        ]}),
    )?;
    Ok(())
}

fn init_containers_run_in_order(env: &Env) -> Result<()> {
    // While an init container runs, kubectl shows Init:N/M (from initContainerStatuses).
    env.wait("init-stuck", "running its first init container", |p| init(p, "init1")["state"]["running"].is_object())?;
    let column = env.status_column("init-stuck")?;
    ensure!(column == "Init:0/2", "kubectl STATUS {column}");
    let pod = env.wait("init-order", "Succeeded", |p| phase(p) == "Succeeded")?;
    ensure!(env.status_column("init-order")? == "Completed", "kubectl STATUS Completed");
    ensure!(phase(&pod) == "Succeeded", "{:#}", pod["status"]);
    ensure!(condition(&pod, "Initialized") == "True", "Initialized: {:#}", pod["status"]);
    let (i1, i2) = (&init(&pod, "init1")["state"]["terminated"], &init(&pod, "init2")["state"]["terminated"]);
    let run = &app(&pod, "run1")["state"]["terminated"];
    for (name, t) in [("init1", i1), ("init2", i2)] {
        ensure!(t["exitCode"] == 0 && t["reason"] == "Completed", "{name}: {t}");
        ensure!(init(&pod, name)["ready"] == true, "{name} ready after success");
    }
    // Each init container sleeps 2 s: starts are strictly ordered even at
    // the API's one-second precision, and each starts after the previous ended.
    ensure!(time(i1, "startedAt")? < time(i2, "startedAt")?, "init1 before init2: {i1} {i2}");
    ensure!(time(i1, "finishedAt")? <= time(i2, "startedAt")?, "init1 done before init2: {i1} {i2}");
    ensure!(time(i2, "finishedAt")? <= time(run, "startedAt")?, "init2 done before run1: {i2} {run}");
    Ok(())
}

fn failed_init_container_fails_a_never_pod(env: &Env) -> Result<()> {
    let pod = env.wait("init-fail-never", "Failed", |p| phase(p) == "Failed")?;
    let t = &init(&pod, "init1")["state"]["terminated"];
    ensure!(t["exitCode"] == 3 && t["reason"] == "Error", "init1: {t}");
    ensure!(init(&pod, "init2")["state"]["waiting"]["reason"] == "PodInitializing", "{:#}", pod["status"]);
    ensure!(app(&pod, "run1")["state"]["waiting"]["reason"] == "PodInitializing", "{:#}", pod["status"]);
    ensure!(condition(&pod, "Initialized") == "False", "Initialized False");
    ensure!(restarts(init(&pod, "init1")) == 0, "never restarted");
    let column = env.status_column("init-fail-never")?;
    ensure!(column == "Init:Error", "kubectl STATUS {column}");
    Ok(())
}

fn failed_init_container_restarts_with_on_failure(env: &Env) -> Result<()> {
    let pod = env.wait("init-fail-onfailure", "restarted into back-off", |p| {
        restarts(init(p, "init1")) >= 1 && init(p, "init1")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    })?;
    ensure!(phase(&pod) == "Pending", "phase {}", phase(&pod));
    ensure!(app(&pod, "run1")["state"]["waiting"]["reason"] == "PodInitializing", "{:#}", pod["status"]);
    let column = env.status_column("init-fail-onfailure")?;
    ensure!(column == "Init:CrashLoopBackOff", "kubectl STATUS {column}");
    Ok(())
}

fn sidecar_runs_beside_a_job_style_pod_that_completes(env: &Env) -> Result<()> {
    let done = env.wait("sidecar-job", "Succeeded with its sidecar stopped", |p| {
        phase(p) == "Succeeded" && init(p, "sidecar")["state"]["terminated"].is_object()
    })?;
    let sidecar = &init(&done, "sidecar")["state"]["terminated"];
    let after = &init(&done, "after")["state"]["terminated"];
    let job = &app(&done, "job")["state"]["terminated"];
    ensure!(job["exitCode"] == 0 && after["exitCode"] == 0, "job {job}, after {after}");
    // One sidecar run (never restarted) spans the whole job: started before
    // the next init container, stopped only after the job ended.
    ensure!(restarts(init(&done, "sidecar")) == 0, "sidecar not restarted: {sidecar}");
    ensure!(time(sidecar, "startedAt")? <= time(after, "startedAt")?, "sidecar started before the next init container");
    ensure!(time(after, "finishedAt")? <= time(job, "startedAt")?, "init container done before the job");
    ensure!(time(sidecar, "finishedAt")? >= time(job, "finishedAt")?, "sidecar stopped after the job ended");
    Ok(())
}

fn exited_sidecar_restarts_while_the_app_runs(env: &Env) -> Result<()> {
    // The pod's restartPolicy is Never, yet a sidecar is always restarted.
    let pod = env.wait("sidecar-restart", "restarted its sidecar", |p| restarts(init(p, "sidecar")) >= 2)?;
    ensure!(phase(&pod) == "Running", "phase {}", phase(&pod));
    let app = app(&pod, "app");
    ensure!(app["state"]["running"].is_object() && restarts(app) == 0, "app untouched: {app}");
    Ok(())
}

fn restart_policies(env: &Env) -> Result<()> {
    for (policy, code) in POLICIES {
        let name = format!("restart-{}-{code}", policy.to_lowercase());
        let restarts_expected = policy == "Always" || (policy == "OnFailure" && code != 0);
        let pod = if restarts_expected {
            env.wait(&name, "restarted", |p| restarts(app(p, "c")) >= 1)?
        } else {
            env.wait(&name, "finished", |p| matches!(phase(p), "Succeeded" | "Failed"))?
        };
        let want = match (restarts_expected, code) {
            (true, _) => "Running",
            (false, 0) => "Succeeded",
            (false, _) => "Failed",
        };
        ensure!(phase(&pod) == want, "{name}: phase {} want {want}", phase(&pod));
        if !restarts_expected {
            ensure!(restarts(app(&pod, "c")) == 0, "{name}: not restarted");
            let t = &app(&pod, "c")["state"]["terminated"];
            let reason = if code == 0 { "Completed" } else { "Error" };
            ensure!(t["exitCode"] == code && t["reason"] == reason, "{name}: {t}");
        }
    }
    Ok(())
}

fn termination_messages(env: &Env) -> Result<()> {
    let cases = [
        ("msg-custom-path", "custom message"),
        ("msg-fallback-failed", "DONE\n"),
        ("msg-fallback-succeeded", ""),
        ("msg-fallback-file", "OK"),
    ];
    for (name, want) in cases {
        let pod = env.wait(name, "finished", |p| matches!(phase(p), "Succeeded" | "Failed"))?;
        let t = &app(&pod, "c")["state"]["terminated"];
        let got = t["message"].as_str().unwrap_or_default();
        ensure!(got == want, "{name}: message {got:?}, want {want:?}: {t}");
    }
    Ok(())
}

fn active_deadline_fails_the_pod(env: &Env) -> Result<()> {
    let pod = env.wait("deadline", "Failed", |p| phase(p) == "Failed")?;
    ensure!(pod["status"]["reason"] == "DeadlineExceeded", "{:#}", pod["status"]);
    let started = time(&pod["status"], "startTime")?;
    let c = env.wait("deadline", "with its container stopped", |p| app(p, "c")["state"]["terminated"].is_object())?;
    let finished = time(&app(&c, "c")["state"]["terminated"], "finishedAt")?;
    let active = finished.duration_since(started).as_secs_f64();
    ensure!((5.0..60.0).contains(&active), "container stopped {active} s after start, deadline 5 s");
    let events = env.events("deadline")?;
    ensure!(events.iter().any(|(reason, _)| reason == "DeadlineExceeded"), "events: {events:?}");
    Ok(())
}

fn image_change_restarts_that_container_only(env: &Env) -> Result<()> {
    let pod = env.wait("image-change", "Running", |p| {
        phase(p) == "Running" && app(p, "a")["ready"] == true && app(p, "b")["ready"] == true
    })?;
    let b_id = app(&pod, "b")["containerID"].clone();
    // The same image by digest: a different image reference in the spec.
    let digest = app(&pod, "a")["imageID"].as_str().context("imageID")?.to_string();
    ensure!(digest.contains("@sha256:"), "imageID is a digest reference: {digest}");
    env.cluster.kubectl_ok(&["set", "image", "pod/image-change", &format!("a={digest}")])?;
    let pod = env.wait("image-change", "restarted a", |p| {
        restarts(app(p, "a")) == 1 && app(p, "a")["state"]["running"].is_object()
    })?;
    ensure!(app(&pod, "a")["image"] == digest.as_str(), "a runs the new image: {}", app(&pod, "a"));
    ensure!(restarts(app(&pod, "b")) == 0 && app(&pod, "b")["containerID"] == b_id, "b untouched: {}", app(&pod, "b"));
    let events = env.events("image-change")?;
    let changed =
        events.iter().any(|(r, m)| r == "Killing" && m == "Container a definition changed, will be restarted");
    ensure!(changed, "Killing event: {events:?}");
    Ok(())
}
