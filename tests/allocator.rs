//! The `bosun` binary starts jemalloc with bosun's options (`MALLOC_CONF`
//! in src/main.rs: one arena, small thread caches, quick purging; see
//! docs/architecture.md, "Agent memory"). jemalloc's `confirm_conf` echoes
//! each option source it read and every value it set.

use std::process::Command;

use anyhow::{ensure, Result};

#[test]
fn jemalloc_starts_with_bosuns_options() -> Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_bosun"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "confirm_conf:true")
        .output()?;
    ensure!(out.status.success(), "bosun --version: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let source = stderr
        .lines()
        .find(|l| l.contains("global variable malloc_conf"))
        .unwrap_or_else(|| panic!("jemalloc did not read the malloc_conf symbol:\n{stderr}"));
    for option in ["narenas:1", "tcache_max:1024", "dirty_decay_ms:1000", "muzzy_decay_ms:0"] {
        ensure!(source.contains(option), "{option} missing from {source}");
        ensure!(
            stderr.lines().any(|l| l.contains("Set conf value") && l.contains(option)),
            "{option} was not applied:\n{stderr}"
        );
    }
    Ok(())
}
