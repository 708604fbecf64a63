//! Child daemons: started in their own process group (so a Ctrl-C aimed at
//! `bosun up` does not reach them before it has cleaned up), logging to a file,
//! stopped with SIGTERM and, after a grace period, SIGKILL.
//!
//! Every daemon gets SIGTERM from the kernel when its parent dies
//! (`PR_SET_PDEATHSIG`), so a SIGKILLed `bosun up` does not leave its
//! children running. The kernel sends it when the *thread* that spawned the
//! child exits: spawn only from threads that live as long as the process
//! (the main thread or a tokio worker, never a `spawn_blocking` thread).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::{Error, Result};

/// A running child daemon.
#[derive(Debug)]
pub struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Spawns `binary args...` with stdout and stderr appended to `log`.
    pub fn spawn(name: &'static str, binary: &str, args: &[String], log: &Path) -> Result<Daemon> {
        let spawn_err = |source| Error::Spawn { daemon: name, binary: binary.to_string(), source };
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Write { path: parent.to_path_buf(), source })?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| Error::Write { path: log.to_path_buf(), source })?;
        let stderr = file.try_clone().map_err(spawn_err)?;
        let mut command = Command::new(binary);
        die_with_parent(&mut command);
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_err)?;
        Ok(Daemon { name, child, log: log.to_path_buf() })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the daemon's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Fails with the log tail if the daemon has exited.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(Error::Exited { daemon: self.name, status, log_tail: self.log_tail(20) }),
            _ => Ok(()),
        }
    }

    /// SIGTERM, then SIGKILL after `grace`. Waits for the exit.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
            tracing::warn!(daemon = self.name, "did not stop within {grace:?}; killing");
        }
        let _ = self.child.kill().await;
    }
}

/// The signal a daemon gets when `bosun up` dies: SIGTERM, the same
/// orderly stop `bosun down` starts with (containerd and the agent leave
/// pods running when they stop; the next `bosun up` adopts them).
pub const PARENT_DEATH_SIGNAL: Signal = Signal::SIGTERM;

/// Makes the child get [`PARENT_DEATH_SIGNAL`] when this process dies.
#[allow(unsafe_code)] // pre_exec: runs between fork and exec.
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure only makes async-signal-safe system calls
    // (prctl, getppid, raise) and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(PARENT_DEATH_SIGNAL)?;
            // The parent may have died between fork and prctl: then the
            // signal will never come, so act on it now.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                nix::sys::signal::raise(PARENT_DEATH_SIGNAL)?;
            }
            Ok(())
        });
    }
}

/// The last `lines` lines of a log file ("" if it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// True if `GET <path>` on the plain-HTTP server at `address` answers 200.
/// Used to wait for daemons (registry `/v2/`, apiserver `/readyz`).
pub fn http_ok(address: &str, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}
