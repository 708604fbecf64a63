//! Container logs on the real stack (`bosun up`, real kubectl): `--tail`,
//! `--limit-bytes`, `--since`/`--since-time`, `--timestamps`, `--previous`,
//! and `--tail=1` on a 500 MiB log answering from the end of the file
//! (printed measurement); `logs -f` across log rotations done by the
//! agent's rotation against the real containerd.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use support::cluster::Cluster;
use support::kubelet::Kubelet;
use support::wait::{wait_until, WAIT};

fn image(cluster: &Cluster) -> String {
    format!("{}/bosun/app:1.0", cluster.registry)
}

fn apply_pod(cluster: &Cluster, name: &str, script: &str) -> Result<()> {
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  volumes:\n  - name: d\n    emptyDir: {{}}\n  containers:\n  - name: c\n    image: {}\n    command: [\"sh\", \"-c\", {script:?}]\n    volumeMounts:\n    - {{ name: d, mountPath: /d }}\n",
        image(cluster)
    );
    let (ok, _, err) = cluster.apply_stdin(&manifest)?;
    ensure!(ok, "apply {name}: {err}");
    Ok(())
}

fn logs(cluster: &Cluster, args: &[&str]) -> Result<String> {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    cluster.kubectl_ok(&all)
}

/// The log file of attempt `attempt` of container `c` of pod `name`.
fn log_path(cluster: &Cluster, name: &str, attempt: u32) -> Result<PathBuf> {
    let pod: Value = cluster.json(&["get", "pod", name])?;
    let uid = pod["metadata"]["uid"].as_str().context("uid")?;
    Ok(cluster.dir.join("agent/pods").join(format!("default_{name}_{uid}")).join(format!("c/{attempt}.log")))
}

/// Restarted once: attempt 0 prints run-1, attempt 1 prints run-2 and stays.
fn since_timestamps_previous(cluster: &Cluster) -> Result<()> {
    let script = "n=$(cat /d/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /d/n; \
                  echo run-$n; echo a-$n; echo b-$n; [ $n -ge 2 ] && exec sleep 3600; exit 3";
    apply_pod(cluster, "relog", script)?;
    wait_until("relog attempt 1 printing", || {
        let (_, out, _) = cluster.kubectl(&["logs", "relog"])?;
        Ok(out.contains("b-2").then_some(()))
    })?;
    ensure!(logs(cluster, &["relog"])? == "run-2\na-2\nb-2\n");
    ensure!(logs(cluster, &["relog", "--previous"])? == "run-1\na-1\nb-1\n");
    ensure!(logs(cluster, &["relog", "--previous", "--tail=1"])? == "b-1\n");
    ensure!(logs(cluster, &["relog", "--tail=2"])? == "a-2\nb-2\n");
    ensure!(logs(cluster, &["relog", "--tail=0"])?.is_empty());
    ensure!(logs(cluster, &["relog", "--limit-bytes=8"])? == "run-2\na-");
    ensure!(logs(cluster, &["relog", "--tail=2", "--limit-bytes=3"])? == "a-2");
    ensure!(logs(cluster, &["relog", "--since=1h"])? == "run-2\na-2\nb-2\n");
    let stamped = logs(cluster, &["relog", "--timestamps"])?;
    let lines: Vec<(&str, &str)> = stamped.lines().filter_map(|l| l.split_once(' ')).collect();
    ensure!(lines.iter().map(|(_, text)| *text).collect::<Vec<_>>() == ["run-2", "a-2", "b-2"], "{stamped}");
    for (stamp, _) in &lines {
        stamp.parse::<jiff::Timestamp>().with_context(|| format!("timestamp {stamp:?}"))?;
    }
    // kubectl sends --since-time in whole seconds: the lines from the
    // second line's second on.
    let since = logs(cluster, &["relog", &format!("--since-time={}", lines[1].0)])?;
    let second = |stamp: &str| stamp.parse::<jiff::Timestamp>().map(|t| t.as_second()).unwrap_or_default();
    let want: String =
        lines.iter().filter(|(s, _)| second(s) >= second(lines[1].0)).map(|(_, text)| format!("{text}\n")).collect();
    ensure!(since == want && since.ends_with("a-2\nb-2\n"), "since-time {}: {since:?}", lines[1].0);
    let future = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600)).to_string();
    ensure!(logs(cluster, &["relog", &format!("--since-time={future}")])?.is_empty());
    Ok(())
}

/// One GET to the node's kubelet API as the admin: the body and how long
/// it took (a curl process and a TLS handshake included).
fn kubelet_get(cluster: &Cluster, path: &str) -> Result<(String, Duration)> {
    let kubelet = Kubelet::of(cluster, "logs-node")?;
    let started = Instant::now();
    let body = kubelet.get(path)?;
    Ok((body, started.elapsed()))
}

/// Appends 500 MiB of CRI lines to a quiet container's log and times
/// `--tail=1` (which must not read the file).
fn tail_of_a_big_log(cluster: &Cluster) -> Result<()> {
    apply_pod(cluster, "quiet", "echo first; exec sleep 3600")?;
    wait_until("quiet printing", || {
        let (_, out, _) = cluster.kubectl(&["logs", "quiet"])?;
        Ok((out == "first\n").then_some(()))
    })?;
    let path = log_path(cluster, "quiet", 0)?;
    let line = format!("2026-12-02T10:00:00.000000000Z stdout F {}\n", "x".repeat(200));
    let block = line.repeat((1 << 20) / line.len());
    let mut file = std::fs::OpenOptions::new().append(true).open(&path)?;
    while file.metadata()?.len() < 500 << 20 {
        file.write_all(block.as_bytes())?;
    }
    file.write_all(b"2026-12-02T10:00:01.000000000Z stdout P the last \n")?;
    file.write_all(b"2026-12-02T10:00:01.000000000Z stdout F line\n")?;
    file.sync_all()?;
    let size = file.metadata()?.len();
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let out = logs(cluster, &["quiet", "--tail=1"])?;
        best = best.min(started.elapsed());
        ensure!(out == "the last line\n", "{out:?}");
    }
    let started = Instant::now();
    let raw = cluster.kubectl_ok(&["get", "--raw", "/api/v1/namespaces/default/pods/quiet/log?tailLines=1"])?;
    let raw_took = started.elapsed();
    ensure!(raw == "the last line\n", "{raw:?}");
    let (direct, direct_took) = kubelet_get(cluster, "/containerLogs/default/quiet/c?tailLines=1")?;
    ensure!(direct == "the last line\n", "{direct:?}");
    let limited = logs(cluster, &["quiet", "--limit-bytes=6"])?;
    ensure!(limited == "first\n", "{limited:?}");
    println!(
        "MEASURE logs --tail=1 on a {} MiB log: kubelet API GET {} ms, kubectl logs best of 3 {} ms, kubectl get --raw {} ms",
        size >> 20,
        direct_took.as_millis(),
        best.as_millis(),
        raw_took.as_millis()
    );
    ensure!(direct_took < Duration::from_secs(1), "kubelet API --tail=1 took {direct_took:?}");
    // Reading the file would take seconds even from the page cache.
    ensure!(best < Duration::from_secs(3), "--tail=1 took {best:?}");
    cluster.kubectl_ok(&["delete", "pod", "quiet", "--grace-period=0"])?;
    Ok(())
}

/// Rotates the ticker's log with the agent's rotation against the real
/// containerd (limits 1 byte, 2 files) while `kubectl logs -f` runs.
fn rotate_now(cluster: &Cluster, id: &str, path: &std::path::Path) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let cri = bosun_cri::CriClient::connect(cluster.cri_socket(), bosun_cri::ClientOptions::default()).await?;
        let limits = bosun_agent::log_rotation::Limits { max_size: 1, max_files: 2 };
        bosun_agent::log_rotation::rotate(&cri, id, path, limits).await?;
        anyhow::Ok(())
    })
}

fn rotated_files(path: &std::path::Path) -> Result<Vec<String>> {
    let name = format!("{}.", path.file_name().and_then(|n| n.to_str()).context("name")?);
    let dir = path.parent().context("dir")?;
    let mut found: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with(&name))
        .collect();
    found.sort();
    Ok(found)
}

/// `kubectl logs -f` keeps every line, in order, across two rotations; the
/// second rotation deletes the first rotated file (max 2 files).
fn follow_across_rotation(cluster: &Cluster) -> Result<()> {
    apply_pod(cluster, "ticker", "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.05; done")?;
    wait_until("ticker printing", || {
        let (_, out, _) = cluster.kubectl(&["logs", "ticker", "--tail=1"])?;
        Ok(out.starts_with("tick-").then_some(()))
    })?;
    let pod: Value = cluster.json(&["get", "pod", "ticker"])?;
    let id = pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .and_then(|s| s.strip_prefix("containerd://"))
        .context("container id")?
        .to_string();
    let path = log_path(cluster, "ticker", 0)?;
    let mut follower = std::process::Command::new("kubectl")
        .env("KUBECONFIG", &cluster.kubeconfig)
        .args(["logs", "-f", "ticker"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = follower.stdout.take().context("follower stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen: Vec<u64> = Vec::new();
    let mut read_until = |count: usize| -> Result<u64> {
        let deadline = Instant::now() + WAIT;
        while seen.len() < count {
            let line =
                rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).context("follower stalled")?;
            let n: u64 = line.strip_prefix("tick-").and_then(|n| n.parse().ok()).context(line.clone())?;
            if let Some(last) = seen.last() {
                ensure!(n == last + 1, "tick-{n} after tick-{last}: a line was lost or repeated");
            }
            seen.push(n);
        }
        Ok(*seen.last().unwrap_or(&0))
    };
    read_until(10)?;
    rotate_now(cluster, &id, &path)?;
    let first = rotated_files(&path)?;
    ensure!(first.len() == 1 && path.exists(), "one rotated file and a new current one: {first:?}");
    let after_first = read_until(40)?;
    rotate_now(cluster, &id, &path)?;
    let second = rotated_files(&path)?;
    ensure!(second.len() == 1 && second != first, "the older rotated file is deleted: {first:?} then {second:?}");
    let last = read_until(80)?;
    let _ = follower.kill();
    let _ = follower.wait();
    let current = std::fs::read_to_string(&path)?;
    ensure!(current.lines().next().is_some_and(|l| l.contains(" stdout ")), "the new file is CRI log: {current:?}");
    println!("logs -f followed tick-{} .. tick-{last} across two rotations (first after tick-{after_first})", seen[0]);
    cluster.kubectl_ok(&["delete", "pod", "ticker", "--grace-period=0"])?;
    Ok(())
}

#[test]
fn container_logs() -> Result<()> {
    let cluster = Cluster::start("logs-node")?;
    tail_of_a_big_log(&cluster)?;
    since_timestamps_previous(&cluster)?;
    follow_across_rotation(&cluster)?;
    Ok(())
}
