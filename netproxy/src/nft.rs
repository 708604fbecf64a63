//! Applying nft scripts: the narrow [`NftApply`] trait, the real
//! [`NftCommand`] (spawns `nft -f -`, optionally behind a command prefix such
//! as `ip netns exec NS`), and a recording fake in [`testing`].

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Errors running nft.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The process could not be started.
    #[error("spawning {program:?}: {source}")]
    Spawn {
        /// Program that failed to start.
        program: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Writing the script or collecting the output failed.
    #[error("talking to {program:?}: {source}")]
    Io {
        /// Program being run.
        program: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// nft rejected the script (the transaction was not applied).
    #[error("{program:?} failed ({status}): {stderr}")]
    Rejected {
        /// Program that ran.
        program: PathBuf,
        /// Exit status.
        status: std::process::ExitStatus,
        /// What nft printed, truncated.
        stderr: String,
    },
}

/// Applies one nft script as one transaction.
pub trait NftApply: Send + Sync {
    /// Runs `script`; on error nothing in it was applied.
    fn apply(&self, script: &str) -> Result<(), NftError>;
}

/// Most bytes of nft's stderr kept in an error.
const STDERR_LIMIT: usize = 4096;

/// The real applier: `[prefix...] nft -f -` with the script on stdin.
#[derive(Debug, Clone)]
pub struct NftCommand {
    nft: PathBuf,
    prefix: Vec<OsString>,
}

impl NftCommand {
    /// Runs `nft` directly.
    pub fn new(nft: impl Into<PathBuf>) -> Self {
        Self { nft: nft.into(), prefix: Vec::new() }
    }

    /// Runs `nft` behind a command prefix, e.g. `["ip", "netns", "exec", "ns1"]`.
    pub fn with_prefix<I, S>(nft: impl Into<PathBuf>, prefix: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self { nft: nft.into(), prefix: prefix.into_iter().map(Into::into).collect() }
    }

    fn command(&self, args: &[&str]) -> (PathBuf, Command) {
        let mut parts: Vec<OsString> = self.prefix.clone();
        parts.push(self.nft.clone().into_os_string());
        parts.extend(args.iter().map(OsString::from));
        let program = PathBuf::from(&parts[0]);
        let mut command = Command::new(&parts[0]);
        command.args(&parts[1..]);
        (program, command)
    }

    /// Runs nft with `args` (no stdin) and returns its stdout; for tests
    /// and diagnostics such as `list table`, never the sync hot path.
    pub fn run(&self, args: &[&str]) -> Result<String, NftError> {
        let (program, mut command) = self.command(args);
        let output = command
            .stdin(Stdio::null())
            .output()
            .map_err(|source| NftError::Spawn { program: program.clone(), source })?;
        if !output.status.success() {
            return Err(rejected(program, output.status, &output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

fn rejected(program: PathBuf, status: std::process::ExitStatus, stderr: &[u8]) -> NftError {
    let stderr = &stderr[..stderr.len().min(STDERR_LIMIT)];
    NftError::Rejected { program, status, stderr: String::from_utf8_lossy(stderr).trim_end().to_owned() }
}

impl NftApply for NftCommand {
    fn apply(&self, script: &str) -> Result<(), NftError> {
        let (program, mut command) = self.command(&["-f", "-"]);
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| NftError::Spawn { program: program.clone(), source })?;
        let io = |source| NftError::Io { program: program.clone(), source };
        if let Some(mut stdin) = child.stdin.take() {
            // A write error (nft exited early) is reported via its status below.
            let written = stdin.write_all(script.as_bytes());
            drop(stdin);
            let output = child.wait_with_output().map_err(io)?;
            if !output.status.success() {
                return Err(rejected(program, output.status, &output.stderr));
            }
            written.map_err(io)
        } else {
            let output = child.wait_with_output().map_err(io)?;
            Err(rejected(program, output.status, &output.stderr))
        }
    }
}

/// Test doubles for [`NftApply`].
pub mod testing {
    use super::*;
    use std::sync::{Mutex, PoisonError};

    /// Records every script; fails the next N applies on request.
    #[derive(Debug, Default)]
    pub struct FakeNft {
        scripts: Mutex<Vec<String>>,
        failures: Mutex<usize>,
    }

    impl FakeNft {
        /// A fake that accepts everything.
        pub fn new() -> Self {
            Self::default()
        }

        /// Makes the next `count` applies fail (and not be recorded).
        pub fn fail_next(&self, count: usize) {
            *self.failures.lock().unwrap_or_else(PoisonError::into_inner) = count;
        }

        /// Every script applied successfully so far.
        pub fn scripts(&self) -> Vec<String> {
            self.scripts.lock().unwrap_or_else(PoisonError::into_inner).clone()
        }
    }

    impl NftApply for FakeNft {
        fn apply(&self, script: &str) -> Result<(), NftError> {
            {
                let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
                if *failures > 0 {
                    *failures -= 1;
                    return Err(NftError::Io {
                        program: PathBuf::from("fake-nft"),
                        source: std::io::Error::other("injected failure"),
                    });
                }
            }
            self.scripts.lock().unwrap_or_else(PoisonError::into_inner).push(script.to_owned());
            Ok(())
        }
    }
}
