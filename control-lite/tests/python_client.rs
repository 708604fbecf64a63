//! The same CRUD, paging and watch flow as the kube-rs and kubectl tests,
//! through the official Python client (Debian's `python3-kubernetes`,
//! installed by `scripts/setup.sh`): `python_client.py` beside this file
//! runs against a real apiserver and prints one JSON object per step.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

mod support;

/// Debian's interpreter, which has the packaged client (a `python3` earlier
/// on PATH, e.g. pyenv's, may not).
const PYTHON: &str = "/usr/bin/python3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_creates_lists_pages_patches_conflicts_deletes_and_watches() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = support::start_apiserver(dir.path()).await?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python_client.py");
    let run =
        tokio::process::Command::new(PYTHON).arg(script).arg(dir.path().join("kubeconfig")).kill_on_drop(true).output();
    let output = tokio::time::timeout(Duration::from_secs(120), run).await.context("python client timed out")??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "python client failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let steps: Vec<Value> = stdout.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let step = |name: &str| -> Result<&Value> {
        steps.iter().find(|s| s["step"] == name).with_context(|| format!("step {name} missing in {stdout}"))
    };
    assert_eq!(step("created")?["data"], json!({"k": "v1"}));
    assert_eq!(step("listed")?["names"], json!(["c1"]));
    let paged = step("paged")?;
    let all = ["c1", "kube-root-ca.crt", "page-0", "page-1", "page-2", "page-3", "page-4"];
    assert_eq!((&paged["names"], &paged["pages"]), (&json!(all), &json!(4)), "pages of 2");
    assert_eq!(step("patched")?["data"], json!({"k": "v2"}));
    assert_eq!(step("conflict")?["status"], 409);
    assert_eq!(step("conflict")?["reason"], "Conflict");
    assert_eq!(step("read-deleted")?["status"], 404);
    let want: Vec<Value> = (0..5)
        .map(|i| json!(["ADDED", format!("page-{i}")]))
        .chain([json!(["MODIFIED", "c1"]), json!(["DELETED", "c1"])])
        .collect();
    assert_eq!(step("watched")?["events"], json!(want), "every change after the list, once, in order");
    api.token.cancel();
    let _ = api.server.await;
    Ok(())
}
