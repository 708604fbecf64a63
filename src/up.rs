//! `bosun up` / `bosun down`: a one-node cluster on this machine.
//!
//! `up` starts, as separate processes so the planes fail independently: the
//! loopback registry (with bosun's images pushed), our own containerd,
//! `bosun control` and `bosun agent`. It supervises them (a crashed control
//! plane or agent is restarted; running pods are not touched by that), writes
//! a kubeconfig and a state file, and on Ctrl-C or `bosun down` removes what
//! it created: pods, their volumes (tmpfs mounts included), the nftables
//! table, the bridge, mounts. Pods' logs are kept unless `--purge`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bosun_control::supervisor::Backoff;
use bosun_cri::{ClientOptions, CriClient};
use bosun_images::ImageSource;
use bosun_stack::process::{http_ok, Daemon};
use bosun_stack::{teardown, CniNetwork, Containerd, Registry, StackConfig};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio_util::sync::CancellationToken;

/// The nftables table the agent's proxy programs (bosun-netproxy's default).
const PROXY_TABLE: &str = "bosun";

#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Everything bosun up creates lives here.
    #[arg(long, default_value = "/var/lib/bosun")]
    pub dir: PathBuf,
    /// Loopback registry address.
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub registry: String,
    /// One more argument for `bosun agent` (repeatable), e.g.
    /// `--agent-arg=--eviction-hard=memory.available<500Mi`.
    #[arg(long, allow_hyphen_values = true)]
    pub agent_arg: Vec<String>,
    /// Another registry containerd may pull from over plain HTTP
    /// (`host:port`; repeatable), e.g. a private one that needs imagePullSecrets.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    /// apiserver address (plain HTTP, loopback).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: String,
    #[arg(long, default_value = "10.244.0.0/24")]
    pub pod_cidr: String,
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    #[arg(long, default_value = "10.96.0.0/16")]
    pub service_cidr: String,
    /// Pod bridge name.
    #[arg(long, default_value = "bosun0")]
    pub bridge: String,
    /// Node name (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Our static pause binary (`make pause` builds it).
    #[arg(long, env = "BOSUN_PAUSE_BINARY")]
    pub pause_binary: Option<PathBuf>,
    #[arg(long, default_value = "/bin/busybox")]
    pub busybox: PathBuf,
    /// The resolver file the agent's cluster DNS forwards to and
    /// dnsPolicy Default pods get (the agent's --resolv-conf).
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: String,
    /// On shutdown also remove pods' data dirs (logs) and the store.
    #[arg(long)]
    pub purge: bool,
    /// A KubeletConfiguration file for the agent (passed as its `--config`).
    #[arg(long)]
    pub kubelet_config: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DownArgs {
    #[arg(long, default_value = "/var/lib/bosun")]
    pub dir: PathBuf,
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("up.json")
}

/// The pid of a running `bosun up` for `dir`, if any.
fn running_up(dir: &Path) -> Option<(i32, serde_json::Value)> {
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(state_file(dir)).ok()?).ok()?;
    let pid = state["pid"].as_i64()? as i32;
    (pid != std::process::id() as i32 && alive(pid)).then_some((pid, state))
}

/// True if process `pid` exists and has not exited (a zombie, not yet reaped
/// by its parent, has exited).
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) S ...`: the state follows the last ')'.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()).is_some_and(|state| state != 'Z')
}

fn print_usage(kubeconfig: &Path, node: &str, logs: &Path) {
    println!("bosun is up: a one-node cluster with node {node:?}.");
    println!("  kubeconfig: {}", kubeconfig.display());
    println!("  use it:     export KUBECONFIG={}; kubectl get nodes", kubeconfig.display());
    println!("  logs:       {}/{{registry,containerd,control,agent}}.log", logs.display());
    println!("Stop it with Ctrl-C here or `bosun down`.");
}

fn default_pause_binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/x86_64-unknown-linux-gnu/release/pause")
}

fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "bosun-node".into())
}

pub async fn up(args: UpArgs, token: CancellationToken) -> Result<()> {
    if let Some((pid, state)) = running_up(&args.dir) {
        println!("bosun is already up (pid {pid}); nothing to do.");
        let kubeconfig = PathBuf::from(state["kubeconfig"].as_str().unwrap_or_default());
        print_usage(&kubeconfig, state["node"].as_str().unwrap_or_default(), &args.dir.join("logs"));
        return Ok(());
    }
    for tool in ["containerd", "docker-registry", "skopeo", "nft", "ip", "runc"] {
        if which(tool).is_none() {
            bail!("{tool} is not installed: run `make setup` (scripts/setup.sh) first");
        }
    }
    let pause_binary = args.pause_binary.clone().unwrap_or_else(default_pause_binary);
    if !pause_binary.exists() {
        bail!("pause binary {} is missing: run `make pause`", pause_binary.display());
    }
    let node = args.node_name.clone().unwrap_or_else(hostname);
    let logs = args.dir.join("logs");
    let kubeconfig = args.dir.join("kubeconfig");
    let stack = StackConfig {
        dir: args.dir.join("stack"),
        registry: args.registry.clone(),
        insecure_registries: args.insecure_registries.clone(),
        network: CniNetwork { bridge: args.bridge.clone(), subnet: args.pod_cidr.clone() },
        cni_bin_dir: "/usr/lib/cni".into(),
    };
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    std::fs::write(
        state_file(&args.dir),
        serde_json::json!({"pid": std::process::id(), "kubeconfig": kubeconfig, "node": node}).to_string(),
    )?;

    let started = Instant::now();
    let registry = Registry::start(&stack).await?;
    registry
        .publish_images(ImageSource { pause_binary, busybox: args.busybox.clone() }, &args.dir.join("images"))
        .await?;
    let containerd = Containerd::start(&stack).await?;
    let exe = std::env::current_exe().context("locating the bosun binary")?;
    let control_args = vec![
        "control".to_string(),
        "--data-dir".into(),
        args.dir.join("control").display().to_string(),
        "--listen".into(),
        args.listen.clone(),
        "--service-cidr".into(),
        args.service_cidr.clone(),
        "--kubeconfig-out".into(),
        kubeconfig.display().to_string(),
    ];
    // The agent's cluster DNS listens on the pod bridge's gateway; pods get
    // it as their nameserver (kubelet's --cluster-dns).
    let cluster_dns = bosun_agent::cluster_dns::gateway_of(&args.pod_cidr)
        .with_context(|| format!("no cluster DNS address in --pod-cidr {:?}", args.pod_cidr))?;
    let mut agent_args = vec![
        "agent".to_string(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "--node-name".into(),
        node.clone(),
        "--cri-socket".into(),
        containerd.socket().display().to_string(),
        "--root-dir".into(),
        args.dir.join("agent").display().to_string(),
        "--pod-cidr".into(),
        args.pod_cidr.clone(),
        "--cluster-cidr".into(),
        args.cluster_cidr.clone(),
        "--service-cidr".into(),
        args.service_cidr.clone(),
        "--kubelet-port".into(),
        args.kubelet_port.to_string(),
        "--cluster-dns".into(),
        cluster_dns.to_string(),
        "--resolv-conf".into(),
        args.resolv_conf.clone(),
        // Static pods, as kubeadm's /etc/kubernetes/manifests.
        "--pod-manifest-path".into(),
        args.dir.join("manifests").display().to_string(),
        // Image GC never removes the sandbox image.
        "--pod-infra-container-image".into(),
        stack.sandbox_image(),
    ];
    if let Some(config) = &args.kubelet_config {
        let config = std::fs::canonicalize(config).with_context(|| format!("kubelet config {}", config.display()))?;
        agent_args.extend(["--config".to_string(), config.display().to_string()]);
    }
    let agent_args: Vec<String> = agent_args.into_iter().chain(args.agent_arg.iter().cloned()).collect();
    let exe_str = exe.display().to_string();
    let mut control = Supervised::new("control", &exe_str, control_args, logs.join("control.log"));
    control.start()?;
    wait_http(&args.listen, "/readyz", Duration::from_secs(30), &mut control).await?;
    let mut agent = Supervised::new("agent", &exe_str, agent_args, logs.join("agent.log"));
    agent.start()?;
    tracing::info!(elapsed = ?started.elapsed(), "cluster up");
    print_usage(&kubeconfig, &node, &logs);

    let mut containerd = containerd;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !token.is_cancelled() {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => {
                control.keep_running();
                agent.keep_running();
                if let Err(err) = containerd.check_running() {
                    tracing::error!("{err}");
                    break;
                }
            }
        }
    }
    shutdown(&args, &stack, registry, containerd, control, agent).await
}

/// Restart delays of a crashed child: 2 s doubling to 32 s, back to 2 s
/// after it ran for a minute.
fn restart_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(2), Duration::from_secs(32), Duration::from_secs(60))
}

/// A child bosun process restarted with backoff when it exits.
struct Supervised {
    name: &'static str,
    binary: String,
    args: Vec<String>,
    log: PathBuf,
    daemon: Option<Daemon>,
    backoff: Backoff,
    started: Instant,
    next_start: Instant,
}

impl Supervised {
    fn new(name: &'static str, binary: &str, args: Vec<String>, log: PathBuf) -> Supervised {
        let now = Instant::now();
        let backoff = restart_backoff();
        Supervised { name, binary: binary.into(), args, log, daemon: None, backoff, started: now, next_start: now }
    }

    fn start(&mut self) -> Result<()> {
        self.daemon = Some(Daemon::spawn(self.name, &self.binary, &self.args, &self.log)?);
        self.started = Instant::now();
        Ok(())
    }

    fn keep_running(&mut self) {
        if let Some(daemon) = &mut self.daemon {
            match daemon.check_running() {
                Ok(()) => return,
                Err(err) => {
                    tracing::error!("{err}");
                    self.daemon = None;
                    let backoff = self.backoff.next_delay(self.started.elapsed());
                    self.next_start = Instant::now() + backoff;
                    tracing::warn!(daemon = self.name, ?backoff, restarts = self.backoff.failures(), "restarting");
                }
            }
        }
        if Instant::now() >= self.next_start {
            if let Err(err) = self.start() {
                self.next_start = Instant::now() + self.backoff.next_delay(Duration::ZERO);
                tracing::error!("restarting {}: {err}", self.name);
            }
        }
    }

    async fn stop(self, grace: Duration) {
        if let Some(daemon) = self.daemon {
            daemon.stop(grace).await;
        }
    }
}

async fn wait_http(address: &str, path: &str, timeout: Duration, process: &mut Supervised) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !http_ok(address, path) {
        if let Some(daemon) = &mut process.daemon {
            daemon.check_running()?;
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not answer {path} at {address} within {timeout:?}; see {}",
                process.name,
                process.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn shutdown(
    args: &UpArgs,
    stack: &StackConfig,
    registry: Registry,
    containerd: Containerd,
    control: Supervised,
    agent: Supervised,
) -> Result<()> {
    println!("bosun: stopping the cluster");
    agent.stop(Duration::from_secs(15)).await;
    match CriClient::connect(containerd.socket(), ClientOptions::default()).await {
        Ok(cri) => match teardown::remove_all_pods(&cri, Duration::from_secs(10)).await {
            Ok(n) => println!("bosun: removed {n} pod sandbox(es)"),
            Err(err) => tracing::error!("removing pods: {err}"),
        },
        Err(err) => tracing::error!("connecting to containerd for teardown: {err}"),
    }
    // The agent leaves pods (and their volumes) running when it stops; with
    // the pods gone, their volumes' tmpfs mounts and directories go too.
    let agent_root = args.dir.join("agent");
    let (removed, failures) = tokio::task::spawn_blocking(move || {
        bosun_agent::recovery::pod_dirs::remove_all(&agent_root, &bosun_agent::volumes::NixMounter)
    })
    .await
    .unwrap_or_default();
    for error in &failures {
        tracing::error!("removing pod volumes: {error}");
    }
    tracing::info!(removed, "pod volume directories removed");
    let nft = std::process::Command::new("nft").args(["delete", "table", "ip", PROXY_TABLE]).output();
    if let Ok(output) = nft {
        if !output.status.success() && !String::from_utf8_lossy(&output.stderr).contains("No such file") {
            tracing::warn!("removing nftables table {PROXY_TABLE}: {}", String::from_utf8_lossy(&output.stderr));
        }
    }
    control.stop(Duration::from_secs(10)).await;
    containerd.stop().await;
    teardown::kill_shims(&stack.containerd_socket());
    registry.stop().await;
    // Everything still mounted below the cluster's directory (the runtime's
    // and, had the volume teardown failed, the agent's).
    teardown::unmount_below(&args.dir)?;
    teardown::delete_link(&stack.network.bridge)?;
    if args.purge {
        for dir in [args.dir.join("agent"), args.dir.join("control"), stack.dir.clone()] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let _ = std::fs::remove_file(state_file(&args.dir));
    println!("bosun: down");
    Ok(())
}

pub async fn down(args: DownArgs) -> Result<()> {
    let Some((pid, _)) = running_up(&args.dir) else {
        println!("bosun is not running (no live `bosun up` for {}).", args.dir.display());
        return Ok(());
    };
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

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(tool)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_backoff_grows_then_resets_after_a_stable_run() {
        let mut backoff = restart_backoff();
        let crash_at_once: Vec<u64> = (0..6).map(|_| backoff.next_delay(Duration::ZERO).as_secs()).collect();
        assert_eq!(crash_at_once, [2, 4, 8, 16, 32, 32]);
        assert_eq!(backoff.next_delay(Duration::from_secs(61)).as_secs(), 2, "ran a minute: start over");
    }
}
