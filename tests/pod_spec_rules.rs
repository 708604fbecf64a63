//! Pod spec rules on the real stack (`bosun up`, real kubectl): the
//! apiserver's 422s with upstream field paths, pod spec immutability on
//! update, node refusal (phase Failed, condition and Event), security
//! context, and env as upstream's conformance tests check it
//! (test/e2e/common/node/expansion.go, downwardapi.go, configmap.go and
//! secrets.go, env parts). One cluster for every scenario.

mod support;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use support::cluster::Cluster;

const WAIT: Duration = Duration::from_secs(120);

fn image(cluster: &Cluster) -> String {
    format!("{}/bosun/app:1.0", cluster.registry)
}

/// Waits until `check` returns `Some` for pod `name`'s JSON.
fn wait_pod<T>(cluster: &Cluster, name: &str, what: &str, check: impl Fn(&Value) -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + WAIT;
    loop {
        let pod = cluster.json(&["get", "pod", name])?;
        if let Some(found) = check(&pod) {
            return Ok(found);
        }
        ensure!(Instant::now() < deadline, "pod {name}: {what} not seen within {WAIT:?}: {pod}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn phase(cluster: &Cluster, name: &str, want: &str) -> Result<Value> {
    wait_pod(cluster, name, want, |p| (p["status"]["phase"] == want).then(|| p.clone()))
}

/// The Events about pod `name` as (type, reason, message).
fn events(cluster: &Cluster, name: &str) -> Result<Vec<(String, String, String)>> {
    let list = cluster.json(&["get", "events"])?;
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| (s(&e["type"]), s(&e["reason"]), s(&e["message"])))
        .collect())
}

fn wait_event(cluster: &Cluster, name: &str, reason: &str) -> Result<(String, String, String)> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(e) = events(cluster, name)?.into_iter().find(|e| e.1 == reason) {
            return Ok(e);
        }
        ensure!(Instant::now() < deadline, "no {reason} Event for {name}: {:?}", events(cluster, name)?);
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn apply_refused(cluster: &Cluster, manifest: &str, expected: &[&str]) -> Result<()> {
    let (ok, out, err) = cluster.apply_stdin(manifest)?;
    ensure!(!ok, "apply succeeded: {out}");
    for needle in expected {
        ensure!(err.contains(needle), "{needle:?} not in: {err}");
    }
    Ok(())
}

fn pod_manifest(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: rules\nspec:\n{spec}")
}

fn unprocessable(cluster: &Cluster, image: &str) -> Result<()> {
    let sub_path = pod_manifest(
        "bad-subpath",
        &format!(
            "  volumes:\n  - name: v\n    emptyDir: {{}}\n  containers:\n  - name: c\n    image: {image}\n    volumeMounts:\n    - name: v\n      mountPath: /a\n      subPath: /etc\n    - name: v\n      mountPath: /b\n      subPath: x/../../y\n"
        ),
    );
    apply_refused(
        cluster,
        &sub_path,
        &[
            "is invalid",
            "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"/etc\": must be a relative path",
            "spec.containers[0].volumeMounts[1].subPath: Invalid value: \"x/../../y\": must not contain '..'",
        ],
    )?;
    let ephemeral = pod_manifest(
        "bad-ephemeral",
        &format!("  containers:\n  - name: c\n    image: {image}\n  ephemeralContainers:\n  - name: debug\n    image: {image}\n"),
    );
    apply_refused(cluster, &ephemeral, &["spec.ephemeralContainers: Forbidden: cannot be set on create"])?;
    let env_ref = pod_manifest(
        "bad-env",
        &format!(
            "  containers:\n  - name: c\n    image: {image}\n    env:\n    - name: PHASE\n      valueFrom:\n        fieldRef:\n          fieldPath: status.phase\n    - name: GPU\n      valueFrom:\n        resourceFieldRef:\n          resource: limits.gpu\n"
        ),
    );
    apply_refused(
        cluster,
        &env_ref,
        &[
            "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"status.phase\"",
            "spec.containers[0].env[1].valueFrom.resourceFieldRef.resource: Unsupported value: \"limits.gpu\"",
        ],
    )?;
    let duplicate = pod_manifest(
        "bad-names",
        &format!("  initContainers:\n  - name: c\n    image: {image}\n  containers:\n  - name: c\n    image: {image}\n    restartPolicy: Always\n"),
    );
    apply_refused(
        cluster,
        &duplicate,
        &[
            "spec.containers[0].name: Duplicate value: \"c\"",
            "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
        ],
    )?;
    for name in ["bad-subpath", "bad-ephemeral", "bad-env", "bad-names"] {
        let (found, _, _) = cluster.kubectl(&["get", "pod", name])?;
        ensure!(!found, "refused pod {name} was stored");
    }
    Ok(())
}

fn node_refusal(cluster: &Cluster, image: &str) -> Result<()> {
    let nfs = pod_manifest(
        "nfs-pod",
        &format!(
            "  volumes:\n  - name: data\n    nfs:\n      server: 192.0.2.1\n      path: /export\n  containers:\n  - name: c\n    image: {image}\n    volumeMounts:\n    - name: data\n      mountPath: /data\n"
        ),
    );
    let sysctl = pod_manifest(
        "sysctl-pod",
        &format!(
            "  securityContext:\n    sysctls:\n    - name: kernel.msgmax\n      value: \"65536\"\n  containers:\n  - name: c\n    image: {image}\n"
        ),
    );
    cluster.apply_stdin(&nfs).and_then(|(ok, out, err)| {
        ensure!(ok, "nfs pod accepted by the apiserver: {out}{err}");
        Ok(())
    })?;
    cluster.apply_stdin(&sysctl).and_then(|(ok, out, err)| {
        ensure!(ok, "sysctl pod accepted by the apiserver: {out}{err}");
        Ok(())
    })?;
    for (name, reason, needle) in [
        ("nfs-pod", "UnsupportedVolume", "volume type nfs is not supported by this node"),
        ("sysctl-pod", "SysctlForbidden", "forbidden sysctl: \"kernel.msgmax\" not allowlisted"),
    ] {
        let pod = phase(cluster, name, "Failed")?;
        ensure!(pod["status"]["reason"] == reason, "{name} reason: {}", pod["status"]);
        let message = pod["status"]["message"].as_str().unwrap_or_default();
        ensure!(message.starts_with("Pod was rejected: ") && message.contains(needle), "{name}: {message}");
        let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let ready = conditions.iter().find(|c| c["type"] == "Ready").context("Ready condition")?;
        ensure!(ready["status"] == "False" && ready["reason"] == reason, "{name} Ready: {ready}");
        ensure!(pod["status"]["containerStatuses"].is_null(), "{name} never started a container: {}", pod["status"]);
        let (type_, _, message) = wait_event(cluster, name, reason)?;
        ensure!(type_ == "Warning" && message.contains(needle), "{name} event: {type_} {message}");
        let described = cluster.kubectl_ok(&["describe", "pod", name])?;
        ensure!(described.contains(reason), "describe shows the reason:\n{described}");
    }
    Ok(())
}

const ENV_SCRIPT: &str = "env | sort; echo \"cmd=$1 $2\"; id -u";

fn env_and_security(cluster: &Cluster, image: &str) -> Result<()> {
    cluster.kubectl_ok(&["create", "configmap", "cfg", "--from-literal=data-1=value-1", "--from-literal=1bad=x"])?;
    cluster.kubectl_ok(&["create", "secret", "generic", "sec", "--from-literal=data-1=secret-1"])?;
    let spec = format!(
        r#"  restartPolicy: Never
  securityContext:
    runAsUser: 1234
  containers:
  - name: c
    image: {image}
    command: ["sh", "-c", '{ENV_SCRIPT}', "sh", "$(FOO)", "$$(FOO)"]
    resources:
      requests: {{cpu: 250m, memory: 32Mi}}
      limits: {{cpu: 1250m, memory: 64Mi}}
    env:
    - {{name: FOO, value: foo-value}}
    - {{name: BAR, value: bar-value}}
    - {{name: FOOBAR, value: "$(FOO);;$(BAR)"}}
    - {{name: ESCAPED, value: "$$(FOO)"}}
    - {{name: UNKNOWN, value: "$(NOPE)"}}
    - name: CONFIG_DATA_1
      valueFrom: {{configMapKeyRef: {{name: cfg, key: data-1}}}}
    - name: SECRET_DATA
      valueFrom: {{secretKeyRef: {{name: sec, key: data-1}}}}
    - name: OPTIONAL_MISSING
      valueFrom: {{configMapKeyRef: {{name: nothere, key: k, optional: true}}}}
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    - name: POD_NAMESPACE
      valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}
    - name: POD_UID
      valueFrom: {{fieldRef: {{fieldPath: metadata.uid}}}}
    - name: POD_LABEL
      valueFrom: {{fieldRef: {{fieldPath: "metadata.labels['app']"}}}}
    - name: NODE_NAME
      valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}
    - name: POD_IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
    - name: HOST_IP
      valueFrom: {{fieldRef: {{fieldPath: status.hostIP}}}}
    - name: CPU_LIMIT
      valueFrom: {{resourceFieldRef: {{resource: limits.cpu}}}}
    - name: CPU_REQUEST_M
      valueFrom: {{resourceFieldRef: {{resource: requests.cpu, divisor: 1m}}}}
    - name: MEMORY_LIMIT_MI
      valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}
    - name: MEMORY_REQUEST
      valueFrom: {{resourceFieldRef: {{resource: requests.memory}}}}
  - name: plain
    image: {image}
    command: ["env"]
    envFrom:
    - configMapRef: {{name: cfg}}
    - configMapRef: {{name: cfg}}
      prefix: p-
    - secretRef: {{name: sec}}
      prefix: s-
    env:
    - name: CPU_LIMIT
      valueFrom: {{resourceFieldRef: {{resource: limits.cpu}}}}
    - name: MEMORY_LIMIT
      valueFrom: {{resourceFieldRef: {{resource: limits.memory}}}}
"#
    );
    let (ok, out, err) = cluster.apply_stdin(&pod_manifest("env-pod", &spec))?;
    ensure!(ok, "env pod: {out}{err}");
    let pod = phase(cluster, "env-pod", "Succeeded")?;
    let logs = cluster.kubectl_ok(&["logs", "env-pod", "-c", "c"])?;
    let node = cluster.json(&["get", "node"])?;
    let node = &node["items"][0];
    let node_name = node["metadata"]["name"].as_str().unwrap_or_default();
    let lines: Vec<&str> = logs.lines().collect();
    let mut expected = vec![
        "FOO=foo-value".to_string(),
        "FOOBAR=foo-value;;bar-value".into(),
        "ESCAPED=$(FOO)".into(),
        "UNKNOWN=$(NOPE)".into(),
        "CONFIG_DATA_1=value-1".into(),
        "SECRET_DATA=secret-1".into(),
        "POD_NAME=env-pod".into(),
        "POD_NAMESPACE=default".into(),
        "POD_LABEL=rules".into(),
        format!("POD_UID={}", pod["metadata"]["uid"].as_str().unwrap_or_default()),
        format!("NODE_NAME={node_name}"),
        format!("HOST_IP={}", pod["status"]["hostIP"].as_str().unwrap_or_default()),
        "CPU_LIMIT=2".into(),
        "CPU_REQUEST_M=250".into(),
        "MEMORY_LIMIT_MI=64".into(),
        "MEMORY_REQUEST=33554432".into(),
        "cmd=foo-value $(FOO)".into(),
        "1234".into(),
    ];
    // The pod IP is the sandbox's; the pod status may drop it once the pod is done.
    expected.extend(pod["status"]["podIP"].as_str().map(|ip| format!("POD_IP={ip}")));
    for line in &expected {
        ensure!(lines.contains(&line.as_str()), "{line:?} not in the logs:\n{logs}");
    }
    ensure!(lines.iter().any(|l| l.starts_with("POD_IP=") && l.len() > "POD_IP=".len()), "POD_IP set:\n{logs}");
    ensure!(!logs.contains("OPTIONAL_MISSING="), "an optional missing key sets nothing:\n{logs}");
    // envFrom with prefixes (read by `env` itself: the shell drops names
    // with '-'), and unset limits read as node allocatable.
    let plain = cluster.kubectl_ok(&["logs", "env-pod", "-c", "plain"])?;
    for line in ["data-1=value-1", "p-data-1=value-1", "p-1bad=x", "s-data-1=secret-1"] {
        ensure!(plain.lines().any(|l| l == line), "{line:?} not in:\n{plain}");
    }
    ensure!(!plain.lines().any(|l| l.starts_with("1bad=")), "invalid keys are skipped:\n{plain}");
    let cpus = node["status"]["allocatable"]["cpu"].as_str().unwrap_or_default();
    let memory_kib: i64 =
        node["status"]["allocatable"]["memory"].as_str().unwrap_or_default().trim_end_matches("Ki").parse()?;
    for line in [format!("CPU_LIMIT={cpus}"), format!("MEMORY_LIMIT={}", memory_kib * 1024)] {
        ensure!(plain.lines().any(|l| l == line), "{line:?} not in:\n{plain}");
    }
    let (type_, _, message) = wait_event(cluster, "env-pod", "InvalidEnvironmentVariableNames")?;
    ensure!(
        type_ == "Warning" && message.contains("Keys [1bad] from the EnvFrom configMap default/cfg were skipped"),
        "{message}"
    );
    Ok(())
}

fn waits_for_config(cluster: &Cluster, image: &str) -> Result<()> {
    let spec = format!(
        "  restartPolicy: Never\n  containers:\n  - name: c\n    image: {image}\n    command: [\"sh\", \"-c\", \"echo LATE=$LATE\"]\n    env:\n    - name: LATE\n      valueFrom:\n        configMapKeyRef:\n          name: late\n          key: k\n"
    );
    let (ok, out, err) = cluster.apply_stdin(&pod_manifest("late-pod", &spec))?;
    ensure!(ok, "late pod: {out}{err}");
    let message = wait_pod(cluster, "late-pod", "CreateContainerConfigError", |p| {
        let waiting = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        (waiting["reason"] == "CreateContainerConfigError")
            .then(|| waiting["message"].as_str().unwrap_or_default().to_string())
    })?;
    ensure!(message.contains("configmap \"late\" not found"), "waiting message: {message}");
    let pod = cluster.json(&["get", "pod", "late-pod"])?;
    ensure!(pod["status"]["phase"] == "Pending", "the pod waits: {}", pod["status"]);
    wait_event(cluster, "late-pod", "Failed")?;
    cluster.kubectl_ok(&["create", "configmap", "late", "--from-literal=k=arrived"])?;
    phase(cluster, "late-pod", "Succeeded")?;
    let logs = cluster.kubectl_ok(&["logs", "late-pod"])?;
    ensure!(logs.trim() == "LATE=arrived", "logs: {logs}");
    // runAsNonRoot with an image that runs as root: refused per container.
    let spec = format!(
        "  securityContext:\n    runAsNonRoot: true\n  containers:\n  - name: c\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n"
    );
    let (ok, out, err) = cluster.apply_stdin(&pod_manifest("root-pod", &spec))?;
    ensure!(ok, "root pod: {out}{err}");
    let message = wait_pod(cluster, "root-pod", "runAsNonRoot refusal", |p| {
        let waiting = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        (waiting["reason"] == "CreateContainerConfigError")
            .then(|| waiting["message"].as_str().unwrap_or_default().to_string())
    })?;
    ensure!(message.contains("container has runAsNonRoot and image will run as root"), "{message}");
    Ok(())
}

fn immutability(cluster: &Cluster) -> Result<()> {
    let patch = |body: &str| cluster.kubectl(&["patch", "pod", "env-pod", "-p", body]);
    let (ok, _, err) = patch(r#"{"spec":{"restartPolicy":"Always"}}"#)?;
    ensure!(!ok, "restartPolicy changed");
    ensure!(
        err.contains("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations)"),
        "{err}"
    );
    let (ok, _, err) = patch(r#"{"spec":{"nodeName":"elsewhere"}}"#)?;
    ensure!(!ok && err.contains("spec: Forbidden: pod updates may not change fields other than"), "nodeName: {err}");
    let (ok, out, err) = patch(r#"{"spec":{"activeDeadlineSeconds":100000}}"#)?;
    ensure!(ok, "set activeDeadlineSeconds: {out}{err}");
    let (ok, out, err) = patch(r#"{"spec":{"activeDeadlineSeconds":90000}}"#)?;
    ensure!(ok, "shorten activeDeadlineSeconds: {out}{err}");
    let (ok, _, err) = patch(r#"{"spec":{"activeDeadlineSeconds":95000}}"#)?;
    ensure!(
        !ok && err
            .contains("spec.activeDeadlineSeconds: Invalid value: 95000: must be less than or equal to previous value"),
        "lengthen: {err}"
    );
    // The pod has the default not-ready/unreachable tolerations from
    // admission, and tolerations have no merge key: add one with a JSON
    // patch (a list in a merge patch would replace, i.e. remove, them).
    let add =
        r#"[{"op":"add","path":"/spec/tolerations/-","value":{"key":"k","operator":"Exists","effect":"NoSchedule"}}]"#;
    let (ok, out, err) = cluster.kubectl(&["patch", "pod", "env-pod", "--type=json", "-p", add])?;
    ensure!(ok, "add toleration: {out}{err}");
    let (ok, _, err) = patch(r#"{"spec":{"tolerations":[{"key":"k","operator":"Exists","effect":"NoSchedule"}]}}"#)?;
    ensure!(!ok && err.contains("only additions to existing tolerations"), "removing tolerations: {err}");
    let (ok, out, err) = patch(r#"{"metadata":{"labels":{"extra":"yes"}}}"#)?;
    ensure!(ok, "labels: {out}{err}");
    // A whole-object replace that changes a container's command.
    let mut pod = cluster.json(&["get", "pod", "env-pod"])?;
    pod["spec"]["containers"][0]["command"] = serde_json::json!(["sh", "-c", "true"]);
    let path = cluster.dir.join("env-pod.json");
    std::fs::write(&path, serde_json::to_vec(&pod)?)?;
    let (ok, _, err) = cluster.kubectl(&["replace", "-f", &path.display().to_string()])?;
    ensure!(!ok && err.contains("pod updates may not change fields other than"), "replace: {err}");
    let pod = cluster.json(&["get", "pod", "env-pod"])?;
    ensure!(pod["spec"]["activeDeadlineSeconds"] == 90000, "stored: {}", pod["spec"]);
    ensure!(pod["spec"]["restartPolicy"] == "Never", "stored: {}", pod["spec"]);
    Ok(())
}

#[test]
fn pod_spec_rules_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start("rules-node")?;
    let image = image(&cluster);
    unprocessable(&cluster, &image).context("422s")?;
    node_refusal(&cluster, &image).context("node refusal")?;
    env_and_security(&cluster, &image).context("env")?;
    waits_for_config(&cluster, &image).context("missing config")?;
    immutability(&cluster).context("immutability")?;
    Ok(())
}
