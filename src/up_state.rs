//! What `bosun up` keeps about itself in its directory: `up.lock`, held
//! for its lifetime (one `bosun up` per directory; the kernel releases it
//! however the process dies), and `up.json`: its pid, kubeconfig, node and
//! the stack's settings, so that `bosun down` can tear down a cluster whose
//! `bosun up` was killed.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bosun_stack::{CniNetwork, StackConfig};
use nix::fcntl::{Flock, FlockArg};
use serde_json::{json, Value};

use crate::supervise::leftovers::alive;

/// `up.json` in `dir`.
pub fn state_file(dir: &Path) -> PathBuf {
    dir.join("up.json")
}

/// The state `bosun up` (pid `pid`) writes.
pub fn render_state(pid: u32, kubeconfig: &Path, node: &str, stack: &StackConfig, proxy_table: &str) -> Value {
    json!({
        "pid": pid,
        "kubeconfig": kubeconfig,
        "node": node,
        "proxy_table": proxy_table,
        "stack": {
            "dir": stack.dir,
            "registry": stack.registry,
            "insecure_registries": stack.insecure_registries,
            "bridge": stack.network.bridge,
            "subnet": stack.network.subnet,
            "cni_bin_dir": stack.cni_bin_dir,
        },
    })
}

/// The stack settings of a state written by [`render_state`].
pub fn stack_of(state: &Value) -> Option<StackConfig> {
    let stack = &state["stack"];
    let text = |key: &str| stack[key].as_str().map(String::from);
    Some(StackConfig {
        dir: text("dir")?.into(),
        registry: text("registry")?,
        insecure_registries: stack["insecure_registries"]
            .as_array()?
            .iter()
            .filter_map(|r| r.as_str().map(String::from))
            .collect(),
        network: CniNetwork { bridge: text("bridge")?, subnet: text("subnet")? },
        cni_bin_dir: text("cni_bin_dir")?.into(),
    })
}

/// The proxy's nftables table of a state ("bosun" for states written
/// before it was recorded, when it could not be anything else).
pub fn proxy_table_of(state: &Value) -> String {
    state["proxy_table"].as_str().unwrap_or("bosun").to_string()
}

/// The state file of `dir`, if there is a readable one.
pub fn read_state(dir: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(state_file(dir)).ok()?).ok()
}

/// The pid of a running `bosun up` for `dir`, if any.
pub fn running_up(dir: &Path) -> Option<(i32, Value)> {
    let state = read_state(dir)?;
    let pid = i32::try_from(state["pid"].as_i64()?).ok()?;
    (pid != std::process::id() as i32 && alive(pid)).then_some((pid, state))
}

/// Takes `dir`'s lock; `None` if another process holds it.
pub fn lock_dir(dir: &Path) -> Result<Option<Flock<File>>> {
    let path = dir.join("up.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(errno).with_context(|| format!("locking {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_settings_read_back_from_the_state() {
        let stack = StackConfig {
            dir: "/var/lib/bosun/stack".into(),
            registry: "127.0.0.1:5000".into(),
            insecure_registries: vec!["10.0.0.1:5000".into()],
            network: CniNetwork { bridge: "bosun0".into(), subnet: "10.244.0.0/24".into() },
            cni_bin_dir: "/usr/lib/cni".into(),
        };
        let state = render_state(42, Path::new("/k"), "node", &stack, "bosun_t3");
        let back = stack_of(&state).expect("stack settings");
        assert_eq!(back.dir, stack.dir);
        assert_eq!(back.registry, stack.registry);
        assert_eq!(back.insecure_registries, stack.insecure_registries);
        assert_eq!(back.network, stack.network);
        assert_eq!(back.cni_bin_dir, stack.cni_bin_dir);
        assert_eq!(state["pid"], 42);
        assert!(stack_of(&json!({"pid": 1})).is_none(), "an older state has no stack settings");
        assert_eq!(proxy_table_of(&state), "bosun_t3");
        assert_eq!(proxy_table_of(&json!({"pid": 1})), "bosun", "an older state used the default table");
    }

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_dir(dir.path()).unwrap();
        assert!(first.is_some());
        // flock locks belong to the open file: a second open conflicts.
        assert!(lock_dir(dir.path()).unwrap().is_none());
        drop(first);
        assert!(lock_dir(dir.path()).unwrap().is_some());
    }
}
