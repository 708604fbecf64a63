//! Throwaway etcd clusters on loopback for tests: Debian's `/usr/bin/etcd`
//! (`etcd-server`; `BOSUN_ETCD_BINARY` overrides it), one process per
//! member, each with its own data dir in a temp dir and free loopback
//! ports. No root needed.
//!
//! ```no_run
//! let mut cluster = bosun_testing::etcd::EtcdCluster::start(3).expect("etcd");
//! println!("--datastore-endpoint {}", cluster.endpoints().join(","));
//! cluster.kill(0).expect("kill -9 one member"); // the other two keep quorum
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::Error;

/// How long a cluster may take to become healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(60);
/// Attempts with fresh ports when a member could not start (a port taken
/// between picking and binding).
const ATTEMPTS: usize = 3;

/// One member's process and addresses.
#[derive(Debug)]
struct Member {
    name: String,
    client_url: String,
    peer_url: String,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// An etcd cluster of child processes, killed (and its data removed) on drop.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `size` members and waits until every one reports healthy.
    pub fn start(size: usize) -> Result<EtcdCluster, Error> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match EtcdCluster::try_start(size) {
                Ok(cluster) => return Ok(cluster),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or(Error::Etcd("no attempt made".into())))
    }

    fn try_start(size: usize) -> Result<EtcdCluster, Error> {
        let dir = tempfile::Builder::new()
            .prefix("bosun-etcd-")
            .tempdir()
            .map_err(|source| Error::Io { what: "etcd temp dir".into(), source })?;
        let ports = free_ports(size.saturating_mul(2))?;
        let members: Vec<Member> = (0..size)
            .map(|i| {
                let name = format!("m{i}");
                Member {
                    client_url: format!("http://127.0.0.1:{}", ports[2 * i]),
                    peer_url: format!("http://127.0.0.1:{}", ports[2 * i + 1]),
                    data_dir: dir.path().join(&name),
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    child: None,
                }
            })
            .collect();
        let mut cluster = EtcdCluster { members, dir };
        for i in 0..size {
            cluster.spawn(i)?;
        }
        cluster.wait_healthy(HEALTHY_WITHIN)?;
        Ok(cluster)
    }

    /// Client URLs of every member (killed ones included).
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// The temp dir holding the members' data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn initial_cluster(&self) -> String {
        self.members.iter().map(|m| format!("{}={}", m.name, m.peer_url)).collect::<Vec<_>>().join(",")
    }

    /// Starts member `i` (again: it rejoins from its data dir).
    pub fn spawn(&mut self, i: usize) -> Result<(), Error> {
        let initial = self.initial_cluster();
        let binary = std::env::var_os("BOSUN_ETCD_BINARY").unwrap_or_else(|| "/usr/bin/etcd".into());
        let member = self.members.get_mut(i).ok_or_else(|| Error::Etcd(format!("no member {i}")))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .map_err(|source| Error::Io { what: format!("etcd log {}", member.log.display()), source })?;
        let log_err = log.try_clone().map_err(|source| Error::Io { what: "etcd log".into(), source })?;
        let child = Command::new(&binary)
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&member.data_dir)
            .args(["--listen-client-urls", &member.client_url, "--advertise-client-urls", &member.client_url])
            .args(["--listen-peer-urls", &member.peer_url, "--initial-advertise-peer-urls", &member.peer_url])
            .args(["--initial-cluster", &initial, "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "bosun-test"])
            // Twice etcd's defaults: a loaded 2-core machine fsyncing
            // several clusters must not miss heartbeats into elections.
            .args(["--heartbeat-interval", "200", "--election-timeout", "2000"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| Error::Io { what: format!("running {}", Path::new(&binary).display()), source })?;
        member.child = Some(child);
        Ok(())
    }

    /// Kills member `i` with SIGKILL and reaps it.
    pub fn kill(&mut self, i: usize) -> Result<(), Error> {
        let member = self.members.get_mut(i).ok_or_else(|| Error::Etcd(format!("no member {i}")))?;
        if let Some(mut child) = member.child.take() {
            let pid = i32::try_from(child.id()).map_err(|_| Error::Etcd("pid out of range".into()))?;
            // ESRCH: it is gone already, which is the goal.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            child.wait().map_err(|source| Error::Io { what: format!("reaping etcd {}", member.name), source })?;
        }
        Ok(())
    }

    /// Waits until every running member answers `etcdctl endpoint health`.
    pub fn wait_healthy(&mut self, within: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + within;
        loop {
            for member in &mut self.members {
                if let Some(child) = &mut member.child {
                    if let Ok(Some(status)) = child.try_wait() {
                        let log = std::fs::read_to_string(&member.log).unwrap_or_default();
                        let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join("\n");
                        return Err(Error::Etcd(format!("member {} exited ({status}): {tail}", member.name)));
                    }
                }
            }
            let running: Vec<String> =
                self.members.iter().filter(|m| m.child.is_some()).map(|m| m.client_url.clone()).collect();
            if etcdctl(&running, &["endpoint", "health"]).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Etcd(format!("not healthy within {within:?}: {}", running.join(","))));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `etcdctl` against every member; its stdout.
    pub fn etcdctl(&self, args: &[&str]) -> Result<String, Error> {
        etcdctl(&self.endpoints(), args)
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            let _ = self.kill(i);
        }
    }
}

/// Runs `etcdctl --endpoints <endpoints> <args>` (v3 API); its stdout.
pub fn etcdctl(endpoints: &[String], args: &[&str]) -> Result<String, Error> {
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(["--command-timeout=5s", "--dial-timeout=2s"])
        .args(args)
        .output()
        .map_err(|source| Error::Io { what: "running etcdctl".into(), source })?;
    if !output.status.success() {
        return Err(Error::Etcd(format!(
            "etcdctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `n` distinct free loopback ports (held open together while picked).
fn free_ports(n: usize) -> Result<Vec<u16>, Error> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Io { what: "picking a free port".into(), source })?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Io { what: "picking a free port".into(), source })
}
