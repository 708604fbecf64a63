//! The `bosun up` child of a test cluster: started with its stdout watched
//! for the "bosun is up" banner, stopped as `bosun down` stops it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use crate::Error;

/// How long `bosun up` may take to tear the cluster down after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) struct UpProcess {
    child: Arc<Mutex<Child>>,
    bosun: PathBuf,
}

impl UpProcess {
    /// Runs `bosun <args>` and waits for its banner; its output is echoed
    /// with a `[tc<slot>]` prefix (the test harness captures it).
    pub(crate) async fn start(bosun: &Path, args: &[String], slot: u8, timeout: Duration) -> Result<UpProcess, Error> {
        let mut child = Command::new(bosun)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| Error::Io { what: format!("running {}", bosun.display()), source })?;
        let stdout = child.stdout.take();
        let up = UpProcess { child: Arc::new(Mutex::new(child)), bosun: bosun.to_path_buf() };
        let (lines_tx, mut lines) = mpsc::unbounded_channel();
        if let Some(stdout) = stdout {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    println!("[tc{slot}] {line}");
                    let _ = lines_tx.send(line);
                }
            });
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, lines.recv()).await {
                Ok(Some(line)) if line.starts_with("bosun is up") => break,
                Ok(Some(_)) => {}
                // Output ended: `bosun up` exited (checked below).
                Ok(None) => {
                    up.check_running()?;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) => return Err(Error::NotUp(timeout)),
            }
        }
        // The reader thread keeps echoing (and dropping) later lines, so
        // `bosun up` never blocks on a full pipe.
        drop(lines);
        Ok(up)
    }

    /// An error if `bosun up` has exited.
    pub(crate) fn check_running(&self) -> Result<(), Error> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        match child.try_wait() {
            Ok(Some(status)) => Err(Error::Exited { status: status.to_string() }),
            _ => Ok(()),
        }
    }

    /// SIGTERM (what `bosun down` sends), then waits for the teardown; if
    /// it hangs, SIGKILL and `bosun down --dir`, which cleans up after a
    /// dead `bosun up`.
    pub(crate) fn stop(self, dir: &Path) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("bosun up in {} did not stop within {STOP_TIMEOUT:?}; killing it", dir.display());
        let _ = child.kill();
        let _ = child.wait();
        let down = Command::new(&self.bosun).args(["down", "--dir"]).arg(dir).status();
        if !down.as_ref().is_ok_and(|status| status.success()) {
            eprintln!("bosun down --dir {} failed: {down:?}", dir.display());
        }
    }
}
