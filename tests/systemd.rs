//! bosun under systemd (issue 14):
//! - `bosun control` and `bosun agent`, started with a `NOTIFY_SOCKET` this
//!   test binds and `WATCHDOG_USEC` set, send `READY=1` only once they
//!   serve (the apiserver answers; the agent's kubelet API answers and its
//!   Node exists), then `WATCHDOG=1`, and `STOPPING=1` on SIGTERM. The agent
//!   runs against the fake CRI runtime (real gRPC on a unix socket) with
//!   its proxy, cluster DNS and pod cgroups off, so it touches nothing of
//!   the host and needs no host lock.
//! - `bosun install --root DIR` writes units that `systemd-analyze verify`
//!   passes with no warning.
//!
//! `cargo test -p bosun --test systemd`

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bosun_cri::testing::FakeCri;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::access::Access;
use support::cluster::{bosun, get};
use tokio_util::sync::CancellationToken;

/// Watchdog timeout passed to the daemons: they ping every second.
const WATCHDOG_USEC: &str = "2000000";
/// Generous: a loaded 2-core machine starting a debug build.
const DEADLINE: Duration = Duration::from_secs(90);

/// The service manager's end of the protocol: a unix datagram socket.
struct NotifySocket {
    socket: std::os::unix::net::UnixDatagram,
    path: PathBuf,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(path: PathBuf) -> Result<NotifySocket> {
        let socket = std::os::unix::net::UnixDatagram::bind(&path).context("binding NOTIFY_SOCKET")?;
        socket.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(NotifySocket { socket, path, seen: Vec::new() })
    }

    /// Waits for a datagram with the line `line`; returns the datagrams
    /// received before it.
    fn wait_for(&mut self, line: &str, child: &mut Child) -> Result<Vec<String>> {
        let started = Instant::now();
        let mut before = Vec::new();
        let mut buf = [0u8; 4096];
        while started.elapsed() < DEADLINE {
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.seen.push(message.clone());
                    if message.lines().any(|l| l == line) {
                        return Ok(before);
                    }
                    before.push(message);
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if let Some(status) = child.try_wait()? {
                        bail!("daemon exited ({status}) before {line}; got {:?}", self.seen);
                    }
                }
                Err(e) => return Err(e).context("receiving on NOTIFY_SOCKET"),
            }
        }
        bail!("no {line} within {DEADLINE:?}; got {:?}", self.seen)
    }
}

/// A daemon child, killed if the test fails half way.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    fn spawn(args: &[String], notify: Option<&Path>, log: &Path) -> Result<Daemon> {
        let mut command = bosun();
        command.args(args).stdout(Stdio::null()).stderr(std::fs::File::create(log)?);
        command.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC").env_remove("WATCHDOG_PID");
        if let Some(socket) = notify {
            command.env("NOTIFY_SOCKET", socket).env("WATCHDOG_USEC", WATCHDOG_USEC);
        }
        Ok(Daemon(command.spawn().context("spawning bosun")?))
    }

    /// SIGTERM; the daemon must then send STOPPING=1 and exit cleanly.
    fn stop(mut self, notify: &mut NotifySocket) -> Result<()> {
        kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM)?;
        notify.wait_for("STOPPING=1", &mut self.0)?;
        let started = Instant::now();
        while started.elapsed() < DEADLINE {
            if let Some(status) = self.0.try_wait()? {
                ensure!(status.success(), "daemon exited with {status}");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("daemon did not exit within {DEADLINE:?} of SIGTERM")
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Starts `bosun control` on a free port in `dir`, notifying `notify` if
/// given; returns it with the admin access once the kubeconfig is written.
fn start_control(dir: &Path, notify: Option<&Path>) -> Result<(Daemon, Access, PathBuf)> {
    let kubeconfig = dir.join("kubeconfig");
    let data = dir.join("control");
    let control = Daemon::spawn(
        &args(&["control", "--listen", "127.0.0.1:0", "--data-dir", &data.display().to_string()])
            .into_iter()
            .chain(["--kubeconfig-out".to_string(), kubeconfig.display().to_string()])
            .collect::<Vec<_>>(),
        notify,
        &dir.join("control.log"),
    )?;
    let started = Instant::now();
    while !kubeconfig.exists() {
        ensure!(started.elapsed() < DEADLINE, "control wrote no kubeconfig; see {}", dir.join("control.log").display());
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((control, Access::from_kubeconfig(&kubeconfig)?, kubeconfig))
}

#[test]
fn control_notifies_ready_once_serving_then_watchdog_then_stopping() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut notify = NotifySocket::bind(dir.path().join("notify.sock"))?;
    let (mut control, admin, _) = start_control(dir.path(), Some(&notify.path.clone()))?;
    let before = notify.wait_for("READY=1", &mut control.0)?;
    assert!(before.is_empty(), "nothing comes before READY=1: {before:?}");
    // READY=1 means serving: the apiserver answers at once, not eventually.
    assert_eq!(admin.get("/readyz")?, "ok");
    assert!(admin.get("/api/v1/namespaces/default")?.contains("\"name\":\"default\""));
    notify.wait_for("WATCHDOG=1", &mut control.0)?;
    notify.wait_for("WATCHDOG=1", &mut control.0)?;
    control.stop(&mut notify)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_notifies_ready_once_registered_and_serving_then_watchdog_then_stopping() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let token = CancellationToken::new();
    let _cancel = token.clone().drop_guard();
    let cri_socket = dir.path().join("cri.sock");
    let _fake = FakeCri::new().serve(cri_socket.clone(), token.clone())?;
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || agent_scenario(&path, &cri_socket)).await?
}

fn agent_scenario(dir: &Path, cri_socket: &Path) -> Result<()> {
    let (_control, admin, kubeconfig) = start_control(dir, None)?;
    let mut notify = NotifySocket::bind(dir.join("notify.sock"))?;
    let node = "systemd-notify-test";
    let port = support::free_port().to_string();
    let healthz_port = support::free_port().to_string();
    let agent_args = args(&[
        "agent",
        "--node-name",
        node,
        "--node-ip",
        "127.0.0.1",
        "--kubelet-port",
        &port,
        "--healthz-port",
        &healthz_port,
        "--no-proxy",
        "--no-cluster-dns",
        "--cgroups-per-qos=false",
    ])
    .into_iter()
    .chain([
        "--kubeconfig".to_string(),
        kubeconfig.display().to_string(),
        "--cri-socket".into(),
        cri_socket.display().to_string(),
        "--root-dir".into(),
        dir.join("agent").display().to_string(),
    ])
    .collect::<Vec<_>>();
    let mut agent = Daemon::spawn(&agent_args, Some(&notify.path.clone()), &dir.join("agent.log"))?;
    let before = notify.wait_for("READY=1", &mut agent.0).with_context(|| log_of(dir, "agent"))?;
    assert!(before.is_empty(), "nothing comes before READY=1: {before:?}");
    // READY=1 means the kubelet API answers and the Node is registered;
    // /healthz is served in plain HTTP on its own loopback port.
    assert_eq!(get(&format!("http://127.0.0.1:{healthz_port}/healthz"))?, "ok");
    let node_json: serde_json::Value = serde_json::from_str(&admin.get(&format!("/api/v1/nodes/{node}"))?)?;
    assert_eq!(node_json["metadata"]["name"], node, "{node_json}");
    assert!(node_json["status"]["conditions"].as_array().is_some_and(|c| !c.is_empty()), "{node_json}");
    notify.wait_for("WATCHDOG=1", &mut agent.0)?;
    notify.wait_for("WATCHDOG=1", &mut agent.0)?;
    agent.stop(&mut notify)
}

fn log_of(dir: &Path, name: &str) -> String {
    format!("{name} log:\n{}", std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default())
}

/// `systemd-analyze verify` checks a unit as systemd would load it: keys,
/// values, the ExecStart binary, and the units it depends on. `--root`
/// makes it resolve all of that inside the install root; that root gets a
/// copy of the host's packaged units (sysinit.target, containerd.service,
/// ...), as a real root has them.
#[test]
fn installed_units_pass_systemd_analyze_verify() -> Result<()> {
    let root = tempfile::tempdir()?;
    let out = bosun().args(["install", "--root"]).arg(root.path()).output()?;
    ensure!(out.status.success(), "bosun install: {}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("systemctl daemon-reload && systemctl enable --now"), "{printed}");
    for file in [
        "usr/local/bin/bosun",
        "etc/systemd/system/bosun-agent.service",
        "etc/systemd/system/bosun-control.service",
        "etc/bosun/kubelet-config.yaml",
        "etc/bosun/agent.env",
        "etc/bosun/control.env",
    ] {
        assert!(root.path().join(file).is_file(), "{file} installed");
    }
    std::fs::create_dir_all(root.path().join("usr/lib/systemd/system"))?;
    let copied = Command::new("cp")
        .args(["-rT", "/lib/systemd/system"])
        .arg(root.path().join("usr/lib/systemd/system"))
        .status()?;
    ensure!(copied.success(), "copying the host's units");
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.path().display()))
        .args(["bosun-agent.service", "bosun-control.service"])
        .output()
        .context("running systemd-analyze (scripts/setup.sh installs it)")?;
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "systemd-analyze verify failed: {complaints}");
    assert!(complaints.trim().is_empty(), "systemd-analyze verify warned: {complaints}");
    // A second install keeps the edited config and replaces the binary.
    std::fs::write(root.path().join("etc/bosun/agent.env"), "BOSUN_AGENT_ARGS=--node-ip 10.0.0.9\n")?;
    let again = bosun().args(["install", "--root"]).arg(root.path()).output()?;
    ensure!(again.status.success(), "second bosun install: {}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/bosun/agent.env"))?,
        "BOSUN_AGENT_ARGS=--node-ip 10.0.0.9\n"
    );
    Ok(())
}
