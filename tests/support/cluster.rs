//! A whole one-node cluster for end-to-end tests and benchmarks: a `bosun up`
//! child process (stopped on drop, as `bosun down` does), with helpers to
//! drive it through the real `kubectl`, HTTPS to the apiserver with the
//! admin identity ([`super::access::Access`]), `curl` through ClusterIPs and `nft`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use super::{free_port, pause_binary};

/// The nftables table the agent's proxy programs.
pub const PROXY_TABLE: &str = "bosun";

/// A `bosun up` child; stopped (SIGTERM, as `bosun down` does) on drop.
pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub registry: String,
    /// apiserver address (`host:port`, HTTPS; [`Cluster::access`] has the identity).
    pub api: String,
    /// `bosun up`'s arguments (to run it again on the same directory).
    args: Vec<String>,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
        // `bosun up` removes every mount it or its pods made below its
        // directory (volumes' tmpfs included); a leftover is a bug, cleaned
        // up here so the machine stays usable.
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let left = bosun_stack::teardown::mounts_below(&mountinfo, &self.dir);
        if !left.is_empty() {
            let _ = bosun_stack::teardown::unmount_below(&self.dir);
            if !std::thread::panicking() {
                panic!("mounts left under {} after bosun up stopped: {left:?}", self.dir.display());
            }
        }
    }
}

/// The `bosun` binary under test.
pub fn bosun() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bosun"))
}

fn up_args(dir: &Path, registry: &str, api: &str, kubelet_port: u16, id: u32, node: &str) -> Vec<String> {
    [
        "up",
        "--dir",
        &dir.display().to_string(),
        "--registry",
        registry,
        "--listen",
        api,
        "--pod-cidr",
        &format!("10.202.{id}.0/24"),
        "--cluster-cidr",
        "10.202.0.0/16",
        "--service-cidr",
        "10.96.0.0/16",
        "--bridge",
        &format!("bse{id}"),
        "--kubelet-port",
        &kubelet_port.to_string(),
        "--node-name",
        node,
        "--pause-binary",
        &pause_binary().display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Cluster {
    /// Runs `bosun up` in a fresh temp dir with node `node` and waits for
    /// its "bosun is up" banner; checks that a second `up` is harmless.
    pub fn start(node: &str) -> Result<Cluster> {
        Cluster::start_with(node, &[])
    }

    /// [`Cluster::start`] with more `bosun up` arguments.
    pub fn start_with(node: &str, extra: &[String]) -> Result<Cluster> {
        let tmp = tempfile::Builder::new().prefix("bosun-e2e-").tempdir()?;
        let dir = tmp.path().to_path_buf();
        let registry = format!("127.0.0.1:{}", free_port());
        let api = format!("127.0.0.1:{}", free_port());
        let id = std::process::id() % 200;
        let mut args = up_args(&dir, &registry, &api, free_port(), id, node);
        args.extend_from_slice(extra);
        let mut cluster = Cluster {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            registry,
            api,
            args: args.clone(),
            child: None,
            _tmp: tmp,
        };
        cluster.run_up()?;
        ensure!(cluster.kubeconfig.exists(), "kubeconfig written");
        // Running it again while it runs is harmless.
        let again = bosun().args(&args).output()?;
        ensure!(again.status.success(), "second up: {}", String::from_utf8_lossy(&again.stderr));
        ensure!(String::from_utf8_lossy(&again.stdout).contains("already up"), "second up says it is already up");
        Ok(cluster)
    }

    /// Starts `bosun up` with this cluster's arguments and waits for its
    /// "bosun is up" banner (120 s at most).
    fn run_up(&mut self) -> Result<()> {
        let mut child = bosun().args(&self.args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
        let stdout = child.stdout.take().context("up stdout")?;
        self.child = Some(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("[bosun up] {line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.starts_with("bosun is up") => return Ok(()),
                Ok(_) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => bail!("bosun up exited before it was up"),
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("bosun up exited with {status}");
            }
            ensure!(Instant::now() < deadline, "bosun up not up within 120 s");
        }
    }

    /// SIGKILLs `bosun up` (no clean-up runs) and reaps it.
    pub fn kill_up(&mut self) -> Result<()> {
        let mut child = self.child.take().context("bosun up is running")?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// The pod bridge's name.
    pub fn bridge(&self) -> String {
        self.args.iter().skip_while(|a| *a != "--bridge").nth(1).cloned().unwrap_or_default()
    }

    /// Runs `bosun down` on this cluster's directory.
    pub fn down(&self) -> Result<String> {
        let out = bosun().args(["down", "--dir", &self.dir.display().to_string()]).output()?;
        ensure!(out.status.success(), "bosun down: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `bosun up` again on the same directory, with the same arguments.
    pub fn up_again(&mut self) -> Result<()> {
        ensure!(self.child.is_none(), "bosun up still runs");
        self.run_up()
    }

    /// The admin identity of the kubeconfig `bosun up` wrote.
    pub fn access(&self) -> Result<super::access::Access> {
        super::access::Access::from_kubeconfig(&self.kubeconfig)
    }

    pub fn kubectl(&self, args: &[&str]) -> Result<(bool, String, String)> {
        let out = Command::new("kubectl").env("KUBECONFIG", &self.kubeconfig).args(args).output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        ))
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let (ok, out, err) = self.kubectl(args)?;
        ensure!(ok, "kubectl {args:?} failed: {err}{out}");
        Ok(out)
    }

    pub fn json(&self, args: &[&str]) -> Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        Ok(serde_json::from_str(&self.kubectl_ok(&all)?)?)
    }

    pub fn apply_stdin(&self, manifest: &str) -> Result<(bool, String, String)> {
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        std::io::Write::write_all(child.stdin.as_mut().context("stdin")?, manifest.as_bytes())?;
        drop(child.stdin.take());
        let out = child.wait_with_output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        ))
    }

    /// Running, ready, not deleted pods with label `selector`: (name, ip).
    pub fn running_pods(&self, selector: &str) -> Result<Vec<(String, String)>> {
        let pods = self.json(&["get", "pods", "-l", selector])?;
        Ok(pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| p["status"]["containerStatuses"][0]["ready"] == true)
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                    p["status"]["podIP"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }

    /// Waits until exactly `n` pods of app=web run and are ready.
    pub fn wait_running(&self, n: usize, timeout: Duration) -> Result<Vec<(String, String)>> {
        let deadline = Instant::now() + timeout;
        loop {
            let pods = self.running_pods("app=web")?;
            if pods.len() == n {
                return Ok(pods);
            }
            ensure!(
                Instant::now() < deadline,
                "{} of {n} pods running after {timeout:?}: {}",
                pods.len(),
                self.kubectl_ok(&["get", "pods", "-o", "wide"])?
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn cri_socket(&self) -> PathBuf {
        self.dir.join("stack/containerd/containerd.sock")
    }

    /// `examples/web.yaml` (a 3-pod Deployment `web` and its Service) with
    /// this cluster's registry.
    pub fn web_manifest(&self) -> Result<String> {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/web.yaml"))?;
        Ok(text.replace("127.0.0.1:5000", &self.registry))
    }

    /// Pid of the `bosun up` process.
    pub fn up_pid(&self) -> Result<i32> {
        Ok(self.child.as_ref().context("bosun up is running")?.id() as i32)
    }

    /// Pids of the `bosun control` and `bosun agent` children of `bosun up`.
    pub fn component_pids(&self) -> Result<(i32, i32)> {
        let up = self.child.as_ref().context("bosun up is running")?.id();
        let (mut control, mut agent) = (None, None);
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            // `pid (comm) state ppid ...`
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if ppid != Some(up.to_string().as_str()) {
                continue;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            match cmdline.split(|b| *b == 0).nth(1) {
                Some(b"control") => control = Some(pid),
                Some(b"agent") => agent = Some(pid),
                _ => {}
            }
        }
        Ok((control.context("no bosun control child")?, agent.context("no bosun agent child")?))
    }
}

/// CPU time (user + system) used so far by process `pid`, in clock ticks.
pub fn cpu_ticks(pid: i32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat.rsplit_once(')').context("stat format")?.1.split_whitespace().collect();
    // After `(comm)`: state is field 3, utime 14 and stime 15 (1-based).
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

/// Share of one core `pid` used over `window`, in percent.
pub fn cpu_percent(pid: i32, window: Duration) -> Result<f64> {
    let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
    let before = cpu_ticks(pid)?;
    let started = Instant::now();
    std::thread::sleep(window);
    let used = cpu_ticks(pid)?.saturating_sub(before) as f64 / ticks_per_second;
    Ok(100.0 * used / started.elapsed().as_secs_f64())
}

/// Resident memory of `pid` in MiB (VmRSS).
pub fn rss_mib(pid: i32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("VmRSS")?;
    let kib: f64 = line.split_whitespace().nth(1).context("VmRSS value")?.parse()?;
    Ok(kib / 1024.0)
}

/// One HTTP GET from the host (e.g. to a ClusterIP), `timeout` at most.
pub fn get_within(url: &str, timeout: Duration) -> Result<String> {
    let max_time = format!("{:.3}", timeout.as_secs_f64());
    let out = Command::new("curl").args(["-sS", "--noproxy", "*", "--max-time", &max_time, url]).output()?;
    ensure!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One HTTP GET from the host, 2 s at most.
pub fn get(url: &str) -> Result<String> {
    get_within(url, Duration::from_secs(2))
}

/// The proxy's nftables table as text.
pub fn nft_table() -> Result<String> {
    let out = Command::new("nft").args(["list", "table", "ip", PROXY_TABLE]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
