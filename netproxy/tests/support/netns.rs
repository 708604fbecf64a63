//! Throwaway network namespaces for the nft integration test and the
//! benchmark: created with `ip netns add`, removed (with every process
//! started in them) when the guard drops, even after a failed assertion.

// Shared by the test and the bench, which each use a subset.
#![allow(dead_code)]

use std::fs::File;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};

/// Runs a command to completion and fails with its stderr if it fails.
pub fn run(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning {args:?}"))?;
    if !output.status.success() {
        bail!("{args:?} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// A set of namespaces plus the background processes running in them.
pub struct Namespaces {
    names: Vec<String>,
    children: Vec<Child>,
}

impl Namespaces {
    /// Creates `bosun-np-<pid>-<suffix>` for each suffix, with `lo` up.
    pub fn create(suffixes: &[&str]) -> anyhow::Result<Self> {
        let mut namespaces = Self { names: Vec::new(), children: Vec::new() };
        for suffix in suffixes {
            let name = format!("bosun-np-{}-{suffix}", std::process::id());
            // A leftover from a killed earlier run with the same pid.
            let _ = run(&["ip", "netns", "del", &name]);
            run(&["ip", "netns", "add", &name])?;
            namespaces.names.push(name.clone());
            run(&["ip", "netns", "exec", &name, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(namespaces)
    }

    /// Full name of the namespace created for `suffix`.
    pub fn name(&self, suffix: &str) -> String {
        format!("bosun-np-{}-{suffix}", std::process::id())
    }

    /// Runs a command inside the namespace for `suffix` and waits for it.
    pub fn exec(&self, suffix: &str, args: &[&str]) -> anyhow::Result<()> {
        let name = self.name(suffix);
        let mut full = vec!["ip", "netns", "exec", name.as_str()];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Starts a background process inside the namespace for `suffix`; it is
    /// killed when the guard drops.
    pub fn spawn(&mut self, suffix: &str, args: &[&str]) -> anyhow::Result<()> {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name(suffix)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {args:?} in {suffix}"))?;
        self.children.push(child);
        Ok(())
    }

    /// The command prefix that runs a program inside `suffix`.
    pub fn prefix(&self, suffix: &str) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.name(suffix)]
    }

    /// Runs `f` on a thread that has entered the namespace for `suffix`.
    pub fn enter<T: Send>(&self, suffix: &str, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        let path = format!("/run/netns/{}", self.name(suffix));
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = File::open(&path).with_context(|| format!("opening {path}"))?;
                    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                        .with_context(|| format!("entering {path}"))?;
                    Ok(f())
                })
                .join()
                .map_err(|_| anyhow::anyhow!("thread in {path} panicked"))?
        })
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for name in &self.names {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}
