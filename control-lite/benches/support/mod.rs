//! Shared by the control-plane benches: a `bosun control` child process (the
//! binary in `BOSUN_BIN`), an admin client for it, its RSS, and percentiles.

#![allow(dead_code)] // each bench uses a part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;

/// The `bosun` binary to run, from `BOSUN_BIN`.
pub fn bosun_bin() -> anyhow::Result<PathBuf> {
    let bin = std::env::var_os("BOSUN_BIN").context("set BOSUN_BIN to a built `bosun` binary")?;
    Ok(PathBuf::from(bin))
}

/// A running `bosun control`; killed when dropped, however the bench ends.
pub struct Control {
    child: Child,
    kubeconfig: PathBuf,
}

impl Control {
    /// Starts `bosun control` with its data in `data_dir` (SQLite there, or
    /// the etcd at `etcd` if given) and waits for its kubeconfig.
    pub async fn start(data_dir: &Path, etcd: Option<&[String]>) -> anyhow::Result<Control> {
        let bin = bosun_bin()?;
        std::fs::create_dir_all(data_dir)?;
        let kubeconfig = data_dir.join("admin.kubeconfig");
        let _ = std::fs::remove_file(&kubeconfig);
        let mut command = Command::new(&bin);
        command.args(["control", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir.join("data"));
        command.arg("--kubeconfig-out").arg(&kubeconfig);
        if let Some(endpoints) = etcd {
            command.arg("--datastore-endpoint").arg(endpoints.join(","));
        }
        let child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let control = Control { child, kubeconfig };
        wait_for_file(&control.kubeconfig).await?;
        Ok(control)
    }

    /// The process id (for [`memory`]).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An admin client.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// Stops the process with SIGTERM (a clean shutdown) and waits for it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (60 s at most) until `path` exists.
pub async fn wait_for_file(path: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        if Instant::now() > deadline {
            bail!("{} did not appear", path.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// (RSS, peak RSS) of `pid` in MiB, from /proc.
pub fn memory(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("{name} in status"))?;
        let kib: f64 = line.split_whitespace().nth(1).context("value")?.parse()?;
        Ok(kib / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The `p`th percentile of sorted `samples`, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(sorted.len() - 1) * p / 100].as_secs_f64() * 1e3
}

/// A count from the environment variable `var`, else `default`.
pub fn count(var: &str, default: usize) -> anyhow::Result<usize> {
    std::env::var(var).map_or(Ok(default), |v| v.parse().with_context(|| format!("{var}={v}")))
}
