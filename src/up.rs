//! `bosun up` / `bosun down`: a one-node cluster on this machine.
//!
//! `up` starts, as separate processes so the planes fail independently: the
//! loopback registry (with bosun's images pushed), our own containerd,
//! `bosun control` and `bosun agent`. It supervises them (`crate::supervise`:
//! a crashed child, containerd included, is restarted alone; running pods are
//! not touched by that), writes a kubeconfig and a state file, and on Ctrl-C
//! or `bosun down` removes what it created: pods, their volumes (tmpfs mounts
//! included), the nftables table, the bridge, mounts. Pods' logs are kept
//! unless `--purge`.
//!
//! One `bosun up` per directory (`crate::up_state`). A `bosun up` that finds
//! daemons of a dead predecessor still running stops them, then starts on
//! the same state: the new containerd adopts the pods the shims kept running.
//! The teardown is `crate::down`'s.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bosun_images::ImageSource;
use bosun_stack::{CniNetwork, Registry, StackConfig};
use tokio_util::sync::CancellationToken;

use crate::down::remove_cluster;
use crate::supervise::leftovers::stop_leftovers;
use crate::supervise::policy::RestartPolicy;
use crate::supervise::{Running, Spec, Supervised};
use crate::up_state::{lock_dir, render_state, running_up, state_file};
use crate::up_steps::{report_when_ready, Steps};
use crate::LogFormat;

/// How long `up` waits for the node to be Ready before its summary says so.
const NODE_READY_WAIT: Duration = Duration::from_secs(120);

/// How often `up` looks at its children.
const CHECK_INTERVAL: Duration = Duration::from_millis(200);

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
    /// One more argument for `bosun control` (repeatable), e.g.
    /// `--control-arg=--cluster-signing-duration=720h`.
    #[arg(long, allow_hyphen_values = true)]
    pub control_arg: Vec<String>,
    /// Another registry containerd may pull from over plain HTTP
    /// (`host:port`; repeatable), e.g. a private one that needs imagePullSecrets.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    /// apiserver address (HTTPS, loopback).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: String,
    /// The address pods reach the apiserver at through the `kubernetes`
    /// Service (`bosun control --advertise-address`; it listens there too,
    /// at `--listen`'s port). Default: the node's IP, as the agent detects
    /// it (the default-route interface's IPv4 address), which pods reach
    /// through the bridge like any host address.
    #[arg(long)]
    pub advertise_address: Option<std::net::IpAddr>,
    /// Addresses `type: LoadBalancer` Services get their own ingress IP
    /// from (passed to `bosun control`; IPv4 CIDRs or `first-last` ranges).
    /// Pick addresses on the node's network that nothing else uses. With
    /// none, or once they run out, Services share the node's IP, each on
    /// its own ports (as k3s's ServiceLB does).
    #[arg(long, value_delimiter = ',')]
    pub load_balancer_pool: Vec<String>,
    /// Do not give LoadBalancer Services the node's IP (they then wait for
    /// `--load-balancer-pool`, or another load balancer).
    #[arg(long)]
    pub no_node_load_balancer: bool,
    /// Keep the cluster's objects in this etcd v3 cluster instead of
    /// SQLite under `--dir` (passed to `bosun control`; client URLs,
    /// comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub datastore_endpoint: Vec<String>,
    #[arg(long, default_value = "10.244.0.0/24")]
    pub pod_cidr: String,
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    #[arg(long, default_value = "10.96.0.0/16")]
    pub service_cidr: String,
    /// Pod bridge name.
    #[arg(long, default_value = "bosun0")]
    pub bridge: String,
    /// The agent proxy's nftables table (`ip` family); clusters sharing a
    /// host each need their own.
    #[arg(long, default_value = "bosun", value_parser = parse_proxy_table)]
    pub proxy_table: String,
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
    /// Static bearer tokens for the apiserver (`bosun control
    /// --token-auth-file`): CSV lines `token,user,uid,"group1,group2"`.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DownArgs {
    #[arg(long, default_value = "/var/lib/bosun")]
    pub dir: PathBuf,
}

fn print_usage(kubeconfig: &Path, node: &str, logs: &Path) {
    println!("bosun is up: a one-node cluster with node {node:?}.");
    println!("  kubeconfig: {}", kubeconfig.display());
    println!("  use it:     export KUBECONFIG={}; kubectl get nodes", kubeconfig.display());
    println!("  logs:       {}/{{registry,containerd,control,agent}}.log", logs.display());
    println!("Stop it with Ctrl-C here or `bosun down`.");
}

fn parse_proxy_table(name: &str) -> Result<String, String> {
    bosun_netproxy::table::validate_table_name(name).map_err(|e| e.to_string())?;
    Ok(name.to_string())
}

fn default_pause_binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/x86_64-unknown-linux-gnu/release/pause")
}

fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "bosun-node".into())
}

pub async fn up(args: UpArgs, log_format: LogFormat, token: CancellationToken) -> Result<()> {
    // Keys and kubeconfigs live below: the directory is the owner's alone.
    bosun_control::auth::files::private_dir(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let Some(_lock) = lock_dir(&args.dir)? else {
        let (pid, state) = running_up(&args.dir).unwrap_or_default();
        println!("bosun is already up (pid {pid}); nothing to do.");
        let kubeconfig = PathBuf::from(state["kubeconfig"].as_str().unwrap_or_default());
        print_usage(&kubeconfig, state["node"].as_str().unwrap_or_default(), &args.dir.join("logs"));
        return Ok(());
    };
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
    let node_kubeconfig = args.dir.join(NODE_KUBECONFIG);
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
        render_state(std::process::id(), &kubeconfig, &node, &stack, &args.proxy_table).to_string(),
    )?;
    // A predecessor killed without cleaning up: its daemons go (they should
    // have died with it); its pods stay for the new containerd to adopt.
    let stopped = stop_leftovers(&args.dir, Duration::from_secs(10)).await;
    if !stopped.is_empty() {
        println!("bosun: stopped {} daemon(s) a previous bosun up left running; adopting its pods", stopped.len());
    }

    let mut steps = Steps::start(Instant::now());
    let registry = Registry::start(&stack).await?;
    steps.done("registry", Instant::now());
    registry
        .publish_images(ImageSource { pause_binary, busybox: args.busybox.clone() }, &args.dir.join("images"))
        .await?;
    steps.done("images", Instant::now());
    let registry = Supervised::adopt(
        "registry",
        Spec::Registry(stack.clone()),
        RestartPolicy::COMPONENT,
        Running::Registry(registry),
    );
    let containerd = Supervised::start("containerd", Spec::Containerd(stack.clone()), RestartPolicy::RUNTIME).await?;
    steps.done("containerd", Instant::now());
    let exe = std::env::current_exe().context("locating the bosun binary")?.display().to_string();
    let mut control_args = control_args(&args, &kubeconfig, &node_kubeconfig, &node)?;
    control_args.splice(1..1, ["--log-format".to_string(), log_format.as_str().to_string()]);
    let control = Spec::Bosun { binary: exe.clone(), args: control_args, log: logs.join("control.log") };
    let mut control = Supervised::start("control", control, RestartPolicy::COMPONENT).await?;
    let ca = args.dir.join("control/pki/ca.crt");
    wait_https(&args.listen, "/readyz", &ca, Duration::from_secs(30), &mut control).await?;
    steps.done("control", Instant::now());
    let mut agent_args = agent_args(&args, &stack, &node_kubeconfig, &node)?;
    // Before the user's `--agent-arg`s, which may set it again.
    agent_args.splice(1..1, ["--log-format".to_string(), log_format.as_str().to_string()]);
    let agent = Spec::Bosun { binary: exe, args: agent_args, log: logs.join("agent.log") };
    let agent = Supervised::start("agent", agent, RestartPolicy::COMPONENT).await?;
    steps.done("agent", Instant::now());
    print_usage(&kubeconfig, &node, &logs);
    // The summary comes once the node is Ready; supervision starts now.
    tokio::spawn(report_when_ready(steps, kubeconfig.clone(), node.clone(), NODE_READY_WAIT, token.child_token()));

    let mut children = Children { registry, containerd, control, agent };
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => children.keep_running().await,
        }
    }
    shutdown(&args, &stack, children).await
}

/// `bosun up`'s children, in start order.
struct Children {
    registry: Supervised,
    containerd: Supervised,
    control: Supervised,
    agent: Supervised,
}

impl Children {
    /// Restarts whichever child exited (each alone, with its own backoff).
    async fn keep_running(&mut self) {
        for child in [&mut self.registry, &mut self.containerd, &mut self.control, &mut self.agent] {
            child.keep_running().await;
        }
    }
}

/// The agent's kubeconfig (user `system:node:<node>`), below `--dir`.
const NODE_KUBECONFIG: &str = "node.kubeconfig";

/// `bosun control` holds the cluster CA (in its data dir, made at its first
/// start), so it issues the identities: the admin kubeconfig and the node's.
fn control_args(args: &UpArgs, kubeconfig: &Path, node_kubeconfig: &Path, node: &str) -> Result<Vec<String>> {
    let mut control = vec![
        "control".to_string(),
        "--data-dir".into(),
        args.dir.join("control").display().to_string(),
        "--listen".into(),
        args.listen.clone(),
        "--service-cidr".into(),
        args.service_cidr.clone(),
        "--kubeconfig-out".into(),
        kubeconfig.display().to_string(),
        "--node-kubeconfig-out".into(),
        node_kubeconfig.display().to_string(),
        "--node-name".into(),
        node.to_string(),
    ];
    if let Some(file) = &args.token_auth_file {
        let file = std::fs::canonicalize(file).with_context(|| format!("token file {}", file.display()))?;
        control.extend(["--token-auth-file".to_string(), file.display().to_string()]);
    }
    if !args.load_balancer_pool.is_empty() {
        control.extend(["--load-balancer-pool".to_string(), args.load_balancer_pool.join(",")]);
    }
    if !args.datastore_endpoint.is_empty() {
        control.extend(["--datastore-endpoint".to_string(), args.datastore_endpoint.join(",")]);
    }
    let advertise = args.advertise_address.or_else(|| bosun_agent::host::detect_node_ip().map(Into::into));
    match advertise {
        Some(ip) => control.extend(["--advertise-address".to_string(), ip.to_string()]),
        None => println!("bosun: no node IP found; pods will not reach the apiserver (pass --advertise-address)"),
    }
    if let Some(std::net::IpAddr::V4(ip)) = advertise.filter(|_| !args.no_node_load_balancer) {
        control.extend(["--load-balancer-shared-pool".to_string(), ip.to_string()]);
        // The node's own services keep their ports on its IP.
        let mut reserved: Vec<i32> = bosun_control::controllers::loadbalancer::plan::DEFAULT_RESERVED_PORTS.to_vec();
        reserved.extend(args.listen.rsplit_once(':').and_then(|(_, port)| port.parse::<i32>().ok()));
        reserved.push(i32::from(args.kubelet_port));
        let reserved: Vec<String> = reserved.iter().map(i32::to_string).collect();
        control.extend(["--load-balancer-reserved-ports".to_string(), reserved.join(",")]);
    }
    control.extend(args.control_arg.iter().cloned());
    Ok(control)
}

fn agent_args(args: &UpArgs, stack: &StackConfig, kubeconfig: &Path, node: &str) -> Result<Vec<String>> {
    // The agent's cluster DNS listens on the pod bridge's gateway; pods get
    // it as their nameserver (kubelet's --cluster-dns).
    let cluster_dns = bosun_agent::cluster_dns::gateway_of(&args.pod_cidr)
        .with_context(|| format!("no cluster DNS address in --pod-cidr {:?}", args.pod_cidr))?;
    let mut agent_args = vec![
        "agent".to_string(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "--node-name".into(),
        node.to_string(),
        "--cri-socket".into(),
        stack.containerd_socket().display().to_string(),
        "--root-dir".into(),
        args.dir.join("agent").display().to_string(),
        "--pod-cidr".into(),
        args.pod_cidr.clone(),
        "--cluster-cidr".into(),
        args.cluster_cidr.clone(),
        "--service-cidr".into(),
        args.service_cidr.clone(),
        "--proxy-table".into(),
        args.proxy_table.clone(),
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
    agent_args.extend(args.agent_arg.iter().cloned());
    Ok(agent_args)
}

/// Waits until the apiserver at `address` answers `path` with 200 over
/// HTTPS, trusting the CA at `ca` (which control writes at its first start).
async fn wait_https(address: &str, path: &str, ca: &Path, timeout: Duration, process: &mut Supervised) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(ca_pem) = std::fs::read_to_string(ca) {
            if bosun_control::auth::tls::https_ok(address, path, &ca_pem).await {
                return Ok(());
            }
        }
        process.check_running()?;
        if Instant::now() > deadline {
            bail!("{} did not answer {path} at {address} within {timeout:?}; see its log", process.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops the children, then removes everything the cluster made.
async fn shutdown(args: &UpArgs, stack: &StackConfig, children: Children) -> Result<()> {
    println!("bosun: stopping the cluster");
    let Children { registry, containerd, control, agent } = children;
    agent.stop(Duration::from_secs(15)).await;
    control.stop(Duration::from_secs(10)).await;
    registry.stop(Duration::from_secs(5)).await;
    remove_cluster(&args.dir, stack, &args.proxy_table, args.purge, Some(containerd)).await
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(tool)).find(|p| p.is_file())
}
