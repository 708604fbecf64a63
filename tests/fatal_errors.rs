//! A daemon that cannot start says why in the log format it was asked
//! for: with `--log-format json` the fatal error is one JSON line (what a
//! log collector under systemd parses), with `text` anyhow's report with
//! its causes; either way the exit code is 1.

use std::process::{Command, Output};

use anyhow::{ensure, Context, Result};
use serde_json::Value;

fn control_with_bad_cidr(format: &str, data_dir: &std::path::Path) -> Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_bosun"))
        .args(["--log-format", format, "control", "--listen", "127.0.0.1:0", "--service-cidr", "not-a-cidr"])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .context("running bosun control")
}

#[test]
fn fatal_start_up_errors_follow_the_log_format() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = control_with_bad_cidr("json", &dir.path().join("json"))?;
    ensure!(out.status.code() == Some(1), "exit code 1: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines() {
        serde_json::from_str::<Value>(line).with_context(|| format!("not a JSON line: {line:?}"))?;
    }
    let last: Value = serde_json::from_str(stderr.lines().last().context("no log line at all")?)?;
    ensure!(last["level"] == "ERROR", "the fatal line is an error: {last}");
    let error = last["error"].as_str().unwrap_or_default();
    ensure!(error.contains("--service-cidr"), "the error names the flag: {last}");

    let out = control_with_bad_cidr("text", &dir.path().join("text"))?;
    ensure!(out.status.code() == Some(1), "exit code 1: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(stderr.contains("Error: --service-cidr"), "anyhow's report: {stderr}");
    Ok(())
}
