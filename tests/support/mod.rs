//! Integration-test harness: a private runtime stack per test.
//!
//! [`TestStack::start`] brings up a loopback registry with bosun's images and
//! a private containerd (unique directory, socket, registry port, bridge and
//! pod subnet), and [`TestStack::teardown`] removes every pod through CRI,
//! stops the daemons and then checks that nothing was left behind: sandboxes,
//! network namespaces, mounts, shims, CNI IP allocations, the bridge.

#![allow(dead_code)]

pub mod access;
pub mod cluster;
pub mod cri_floor;
pub mod kubelet;
pub mod nftmon;
pub mod pods;
pub mod recovery;
pub mod restarts;
pub mod scale;
pub mod supervision;
pub mod systemd_ns;
pub mod wait;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bosun_cri::{ClientOptions, CriClient};
use bosun_images::ImageSource;
use bosun_stack::{teardown, CniNetwork, Containerd, Registry, StackConfig};

static NEXT_STACK: AtomicU32 = AtomicU32::new(0);

/// The pause binary the sandbox image is built from (`make pause`).
pub fn pause_binary() -> PathBuf {
    std::env::var_os("BOSUN_PAUSE_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/x86_64-unknown-linux-gnu/release/pause"))
}

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

pub struct TestStack {
    pub config: StackConfig,
    pub cri: CriClient,
    containerd: Option<Containerd>,
    registry: Option<Registry>,
    dir: Option<tempfile::TempDir>,
}

impl TestStack {
    pub async fn start() -> Result<TestStack> {
        let pause = pause_binary();
        if !pause.exists() {
            bail!("pause binary {} is missing: run `make pause` (or `make test`)", pause.display());
        }
        let n = NEXT_STACK.fetch_add(1, Ordering::SeqCst);
        let id = (std::process::id() % 10_000) * 16 + n;
        let dir = tempfile::Builder::new().prefix("bosun-it-").tempdir().context("temp dir")?;
        let config = StackConfig {
            dir: dir.path().to_path_buf(),
            registry: format!("127.0.0.1:{}", free_port()),
            insecure_registries: Vec::new(),
            network: CniNetwork { bridge: format!("bst{id}"), subnet: format!("10.201.{}.0/24", id % 250) },
            cni_bin_dir: "/usr/lib/cni".into(),
        };
        let registry = Registry::start(&config).await?;
        registry
            .publish_images(
                ImageSource { pause_binary: pause, busybox: "/bin/busybox".into() },
                &config.dir.join("images"),
            )
            .await?;
        let containerd = Containerd::start(&config).await?;
        let cri = CriClient::connect(containerd.socket(), ClientOptions::default()).await?;
        Ok(TestStack { config, cri, containerd: Some(containerd), registry: Some(registry), dir: Some(dir) })
    }

    pub fn app_image(&self) -> String {
        self.config.app_image()
    }

    /// Stops containerd and starts it again on the same config and socket.
    pub async fn restart_containerd(&mut self) -> Result<()> {
        if let Some(containerd) = self.containerd.take() {
            containerd.stop().await;
        }
        self.containerd = Some(Containerd::start(&self.config).await?);
        Ok(())
    }

    /// Removes everything and checks that nothing is left.
    pub async fn teardown(mut self) -> Result<()> {
        let removed = teardown::remove_all_pods(&self.cri, Duration::from_secs(2)).await?;
        let ipam = self.config.cni_ipam_dir().join("bosun");
        let leaked_ips = allocated_ips(&ipam);
        let netns_dir = self.config.dir.join("containerd/state");
        let leaked_netns = find_named(&netns_dir, "netns");
        if let Some(containerd) = self.containerd.take() {
            containerd.stop().await;
        }
        let shims = teardown::kill_shims(&self.config.containerd_socket());
        if let Some(registry) = self.registry.take() {
            registry.stop().await;
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        let mounts = teardown::mounts_below(&mountinfo, &self.config.dir);
        teardown::unmount_below(&self.config.dir)?;
        teardown::delete_link(&self.config.network.bridge)?;
        if let Some(dir) = self.dir.take() {
            dir.close().context("removing the stack directory")?;
        }
        tracing_free_log(removed);
        if !leaked_ips.is_empty() || !leaked_netns.is_empty() || shims > 0 || !mounts.is_empty() {
            bail!("leftovers: ips {leaked_ips:?}, netns {leaked_netns:?}, shims {shims}, mounts {mounts:?}");
        }
        Ok(())
    }
}

fn tracing_free_log(removed: usize) {
    if removed > 0 {
        eprintln!("teardown removed {removed} pod sandbox(es) the test left");
    }
}

/// IPs host-local still holds (one file per IP in its data dir).
pub fn allocated_ips(ipam: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(ipam) else { return Vec::new() };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.parse::<std::net::Ipv4Addr>().is_ok())
        .collect()
}

/// Files below `dir` that are mount points of network namespaces (files in a
/// directory named `netns`).
pub fn find_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                if entry.file_name() == name {
                    found.extend(std::fs::read_dir(&path).into_iter().flatten().flatten().map(|e| e.path()));
                } else {
                    stack.push(path);
                }
            }
        }
    }
    found
}

impl Drop for TestStack {
    fn drop(&mut self) {
        // A panicking test still must not leave daemons or mounts behind.
        if self.containerd.is_none() && self.registry.is_none() {
            return;
        }
        let socket = self.config.containerd_socket();
        let dir = self.config.dir.clone();
        let bridge = self.config.network.bridge.clone();
        let cri = self.cri.clone();
        let containerd = self.containerd.take();
        let registry = self.registry.take();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                let _ = teardown::remove_all_pods(&cri, Duration::from_secs(1)).await;
                if let Some(c) = containerd {
                    c.stop().await;
                }
                if let Some(r) = registry {
                    r.stop().await;
                }
            });
            teardown::kill_shims(&socket);
            let _ = teardown::unmount_below(&dir);
            let _ = teardown::delete_link(&bridge);
        })
        .join();
    }
}
