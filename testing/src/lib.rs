//! Throwaway one-node bosun clusters on real containerd, for integration
//! tests, several at once on one host.
//!
//! ```no_run
//! # async fn example() -> Result<(), bosun_testing::Error> {
//! use k8s_openapi::api::core::v1::Node;
//! use kube::api::{Api, ListParams};
//!
//! let cluster = bosun_testing::TestCluster::builder().node_name("n1").start().await?;
//! let nodes: Api<Node> = Api::all(cluster.client().await?);
//! let list = nodes.list(&ListParams::default()).await.expect("nodes");
//! assert_eq!(list.items.len(), 1);
//! println!("kubectl --kubeconfig {}", cluster.kubeconfig().display());
//! cluster.stop()?; // or drop it: the same teardown, panicking on leftovers
//! # Ok(()) }
//! ```
//!
//! Each cluster is a `bosun up` child process in its own temp directory,
//! with its own registry, containerd, apiserver and agent, and a
//! [`slot`] that gives it a pod subnet, Service range, bridge and nftables
//! table no other cluster on the host uses. [`TestCluster::start`] returns
//! once the node is Ready. Stopping it (drop or [`TestCluster::stop`]) asks
//! `bosun up` to tear down and then checks that nothing of the cluster is
//! left on the host ([`leftovers`]).
//!
//! Needs root, the `bosun` binary (`BOSUN_BINARY`, or [`Builder::bosun_binary`],
//! or `bosun` on `PATH`), bosun's static pause binary (`BOSUN_PAUSE_BINARY`
//! or [`Builder::pause_binary`]) and what `bosun up` needs (`make setup`).

pub mod etcd;
pub mod leftovers;
pub mod slot;

mod process;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

pub use leftovers::Leftovers;
pub use slot::{Slot, SlotNetwork};

use process::UpProcess;

/// Errors of starting, using and stopping a test cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no free cluster slot: {0} clusters already run on this host")]
    NoSlot(u8),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0} is missing: set BOSUN_BINARY/BOSUN_PAUSE_BINARY or the builder's path")]
    Missing(PathBuf),
    #[error("bosun up exited ({status}) before the cluster was up; its output is above")]
    Exited { status: String },
    #[error("bosun up did not come up within {0:?}")]
    NotUp(Duration),
    #[error("node {node} was not Ready within {timeout:?}")]
    NotReady { node: String, timeout: Duration },
    #[error("client for {path}: {message}")]
    Client { path: PathBuf, message: String },
    #[error("left behind after the cluster stopped: {0}")]
    Leftovers(Box<Leftovers>),
    #[error("etcd test cluster: {0}")]
    Etcd(String),
}

/// How long a start may take (image publishing, containerd, control, agent).
const UP_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the node may take to become Ready after `bosun up` is up.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Options of a test cluster.
#[derive(Debug, Clone)]
pub struct Builder {
    bosun: Option<PathBuf>,
    pause: Option<PathBuf>,
    node: String,
    extra: Vec<String>,
    slot_dir: PathBuf,
}

impl Builder {
    /// The `bosun` binary to run (e.g. `env!("CARGO_BIN_EXE_bosun")`).
    pub fn bosun_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.bosun = Some(path.into());
        self
    }

    /// bosun's static pause binary (`make pause`).
    pub fn pause_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.pause = Some(path.into());
        self
    }

    /// The node's name (default `node-<slot>`).
    pub fn node_name(mut self, node: impl Into<String>) -> Self {
        self.node = node.into();
        self
    }

    /// One more `bosun up` argument, e.g. `--agent-arg=--max-pods=20`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra.push(arg.into());
        self
    }

    /// Where slot locks live (default [`slot::SLOT_DIR`]).
    pub fn slot_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.slot_dir = dir.into();
        self
    }

    /// Starts the cluster and waits until its node is Ready.
    pub async fn start(self) -> Result<TestCluster, Error> {
        let bosun = self
            .bosun
            .clone()
            .or_else(|| std::env::var_os("BOSUN_BINARY").map(PathBuf::from))
            .or_else(|| which("bosun"));
        let bosun = bosun.ok_or_else(|| Error::Missing("bosun".into()))?;
        let pause = self.pause.clone().or_else(|| std::env::var_os("BOSUN_PAUSE_BINARY").map(PathBuf::from));
        let pause = pause.ok_or_else(|| Error::Missing("the pause binary".into()))?;
        for path in [&bosun, &pause] {
            if !path.exists() {
                return Err(Error::Missing(path.clone()));
            }
        }
        let slot = Slot::take(&self.slot_dir)?;
        let network = SlotNetwork::of(slot.number);
        let node = if self.node.is_empty() { format!("node-{}", slot.number) } else { self.node.clone() };
        let tmp = tempfile::Builder::new()
            .prefix(&format!("bosun-tc{}-", slot.number))
            .tempdir()
            .map_err(|source| Error::Io { what: "creating the cluster directory".into(), source })?;
        let dir = tmp.path().to_path_buf();
        let api = format!("127.0.0.1:{}", free_port()?);
        let registry = format!("127.0.0.1:{}", free_port()?);
        let mut args = up_args(&dir, &network, &node, &api, &registry, free_port()?, &pause);
        args.extend(self.extra.iter().cloned());
        let up = UpProcess::start(&bosun, &args, slot.number, UP_TIMEOUT).await?;
        let cluster = TestCluster {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            api,
            registry,
            node,
            network,
            up: Some(up),
            _tmp: Some(tmp),
            _slot: slot,
        };
        cluster.wait_ready(READY_TIMEOUT).await?;
        Ok(cluster)
    }
}

fn up_args(
    dir: &Path,
    network: &SlotNetwork,
    node: &str,
    api: &str,
    registry: &str,
    kubelet_port: u16,
    pause: &Path,
) -> Vec<String> {
    let mut args: Vec<String> = vec!["up".into(), "--dir".into(), dir.display().to_string()];
    for (flag, value) in [
        ("--registry", registry.to_string()),
        ("--listen", api.to_string()),
        ("--pod-cidr", network.pod_cidr.clone()),
        ("--cluster-cidr", network.pod_cidr.clone()),
        ("--service-cidr", network.service_cidr.clone()),
        ("--bridge", network.bridge.clone()),
        ("--proxy-table", network.proxy_table.clone()),
        ("--kubelet-port", kubelet_port.to_string()),
        ("--node-name", node.to_string()),
        ("--pause-binary", pause.display().to_string()),
    ] {
        args.push(flag.into());
        args.push(value);
    }
    // Host-wide ports stay free for the other clusters.
    args.push("--agent-arg=--proxy-metrics-address=".into());
    args.push("--agent-arg=--healthz-port=0".into());
    args
}

/// A running one-node cluster; torn down on drop (which panics if the
/// teardown left anything behind, unless the thread is already panicking).
pub struct TestCluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    api: String,
    registry: String,
    node: String,
    network: SlotNetwork,
    up: Option<UpProcess>,
    _tmp: Option<tempfile::TempDir>,
    _slot: Slot,
}

impl TestCluster {
    pub fn builder() -> Builder {
        Builder { bosun: None, pause: None, node: String::new(), extra: Vec::new(), slot_dir: slot::SLOT_DIR.into() }
    }

    /// The admin kubeconfig (user `bosun-admin`, group `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The cluster's directory (state, logs in `logs/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The apiserver's `host:port` (HTTPS).
    pub fn api_address(&self) -> &str {
        &self.api
    }

    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// The slot's network (pod subnet, Service range, bridge, nft table).
    pub fn network(&self) -> &SlotNetwork {
        &self.network
    }

    /// The busybox image pods of this cluster can run.
    pub fn app_image(&self) -> String {
        format!("{}/{}:{}", self.registry, bosun_images::APP_REPOSITORY, bosun_images::APP_TAG)
    }

    /// A client with the admin identity.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let failed = |message: String| Error::Client { path: self.kubeconfig.clone(), message };
        let file = kube::config::Kubeconfig::read_from(&self.kubeconfig).map_err(|e| failed(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| failed(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| failed(e.to_string()))
    }

    /// A `kubectl` command on this cluster (the real kubectl on `PATH`).
    pub fn kubectl(&self) -> std::process::Command {
        let mut command = std::process::Command::new("kubectl");
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let nodes: Api<Node> = Api::all(self.client().await?);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(node) = nodes.get(&self.node).await {
                if is_ready(&node) {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::NotReady { node: self.node.clone(), timeout });
            }
            if let Some(up) = &self.up {
                up.check_running()?;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the cluster and checks that nothing of it is left on the host.
    pub fn stop(mut self) -> Result<(), Error> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), Error> {
        let Some(up) = self.up.take() else { return Ok(()) };
        up.stop(&self.dir);
        let found = Leftovers::find(&self.dir, &self.network.bridge, &self.network.proxy_table);
        if found.is_empty() {
            return Ok(());
        }
        found.clean(&self.dir);
        Err(Error::Leftovers(Box::new(found)))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Err(error) = self.teardown() {
            if !std::thread::panicking() {
                panic!("test cluster in {}: {error}", self.dir.display());
            }
        }
    }
}

fn is_ready(node: &Node) -> bool {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A TCP port the kernel just handed out on 127.0.0.1 (bound and released).
fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|source| Error::Io { what: "finding a free port".into(), source })
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(tool)).find(|p| p.is_file())
}
