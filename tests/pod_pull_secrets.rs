//! `imagePullSecrets` on the real stack: a second `docker-registry` that
//! requires a login (htpasswd, bcrypt) holds a copy of the app image, and
//! `bosun up --insecure-registry` lets containerd pull from it over HTTP.
//! A pod with the right `kubernetes.io/dockerconfigjson` Secret runs; a pod
//! without one, with a wrong password, or naming a Secret that does not
//! exist stays in ErrImagePull/ImagePullBackOff with the registry's 401 in
//! its Failed Event (the missing Secret also gives a warning Event).
//!
//! One cluster for the whole binary.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use support::cluster::Cluster;
use support::free_port;
use support::pods::{container, wait_event, wait_pod};

const WAIT: Duration = Duration::from_secs(120);
const USER: &str = "bosun";
const PASSWORD: &str = "s3cret";
/// bcrypt (cost 4) of PASSWORD, made once with python3's crypt module.
const HTPASSWD_HASH: &str = "$2b$04$bjIze/SWtGWcHKCaeZa6s.TDJyK6VXu0HXYDVsima0yV1EiexrVXW";

/// The private registry process; killed on drop.
struct PrivateRegistry {
    child: Child,
    address: String,
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PrivateRegistry {
    fn start(dir: &Path) -> Result<PrivateRegistry> {
        let address = format!("127.0.0.1:{}", free_port());
        std::fs::create_dir_all(dir.join("data"))?;
        std::fs::write(dir.join("htpasswd"), format!("{USER}:{HTPASSWD_HASH}\n"))?;
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\nhttp:\n  addr: {address}\nauth:\n  htpasswd:\n    realm: bosun-test\n    path: {htpasswd}\n",
            data = dir.join("data").display(),
            htpasswd = dir.join("htpasswd").display(),
        );
        std::fs::write(dir.join("config.yml"), config)?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry")?;
        let registry = PrivateRegistry { child, address };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(&registry.address).is_err() {
            ensure!(Instant::now() < deadline, "private registry not listening within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(registry)
    }
}

/// The status line of an anonymous `GET /v2/`.
fn anonymous_status(address: &str) -> Result<String> {
    let mut conn = TcpStream::connect(address)?;
    conn.set_read_timeout(Some(WAIT))?;
    conn.write_all(b"GET /v2/ HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(answer.lines().next().unwrap_or("").to_string())
}

fn waiting(pod: &Value) -> (String, String) {
    let state = &container(pod)["state"]["waiting"];
    (state["reason"].as_str().unwrap_or("").to_string(), state["message"].as_str().unwrap_or("").to_string())
}

fn pod_manifest(name: &str, image: &str, secrets: &[&str]) -> String {
    let secrets: String = secrets.iter().map(|s| format!("\n  - name: {s}")).collect();
    let pull_secrets = if secrets.is_empty() { String::new() } else { format!("  imagePullSecrets:{secrets}\n") };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{pull_secrets}  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {image}\n    imagePullPolicy: Always\n    command: [\"sleep\", \"3600\"]\n"
    )
}

/// The pod waits in a pull error whose message carries the registry's 401.
fn assert_refused(cluster: &Cluster, name: &str) -> Result<()> {
    let pod = wait_pod(cluster, name, "in a pull error", WAIT, |p| {
        let (reason, _) = waiting(p);
        reason == "ErrImagePull" || reason == "ImagePullBackOff"
    })?;
    ensure!(pod["status"]["phase"] == "Pending", "{name}: phase {}", pod["status"]["phase"]);
    // The waiting message soon becomes the back-off; the pull's own error is in the Event.
    let message = wait_event(cluster, name, "Failed", "401", WAIT)?;
    println!("{name}: {message}");
    Ok(())
}

#[test]
fn image_pull_secrets_against_a_registry_that_requires_a_login() -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("bosun-private-registry-").tempdir()?;
    let private = PrivateRegistry::start(tmp.path())?;
    let cluster = Cluster::start_with("pullsecret-node", &["--insecure-registry".into(), private.address.clone()])?;

    // Anonymous reads of the private registry are refused.
    let status = anonymous_status(&private.address)?;
    ensure!(status.starts_with("HTTP/1.1 401"), "anonymous /v2/: {status:?}");
    let image = format!("{}/private/app:1.0", private.address);
    let copy = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--dest-creds"])
        .arg(format!("{USER}:{PASSWORD}"))
        .arg(format!("docker://{}/bosun/app:1.0", cluster.registry))
        .arg(format!("docker://{image}"))
        .stdout(Stdio::null())
        .output()
        .context("skopeo copy")?;
    if !copy.status.success() {
        bail!("skopeo copy: {}", String::from_utf8_lossy(&copy.stderr));
    }

    let server = format!("--docker-server={}", private.address);
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &server,
        &format!("--docker-username={USER}"),
        &format!("--docker-password={PASSWORD}"),
    ])?;
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "docker-registry",
        "wrongcred",
        &server,
        &format!("--docker-username={USER}"),
        "--docker-password=not-the-password",
    ])?;

    let manifests = [
        pod_manifest("private-ok", &image, &["regcred"]),
        pod_manifest("private-anonymous", &image, &[]),
        pod_manifest("private-wrong", &image, &["wrongcred"]),
        pod_manifest("private-missing", &image, &["no-such-secret"]),
    ]
    .join("---\n");
    let (ok, out, err) = cluster.apply_stdin(&manifests)?;
    ensure!(ok, "kubectl apply: {out}{err}");

    let running = wait_pod(&cluster, "private-ok", "Running", WAIT, |p| p["status"]["phase"] == "Running")?;
    ensure!(container(&running)["ready"] == true, "private-ok ready: {:#}", container(&running));

    assert_refused(&cluster, "private-anonymous")?;
    assert_refused(&cluster, "private-wrong")?;
    assert_refused(&cluster, "private-missing")?;
    wait_event(&cluster, "private-missing", "FailedToRetrieveImagePullSecret", "no-such-secret", WAIT)?;
    Ok(())
}
