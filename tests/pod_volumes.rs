//! Pod volumes on the real stack (`bosun up`, real kubectl), after the
//! upstream conformance tests in test/e2e/common/storage (configmap_volume,
//! secrets_volume, empty_dir, downwardapi_volume, projected_*, host_path):
//! file contents and modes as the container sees them (the container prints
//! them; the test reads `kubectl logs`), defaultMode/items/optional, a
//! ConfigMap update reaching a running container, an emptyDir shared by two
//! containers, a tmpfs emptyDir, subPath, readOnly, a missing ConfigMap that
//! holds the pod back with a FailedMount Event until it exists, an
//! unsupported volume type, hostPath checks, and nothing left behind
//! (mounts, tmpfs, directories) once the pods are deleted, including the
//! volumes of a pod the agent no longer knows (what an agent restart leaves).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use support::cluster::Cluster;

/// Generous: a loaded 2-core machine running a debug build.
const DEADLINE: Duration = Duration::from_secs(120);

fn wait_for<T>(what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {DEADLINE:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn logs(cluster: &Cluster, pod: &str, container: &str) -> Result<String> {
    let (_, out, _) = cluster.kubectl(&["logs", pod, "-c", container])?;
    Ok(out)
}

/// Waits until the container's log holds every line of `lines`.
fn wait_log_lines(cluster: &Cluster, pod: &str, container: &str, lines: &[&str]) -> Result<String> {
    wait_for(&format!("{pod}/{container} to print {lines:?}"), || {
        let out = logs(cluster, pod, container)?;
        Ok(lines.iter().all(|l| out.lines().any(|o| o == *l)).then_some(out))
    })
    .map_err(|e| e.context(logs(cluster, pod, container).unwrap_or_default()))
}

fn phase(cluster: &Cluster, pod: &str) -> Result<String> {
    let p = cluster.json(&["get", "pod", pod])?;
    Ok(p["status"]["phase"].as_str().unwrap_or_default().to_string())
}

/// Messages of the FailedMount Events of `pod`.
fn failed_mount_events(cluster: &Cluster, pod: &str) -> Result<Vec<String>> {
    let events = cluster.json(&["get", "events"])?;
    Ok(events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == pod && e["reason"] == "FailedMount")
        .filter_map(|e| e["message"].as_str().map(String::from))
        .collect())
}

fn apply(cluster: &Cluster, manifest: &str) -> Result<()> {
    let (ok, out, err) = cluster.apply_stdin(manifest)?;
    ensure!(ok, "kubectl apply failed: {err}{out}\n{manifest}");
    Ok(())
}

/// Mount points (from /proc/self/mountinfo) below `dir`.
fn mounts_under(dir: &Path) -> Result<Vec<String>> {
    let out = std::process::Command::new("findmnt").args(["-rn", "-o", "TARGET"]).output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let dir = dir.display().to_string();
    Ok(text.lines().filter(|l| l.starts_with(&dir)).map(String::from).collect())
}

/// `<root>/pods/<uid>` dirs (log dirs are `<ns>_<name>_<uid>`).
fn pod_volume_dirs(pods: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(pods)? {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().contains('_') {
            out.push(entry.path());
        }
    }
    Ok(out)
}

fn run(cmd: &str, args: &[&str]) -> Result<()> {
    let status = std::process::Command::new(cmd).args(args).status()?;
    ensure!(status.success(), "{cmd} {args:?} failed");
    Ok(())
}

/// A directory bind-mounted onto itself and made shared (the host root is
/// private here), so HostToContainer propagation has a shared source.
/// Unmounted on drop.
struct SharedMount {
    dir: PathBuf,
}

impl SharedMount {
    fn new(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let path = dir.display().to_string();
        run("mount", &["--bind", &path, &path])?;
        let shared = SharedMount { dir };
        run("mount", &["--make-shared", &path])?;
        Ok(shared)
    }

    fn mount_inner_tmpfs_with_file(&self, name: &str) -> Result<()> {
        let inner = self.dir.join("inner");
        std::fs::create_dir_all(&inner)?;
        run("mount", &["-t", "tmpfs", "-o", "size=1m", "tmpfs", &inner.display().to_string()])?;
        std::fs::write(inner.join(name), "x")?;
        Ok(())
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let inner = self.dir.join("inner").display().to_string();
        let _ = std::process::Command::new("umount").arg(&inner).status();
        let _ = std::process::Command::new("umount").arg(self.dir.display().to_string()).status();
    }
}

fn pod_spec(name: &str, image: &str, volumes: &str, containers: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: volumes\n    tier: test\n  annotations:\n    note: hello\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  volumes:\n{volumes}\n  containers:\n{}",
        containers.replace("IMAGE", image)
    )
}

const READER_SCRIPT: &str = r#"
p() { echo "$1=$(cat "$2" 2>&1 | tr '\n' ';')"; }
m() { echo "$1=$(stat -L -c %a "$2" 2>&1)"; }
p CM_DATA1 /cm/data-1; m CM_MODE /cm/data-1
p ITEM /items/path/to/d2; m ITEM_MODE /items/path/to/d2
p SECRET /sec/k; m SECRET_MODE /sec/k
echo "OPT=$(ls /opt-cm | wc -l)"
p NAME /down/name; p LABELS /down/labels; p ANN /down/note; p CPU /down/cpu; p MEM /down/mem
p PROJ_CM /proj/cm; p PROJ_SECRET /proj/secret; p PROJ_NAME /proj/name
grep -q "^eyJ" /proj/token && echo TOKEN=jwt
echo "MEDIUM=$(awk '$2 == "/mem" {print $3}' /proc/mounts)"
echo "RO_CM=$(touch /cm/new 2>&1 | grep -c 'Read-only')"
echo "RO_DIR=$(touch /ro/new 2>&1 | grep -c 'Read-only')"
echo subdata > /sub/f
echo byname > /byname/f
i=0; while [ ! -f /shared/from-writer ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done
p SHARED /shared/from-writer; p SUB /shared/sub/f; p BYNAME /shared/vols/f
echo DONE
while true; do p LIVE /cm/data-1; sleep 1; done
"#;

#[test]
fn pod_volumes_on_the_real_stack() -> Result<()> {
    let cluster = Cluster::start("volumes-node")?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);
    let pods_dir = cluster.dir.join("agent/pods");

    // Volumes of a pod the agent does not know (left by an agent that went
    // down while the pod was deleted): the orphan sweep removes them, tmpfs
    // included.
    let stale = pods_dir.join("00000000-dead-beef-0000-000000000000/volumes/kubernetes.io~empty-dir/cache");
    std::fs::create_dir_all(&stale)?;
    let mounted =
        std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&stale).status()?;
    ensure!(mounted.success(), "mount tmpfs on {}", stale.display());

    cluster.kubectl_ok(&[
        "create",
        "configmap",
        "cm-vol",
        "--from-literal=data-1=value-1",
        "--from-literal=data-2=value-2",
    ])?;
    cluster.kubectl_ok(&["create", "secret", "generic", "sec-vol", "--from-literal=k=secret-value"])?;

    let volumes = r#"    - name: cm
      configMap: { name: cm-vol }
    - name: items
      configMap: { name: cm-vol, items: [{ key: data-2, path: path/to/d2, mode: 0400 }] }
    - name: sec
      secret: { secretName: sec-vol, defaultMode: 0440 }
    - name: opt-cm
      configMap: { name: absent, optional: true }
    - name: down
      downwardAPI:
        items:
          - { path: name, fieldRef: { fieldPath: metadata.name } }
          - { path: labels, fieldRef: { fieldPath: metadata.labels } }
          - { path: note, fieldRef: { fieldPath: "metadata.annotations['note']" } }
          - { path: cpu, resourceFieldRef: { containerName: reader, resource: limits.cpu, divisor: 1m } }
          - { path: mem, resourceFieldRef: { containerName: reader, resource: limits.memory, divisor: 1Mi } }
    - name: proj
      projected:
        sources:
          - configMap: { name: cm-vol, items: [{ key: data-1, path: cm }] }
          - secret: { name: sec-vol, items: [{ key: k, path: secret }] }
          - downwardAPI: { items: [{ path: name, fieldRef: { fieldPath: metadata.name } }] }
          - serviceAccountToken: { path: token }
    - name: mem
      emptyDir: { medium: Memory, sizeLimit: 16Mi }
    - name: ro
      emptyDir: {}
    - name: shared
      emptyDir: {}"#;
    let containers = format!(
        r#"    - name: reader
      image: IMAGE
      command: ["sh", "-c", {script:?}]
      resources: {{ limits: {{ cpu: 250m, memory: 64Mi }} }}
      env: [{{ name: POD_NAME, valueFrom: {{ fieldRef: {{ fieldPath: metadata.name }} }} }}]
      volumeMounts:
        - {{ name: cm, mountPath: /cm }}
        - {{ name: items, mountPath: /items }}
        - {{ name: sec, mountPath: /sec }}
        - {{ name: opt-cm, mountPath: /opt-cm }}
        - {{ name: down, mountPath: /down }}
        - {{ name: proj, mountPath: /proj }}
        - {{ name: mem, mountPath: /mem }}
        - {{ name: ro, mountPath: /ro, readOnly: true }}
        - {{ name: shared, mountPath: /shared }}
        - {{ name: shared, mountPath: /sub, subPath: sub }}
        - {{ name: shared, mountPath: /byname, subPathExpr: $(POD_NAME) }}
    - name: writer
      image: IMAGE
      command: ["sh", "-c", "echo from-writer > /data/from-writer; echo WROTE; exec sleep 3600"]
      volumeMounts:
        - {{ name: shared, mountPath: /data }}"#,
        script = READER_SCRIPT
    );
    apply(&cluster, &pod_spec("vols", &image, volumes, &containers))?;
    let out = wait_log_lines(&cluster, "vols", "reader", &["DONE"])?;
    println!("reader log:\n{out}");
    for line in [
        "CM_DATA1=value-1",
        "CM_MODE=644",
        "ITEM=value-2",
        "ITEM_MODE=400",
        "SECRET=secret-value",
        "SECRET_MODE=440",
        "OPT=0",
        "NAME=vols",
        "LABELS=app=\"volumes\";tier=\"test\"",
        "ANN=hello",
        "CPU=250",
        "MEM=64",
        "PROJ_CM=value-1",
        "PROJ_SECRET=secret-value",
        "PROJ_NAME=vols",
        "TOKEN=jwt",
        "MEDIUM=tmpfs",
        "RO_CM=1",
        "RO_DIR=1",
        "SHARED=from-writer;",
        "SUB=subdata;",
        "BYNAME=byname;",
    ] {
        ensure!(out.lines().any(|l| l == line), "reader printed {line:?}; log:\n{out}");
    }
    // The tmpfs has the sizeLimit as its size (16 MiB = 16384 KiB).
    let tmpfs = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mem_line = tmpfs.lines().find(|l| l.contains("kubernetes.io~empty-dir/mem ")).unwrap_or_default().to_string();
    ensure!(mem_line.contains("size=16384k"), "tmpfs mounted with size=16384k: {mem_line:?}");

    // A ConfigMap update reaches the running container through `..data`.
    cluster.kubectl_ok(&["patch", "configmap", "cm-vol", "-p", r#"{"data":{"data-1":"value-1-updated"}}"#])?;
    let patched = Instant::now();
    wait_log_lines(&cluster, "vols", "reader", &["LIVE=value-1-updated"])?;
    println!("configmap update visible in the container after {:.1?}", patched.elapsed());

    // A missing non-optional ConfigMap holds the pod back with FailedMount
    // Events; once it exists the pod starts.
    let later_volumes = "    - name: later\n      configMap: { name: created-later }";
    let later_containers =
        "    - name: c\n      image: IMAGE\n      command: [\"sh\", \"-c\", \"cat /later/k; echo; exec sleep 3600\"]\n      volumeMounts:\n        - { name: later, mountPath: /later }";
    apply(&cluster, &pod_spec("waits", &image, later_volumes, later_containers))?;
    let events = wait_for("FailedMount for waits", || {
        let events = failed_mount_events(&cluster, "waits")?;
        Ok((!events.is_empty()).then_some(events))
    })?;
    ensure!(events.iter().any(|m| m.contains("configmap \"created-later\" not found")), "events: {events:?}");
    ensure!(phase(&cluster, "waits")? == "Pending", "waits is Pending without its ConfigMap");
    wait_for("waits' status to say why it waits", || {
        let pod = cluster.json(&["get", "pod", "waits"])?;
        let waiting = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
        Ok((waiting["reason"] == "ContainerCreating"
            && waiting["message"].as_str().is_some_and(|m| m.contains("\"created-later\" not found")))
        .then_some(()))
    })?;
    cluster.kubectl_ok(&["create", "configmap", "created-later", "--from-literal=k=arrived"])?;
    let created = Instant::now();
    wait_log_lines(&cluster, "waits", "c", &["arrived"])?;
    println!("pod held by a missing configmap started {:.1?} after it was created", created.elapsed());

    // An unsupported volume type: refused by the node's admission (see
    // tests/pod_spec_rules.rs): Failed with UnsupportedVolume, never started.
    let pvc_volumes = "    - name: data\n      persistentVolumeClaim: { claimName: claim }";
    let pvc_containers = "    - name: c\n      image: IMAGE\n      command: [\"sleep\", \"3600\"]\n      volumeMounts:\n        - { name: data, mountPath: /data }";
    apply(&cluster, &pod_spec("pvc", &image, pvc_volumes, pvc_containers))?;
    let message = wait_for("pvc refused by the node", || {
        let pod = cluster.json(&["get", "pod", "pvc"])?;
        let refused = pod["status"]["phase"] == "Failed" && pod["status"]["reason"] == "UnsupportedVolume";
        Ok(refused.then(|| pod["status"]["message"].as_str().unwrap_or_default().to_string()))
    })?;
    ensure!(message.contains("volume type persistentVolumeClaim is not supported"), "message: {message}");

    // hostPath: DirectoryOrCreate creates the dir, the container writes
    // through it; File on a missing path is refused.
    let host_dir = cluster.dir.join("host/created");
    let host_volumes =
        format!("    - name: h\n      hostPath: {{ path: {}, type: DirectoryOrCreate }}", host_dir.display());
    let host_containers = "    - name: c\n      image: IMAGE\n      command: [\"sh\", \"-c\", \"echo from-pod > /h/out; exec sleep 3600\"]\n      volumeMounts:\n        - { name: h, mountPath: /h }";
    apply(&cluster, &pod_spec("hostpath", &image, &host_volumes, host_containers))?;
    let written = wait_for("hostPath file written by the pod", || {
        Ok(std::fs::read_to_string(host_dir.join("out")).ok().filter(|t| !t.is_empty()))
    })?;
    ensure!(written == "from-pod\n", "host sees the pod's write: {written:?}");
    let missing = cluster.dir.join("host/missing-file");
    let bad_volumes = format!("    - name: h\n      hostPath: {{ path: {}, type: File }}", missing.display());
    apply(&cluster, &pod_spec("hostpath-bad", &image, &bad_volumes, host_containers))?;
    let events = wait_for("FailedMount for hostpath-bad", || {
        let events = failed_mount_events(&cluster, "hostpath-bad")?;
        Ok((!events.is_empty()).then_some(events))
    })?;
    ensure!(events.iter().any(|m| m.contains("is not a file")), "events: {events:?}");

    // mountPropagation HostToContainer: a mount made on the host after the
    // container started shows inside it (the source must be a shared mount).
    let shared = SharedMount::new(cluster.dir.join("host/propagated"))?;
    let prop_volumes = format!("    - name: h\n      hostPath: {{ path: {}, type: Directory }}", shared.dir.display());
    let prop_containers = "    - name: c\n      image: IMAGE\n      command: [\"sh\", \"-c\", \"echo STARTED; while [ ! -f /h/inner/seen ]; do sleep 0.2; done; echo PROPAGATED; exec sleep 3600\"]\n      volumeMounts:\n        - { name: h, mountPath: /h, mountPropagation: HostToContainer }";
    apply(&cluster, &pod_spec("propagation", &image, &prop_volumes, prop_containers))?;
    wait_log_lines(&cluster, "propagation", "c", &["STARTED"])?;
    shared.mount_inner_tmpfs_with_file("seen")?;
    wait_log_lines(&cluster, "propagation", "c", &["PROPAGATED"])?;

    // Deleting the pods leaves no mount, no tmpfs and no volume directory;
    // the stale pod's volumes are gone too (orphan sweep).
    ensure!(!mounts_under(&pods_dir)?.is_empty(), "volumes are mounted before the delete");
    let deleting = Instant::now();
    cluster.kubectl_ok(&["delete", "pods", "--all", "--wait=true", "--timeout=120s"])?;
    wait_for("no volume mounts and dirs left", || {
        let (mounts, dirs) = (mounts_under(&pods_dir)?, pod_volume_dirs(&pods_dir)?);
        Ok((mounts.is_empty() && dirs.is_empty()).then_some(()))
    })
    .map_err(|e| {
        e.context(format!("mounts {:?}, dirs {:?}", mounts_under(&pods_dir).ok(), pod_volume_dirs(&pods_dir).ok()))
    })?;
    println!("pods deleted and their volumes gone after {:.1?}", deleting.elapsed());
    let tmpfs = std::fs::read_to_string("/proc/self/mountinfo")?;
    ensure!(
        !tmpfs.lines().any(|l| l.contains(&pods_dir.display().to_string())),
        "no tmpfs left under {}",
        pods_dir.display()
    );
    Ok(())
}
