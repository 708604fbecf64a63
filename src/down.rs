//! `bosun down` and the teardown both it and `bosun up` run: nothing of the
//! cluster is left, on any path.
//!
//! A live `bosun up` is asked to stop (SIGTERM) and tears down itself. When
//! its `bosun up` was killed (the lock is free but `up.json` is there),
//! `down` does the teardown itself: it stops the daemons the dead `up` left,
//! starts containerd on the cluster's state (which adopts the pods the shims
//! kept running) and removes everything through it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bosun_cri::{ClientOptions, CriClient};
use bosun_stack::{teardown, StackConfig};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::supervise::leftovers::{alive, stop_leftovers};
use crate::supervise::policy::RestartPolicy;
use crate::supervise::{Spec, Supervised};
use crate::up::DownArgs;
use crate::up_state::{lock_dir, proxy_table_of, read_state, running_up, stack_of, state_file};

pub async fn down(args: DownArgs) -> Result<()> {
    let Some(state) = read_state(&args.dir) else {
        println!("bosun is not running (no live `bosun up` for {}).", args.dir.display());
        return Ok(());
    };
    // The lock, not the pid in the state (which the kernel may have reused),
    // tells whether that `bosun up` still lives.
    let Some(_lock) = lock_dir(&args.dir)? else {
        let (pid, _) = running_up(&args.dir).context("bosun up holds its lock but its pid is not in up.json")?;
        return stop_up(pid).await;
    };
    let Some(stack) = stack_of(&state) else {
        println!("bosun is not running (no live `bosun up` for {}).", args.dir.display());
        return Ok(());
    };
    println!("bosun: its bosun up is gone; tearing down what it left");
    stop_leftovers(&args.dir, Duration::from_secs(10)).await;
    remove_cluster(&args.dir, &stack, &proxy_table_of(&state), false, None).await
}

/// SIGTERM to a live `bosun up`, then waits for it to finish its teardown.
async fn stop_up(pid: i32) -> Result<()> {
    kill(Pid::from_raw(pid), Signal::SIGTERM).with_context(|| format!("signalling bosun up (pid {pid})"))?;
    let deadline = Instant::now() + Duration::from_secs(90);
    while alive(pid) {
        if Instant::now() > deadline {
            bail!("bosun up (pid {pid}) did not stop within 90 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("bosun: down");
    Ok(())
}

/// Removes the pods, their volumes, the proxy's nftables table, containerd and its
/// shims, mounts below `dir` and the bridge. The agent must have stopped.
/// `containerd` is started if it is not running: pods are removed through
/// CRI, so that CNI releases their IPs and network namespaces and the shims
/// stop their containers.
pub async fn remove_cluster(
    dir: &Path,
    stack: &StackConfig,
    proxy_table: &str,
    purge: bool,
    containerd: Option<Supervised>,
) -> Result<()> {
    let mut containerd = match containerd {
        Some(containerd) => containerd,
        None => Supervised::start("containerd", Spec::Containerd(stack.clone()), RestartPolicy::RUNTIME).await?,
    };
    if containerd.ensure_running().await.is_none() {
        tracing::error!("containerd does not start: pods cannot be removed through CRI");
    }
    match CriClient::connect(stack.containerd_socket(), ClientOptions::default()).await {
        Ok(cri) => match teardown::remove_all_pods(&cri, Duration::from_secs(10)).await {
            Ok(n) => println!("bosun: removed {n} pod sandbox(es)"),
            Err(err) => tracing::error!("removing pods: {err}"),
        },
        Err(err) => tracing::error!("connecting to containerd for teardown: {err}"),
    }
    // The agent leaves pods (and their volumes) running when it stops; with
    // the pods gone, their volumes' tmpfs mounts and directories go too.
    let agent_root = dir.join("agent");
    let (removed, failures) = tokio::task::spawn_blocking(move || {
        bosun_agent::recovery::pod_dirs::remove_all(&agent_root, &bosun_agent::volumes::NixMounter)
    })
    .await
    .unwrap_or_default();
    for error in &failures {
        tracing::error!("removing pod volumes: {error}");
    }
    tracing::info!(removed, "pod volume directories removed");
    let nft = std::process::Command::new("nft").args(["delete", "table", "ip", proxy_table]).output();
    if let Ok(output) = nft {
        if !output.status.success() && !String::from_utf8_lossy(&output.stderr).contains("No such file") {
            tracing::warn!("removing nftables table {proxy_table}: {}", String::from_utf8_lossy(&output.stderr));
        }
    }
    containerd.stop(Duration::from_secs(10)).await;
    teardown::kill_shims(&stack.containerd_socket());
    // Everything still mounted below the cluster's directory (the runtime's
    // and, had the volume teardown failed, the agent's).
    teardown::unmount_below(dir)?;
    teardown::delete_link(&stack.network.bridge)?;
    if purge {
        for dir in [dir.join("agent"), dir.join("control"), stack.dir.clone()] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let _ = std::fs::remove_file(state_file(dir));
    println!("bosun: down");
    Ok(())
}
