//! Namespace deletion survives `kill -9`: `bosun control` runs as a real
//! child process; a namespace with 300 ConfigMaps is deleted and the process
//! is killed with SIGKILL while the namespace controller is emptying it (or
//! right after the DELETE returned), then restarted on the same data
//! directory. The namespace must end up gone with nothing left in it, and a
//! namespace re-created under the same name must be empty.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

const CONFIG_MAPS: usize = 300;
/// Generous: a loaded 2-core machine running a debug build.
const DEADLINE: Duration = Duration::from_secs(180);

/// A `bosun control` child process; killed on drop.
struct Control {
    child: Child,
    base: String,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Control {
    /// Starts `bosun control` on `dir` and waits until it serves.
    async fn start(dir: &Path, http: &reqwest::Client) -> Result<Control> {
        let kubeconfig = dir.join("kubeconfig");
        match std::fs::remove_file(&kubeconfig) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let log = File::options().create(true).append(true).open(dir.join("control.log"))?;
        let child = Command::new(env!("CARGO_BIN_EXE_bosun"))
            .args(["control", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawn bosun control")?;
        let mut control = Control { child, base: String::new() };
        control.base = eventually("kubeconfig written", || async {
            let Ok(text) = tokio::fs::read_to_string(&kubeconfig).await else { return Ok(None) };
            let Ok(config) = serde_json::from_str::<Value>(&text) else { return Ok(None) };
            Ok(config.pointer("/clusters/0/cluster/server").and_then(Value::as_str).map(str::to_string))
        })
        .await?;
        let url = format!("{}/api/v1/namespaces/default", control.base);
        eventually("apiserver serving", || async {
            Ok(http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()))
        })
        .await?;
        Ok(control)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL, as a crash or the OOM killer would.
    fn kill9(mut self) -> Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL)?;
        self.child.wait()?;
        Ok(())
    }
}

/// Polls `check` (no fixed sleeps as synchronisation: each round asks the
/// API again) until it yields `Some`, or fails after [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {DEADLINE:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send(req: reqwest::RequestBuilder, what: &str) -> Result<Value> {
    let resp = req.send().await.with_context(|| what.to_string())?;
    let status = resp.status();
    let body: Value = resp.json().await.with_context(|| format!("{what}: body"))?;
    if !status.is_success() {
        bail!("{what}: {status}: {body}");
    }
    Ok(body)
}

async fn create_namespace(c: &Control, http: &reqwest::Client, ns: &str) -> Result<()> {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    send(http.post(c.url("/api/v1/namespaces")).json(&body), "create namespace").await?;
    Ok(())
}

/// Creates the ConfigMaps, 16 requests in flight.
async fn create_config_maps(c: &Control, http: &reqwest::Client, ns: &str) -> Result<()> {
    let url = c.url(&format!("/api/v1/namespaces/{ns}/configmaps"));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONFIG_MAPS {
        if tasks.len() >= 16 {
            tasks.join_next().await.context("task")???;
        }
        let (http, url) = (http.clone(), url.clone());
        tasks.spawn(async move {
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")},
                "data": {"i": i.to_string()}});
            send(http.post(&url).json(&body), "create configmap").await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// ConfigMaps in `ns` and the list's resourceVersion.
async fn config_maps(c: &Control, http: &reqwest::Client, ns: &str) -> Result<(usize, String)> {
    let list = send(http.get(c.url(&format!("/api/v1/namespaces/{ns}/configmaps"))), "list configmaps").await?;
    // The apiserver's own `kube-root-ca.crt` is not one of the test's.
    let ours = |cm: &&Value| cm.pointer("/metadata/name").and_then(Value::as_str) != Some("kube-root-ca.crt");
    let count = list["items"].as_array().map_or(0, |items| items.iter().filter(ours).count());
    Ok((count, list.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("0").to_string()))
}

/// Waits until a watch from `rv` has shown `n` ConfigMaps of `ns` deleted:
/// deletion is under way, and (the stream being in revision order) not all
/// were gone when that event was produced.
async fn deletions(c: &Control, http: &reqwest::Client, ns: &str, rv: &str, n: usize) -> Result<()> {
    let url = c.url(&format!("/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}"));
    let mut resp = http.get(&url).send().await?.error_for_status()?;
    let mut buf = Vec::new();
    let mut seen = 0;
    let wait = async {
        while let Some(chunk) = resp.chunk().await? {
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line)?;
                if event["type"] == "DELETED" {
                    seen += 1;
                    if seen >= n {
                        return Ok(());
                    }
                }
            }
        }
        bail!("watch ended after {seen} of {n} ConfigMap deletions")
    };
    tokio::time::timeout(DEADLINE, wait).await.context("ConfigMaps not deleted in time")?
}

async fn delete_namespace(c: &Control, http: &reqwest::Client, ns: &str) -> Result<Value> {
    send(http.delete(c.url(&format!("/api/v1/namespaces/{ns}"))), "delete namespace").await
}

/// After the restart: the namespace goes, nothing is left, and a new
/// namespace of the same name is empty.
async fn expect_cleaned_up(c: &Control, http: &reqwest::Client, ns: &str) -> Result<()> {
    let url = c.url(&format!("/api/v1/namespaces/{ns}"));
    eventually(&format!("namespace {ns} gone"), || async {
        let status = http.get(&url).send().await?.status();
        Ok((status == reqwest::StatusCode::NOT_FOUND).then_some(()))
    })
    .await?;
    assert_eq!(config_maps(c, http, ns).await?.0, 0, "ConfigMaps of {ns} outlived it");
    create_namespace(c, http, ns).await?;
    assert_eq!(config_maps(c, http, ns).await?.0, 0, "a new namespace {ns} inherited ConfigMaps");
    let fresh = send(http.get(&url), "get namespace").await?;
    assert_eq!(fresh.pointer("/status/phase").and_then(Value::as_str), Some("Active"));
    Ok(())
}

/// Reads the killed process's store directly: ConfigMaps left in `ns`, and
/// whether the namespace itself is still stored.
async fn stored_state(dir: &Path, ns: &str) -> Result<(usize, bool)> {
    let store = bosun_control::store::Store::open(&dir.join("data/store.db"))?;
    let (left, _) = store.list(&format!("/registry/core/configmaps/{ns}/")).await?;
    let namespace = store.get(&format!("/registry/core/namespaces/{ns}")).await?;
    store.close().await;
    Ok((left.len(), namespace.is_some()))
}

fn show_log(dir: &Path) {
    if let Ok(log) = std::fs::read_to_string(dir.join("control.log")) {
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("--- control.log (last lines) ---");
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
    }
}

/// When to kill `bosun control` after the namespace DELETE was sent.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// As soon as the DELETE returned.
    DeleteReturned,
    /// Once this many ConfigMaps are seen deleted (the DELETE not awaited).
    Deleted(usize),
}

async fn run_case(dir: PathBuf, ns: &str, kill_at: KillAt) -> Result<()> {
    let http = admin_client(&dir)?;
    let control = Control::start(&dir, &http).await?;
    create_namespace(&control, &http, ns).await?;
    create_config_maps(&control, &http, ns).await?;
    let (count, rv) = config_maps(&control, &http, ns).await?;
    assert_eq!(count, CONFIG_MAPS);
    if let KillAt::Deleted(n) = kill_at {
        // The DELETE is not awaited: an apiserver that deleted contents
        // inside the request would be killed in the middle of it too.
        let (http2, url) = (http.clone(), control.url(&format!("/api/v1/namespaces/{ns}")));
        let delete = tokio::spawn(async move { http2.delete(url).send().await });
        deletions(&control, &http, ns, &rv, n).await?;
        control.kill9()?;
        delete.abort();
    } else {
        let marked = delete_namespace(&control, &http, ns).await?;
        assert!(marked.pointer("/metadata/deletionTimestamp").is_some(), "{marked}");
        assert_eq!(marked.pointer("/status/phase").and_then(Value::as_str), Some("Terminating"));
        control.kill9()?;
    }
    let (remaining, ns_stored) = stored_state(&dir, ns).await?;
    eprintln!("killed with {remaining} of {CONFIG_MAPS} ConfigMaps left; namespace stored: {ns_stored}");
    assert!(ns_stored || remaining == 0, "{remaining} ConfigMaps outlived namespace {ns} in the store");

    let control = Control::start(&dir, &http).await?;
    expect_cleaned_up(&control, &http, ns).await
}

/// An HTTPS client with an admin identity from the cluster CA, made here
/// before control's first start (control then reuses it).
fn admin_client(dir: &Path) -> Result<reqwest::Client> {
    let ca = bosun_control::auth::ca::Ca::load_or_create(&dir.join("data/pki"))?;
    let admin = bosun_control::auth::serving::admin(&ca)?;
    let identity = reqwest::Identity::from_pem(format!("{}{}", admin.cert_pem, admin.key_pem).as_bytes())?;
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem().as_bytes())?)
        .identity(identity)
        .build()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_killed_mid_way_finishes_after_restart() -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("bosun-ns-crash-").tempdir()?;
    let result = run_case(tmp.path().to_path_buf(), "crash", KillAt::Deleted(150)).await;
    if result.is_err() {
        show_log(tmp.path());
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_killed_at_its_first_deletion_finishes_after_restart() -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("bosun-ns-crash-").tempdir()?;
    let result = run_case(tmp.path().to_path_buf(), "crash", KillAt::Deleted(1)).await;
    if result.is_err() {
        show_log(tmp.path());
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_killed_right_after_delete_finishes_after_restart() -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("bosun-ns-crash-").tempdir()?;
    let result = run_case(tmp.path().to_path_buf(), "crash", KillAt::DeleteReturned).await;
    if result.is_err() {
        show_log(tmp.path());
    }
    result
}
