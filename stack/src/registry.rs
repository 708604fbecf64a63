//! The loopback image registry (`docker-registry`, plain HTTP on 127.0.0.1)
//! and publishing bosun's images to it.

use std::path::Path;
use std::time::{Duration, Instant};

use bosun_images::{build_all, publish, ImageSource};

use crate::config::StackConfig;
use crate::process::{http_ok, Daemon};
use crate::{Error, Result};

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running loopback registry.
#[derive(Debug)]
pub struct Registry {
    daemon: Daemon,
    address: String,
}

/// The registry's configuration: filesystem storage below `root`, HTTP on `address`.
pub fn render_registry_config(address: &str, root: &Path) -> String {
    format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
        root.display()
    )
}

impl Registry {
    /// Starts `docker-registry` on `config.registry` and waits for `/v2/`.
    pub async fn start(config: &StackConfig) -> Result<Registry> {
        let dir = config.registry_dir();
        let config_path = dir.join("config.yml");
        std::fs::create_dir_all(dir.join("data")).map_err(|source| Error::Write { path: dir.clone(), source })?;
        std::fs::write(&config_path, render_registry_config(&config.registry, &dir.join("data")))
            .map_err(|source| Error::Write { path: config_path.clone(), source })?;
        let args = vec!["serve".to_string(), config_path.display().to_string()];
        let mut daemon = Daemon::spawn("registry", "docker-registry", &args, &dir.join("registry.log"))?;
        let started = Instant::now();
        loop {
            daemon.check_running()?;
            if http_ok(&config.registry, "/v2/") {
                return Ok(Registry { daemon, address: config.registry.clone() });
            }
            if started.elapsed() > START_TIMEOUT {
                let log_tail = daemon.log_tail(20);
                daemon.stop(Duration::from_secs(2)).await;
                return Err(Error::NotReady {
                    daemon: "registry",
                    address: config.registry.clone(),
                    seconds: START_TIMEOUT.as_secs(),
                    log_tail,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// Builds bosun's images under `work_dir` and pushes them; returns the references.
    pub async fn publish_images(&self, source: ImageSource, work_dir: &Path) -> Result<Vec<String>> {
        let address = self.address.clone();
        let work_dir = work_dir.to_path_buf();
        let pushed = tokio::task::spawn_blocking(move || -> Result<Vec<String>, bosun_images::Error> {
            build_all(&work_dir, &source)?.iter().map(|layout| publish::push(layout, &address)).collect()
        })
        .await
        .map_err(|e| Error::Teardown { what: "image publish task".into(), message: e.to_string() })?;
        Ok(pushed?)
    }

    /// Fails if the registry has exited.
    pub fn check_running(&mut self) -> Result<()> {
        self.daemon.check_running()
    }

    pub async fn stop(self) {
        self.daemon.stop(Duration::from_secs(5)).await;
    }
}
