//! Our own containerd: configured by [`crate::config`], started as a child
//! daemon, ready when its CRI answers `Version`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bosun_cri::{ClientOptions, CriClient};

use crate::config::{render_cni_conflist, render_containerd_config, StackConfig};
use crate::process::Daemon;
use crate::{Error, Result};

/// How long containerd may take to serve CRI.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running private containerd.
#[derive(Debug)]
pub struct Containerd {
    daemon: Daemon,
    socket: PathBuf,
}

impl Containerd {
    /// Writes the configuration and CNI conflist, starts containerd and waits
    /// until its CRI answers.
    pub async fn start(config: &StackConfig) -> Result<Containerd> {
        write_config(config)?;
        let socket = config.containerd_socket();
        let _ = std::fs::remove_file(&socket);
        let log = config.dir.join("containerd").join("containerd.log");
        let args = vec!["--config".to_string(), config.containerd_config_path().display().to_string()];
        let mut daemon = Daemon::spawn("containerd", "containerd", &args, &log)?;
        let started = Instant::now();
        loop {
            daemon.check_running()?;
            if socket.exists() {
                let options = ClientOptions { connect_timeout: Duration::from_secs(2), ..ClientOptions::default() };
                if let Ok(client) = CriClient::connect(&socket, options).await {
                    if client.status().await.is_ok() {
                        tracing::info!(socket = %socket.display(), elapsed = ?started.elapsed(), "containerd ready");
                        return Ok(Containerd { daemon, socket });
                    }
                }
            }
            if started.elapsed() > START_TIMEOUT {
                let log_tail = daemon.log_tail(20);
                daemon.stop(Duration::from_secs(5)).await;
                return Err(Error::NotReady {
                    daemon: "containerd",
                    address: socket.display().to_string(),
                    seconds: START_TIMEOUT.as_secs(),
                    log_tail,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// Fails if containerd has exited.
    pub fn check_running(&mut self) -> Result<()> {
        self.daemon.check_running()
    }

    /// Stops containerd (pods must have been removed first, see [`crate::teardown`]).
    pub async fn stop(self) {
        self.daemon.stop(Duration::from_secs(10)).await;
    }
}

/// Writes containerd's configuration ([`StackConfig::containerd_config_path`])
/// and the CNI conflist, and makes the CNI IPAM directory: all a containerd
/// started with `--config <that path>` needs, whoever starts it (this
/// module, or a systemd unit as in the `systemd_units` test).
pub fn write_config(config: &StackConfig) -> Result<()> {
    write(&config.containerd_config_path(), &render_containerd_config(config))?;
    write(&config.cni_conf_dir().join("10-bosun.conflist"), &render_cni_conflist(config))?;
    std::fs::create_dir_all(config.cni_ipam_dir())
        .map_err(|source| Error::Write { path: config.cni_ipam_dir(), source })
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Write { path: parent.to_path_buf(), source })?;
    }
    std::fs::write(path, text).map_err(|source| Error::Write { path: path.to_path_buf(), source })
}
