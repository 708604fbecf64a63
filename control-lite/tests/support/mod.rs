//! Shared by control-lite's integration tests: an in-process apiserver on
//! 127.0.0.1:0 (HTTPS, with the cluster CA of the directory's `pki/`) over a
//! store in a given directory, with an admin kubeconfig for it written there
//! and helpers for clients with that identity.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bosun_control::apiserver::{serve, ApiConfig, ApiState};
use bosun_control::auth::ca::{Ca, Credential};
use bosun_control::auth::serving;
use bosun_control::store::Store;
use tokio_util::sync::CancellationToken;

pub struct Apiserver {
    pub store: Store,
    pub addr: SocketAddr,
    pub token: CancellationToken,
    pub server: tokio::task::JoinHandle<()>,
    pub state: Arc<ApiState>,
    /// The cluster CA (PEM) and an admin (`system:masters`) identity.
    pub ca_pem: String,
    pub admin: Credential,
}

impl Apiserver {
    /// `https://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// A reqwest client builder trusting the CA, with the admin identity.
    pub fn http_builder(&self) -> anyhow::Result<reqwest::ClientBuilder> {
        let identity =
            reqwest::Identity::from_pem(format!("{}{}", self.admin.cert_pem, self.admin.key_pem).as_bytes())?;
        Ok(reqwest::Client::builder()
            .no_proxy()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes())?)
            .identity(identity))
    }

    /// [`Apiserver::http_builder`] with a 60 s timeout.
    pub fn http(&self) -> anyhow::Result<reqwest::Client> {
        Ok(self.http_builder()?.timeout(std::time::Duration::from_secs(60)).build()?)
    }

    /// A kube-rs client with the admin identity.
    pub async fn kube_client(&self) -> anyhow::Result<kube::Client> {
        let url = format!("https://{}", self.addr);
        let config = bosun_control::apiserver::kubeconfig::kube_config(&url, &self.ca_pem, &self.admin).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// A TLS connection with the admin identity (for raw HTTP).
    pub async fn connect(&self) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let config = bosun_control::auth::tls::client_config(&self.ca_pem, Some(&self.admin))?;
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        let name = rustls_pki_types::ServerName::IpAddress(self.addr.ip().into());
        Ok(tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?)
    }
}

/// Opens (or reopens, for restart tests) `dir/store.db` and serves it
/// (with the bearer tokens of `dir/tokens.csv` if there is one).
pub async fn start_apiserver(dir: &Path) -> anyhow::Result<Apiserver> {
    start_apiserver_with(dir, ApiConfig::default()).await
}

/// Like [`start_apiserver`] with the given limits.
pub async fn start_apiserver_with(dir: &Path, config: ApiConfig) -> anyhow::Result<Apiserver> {
    start_apiserver_custom(dir, config, |state| state).await
}

/// Like [`start_apiserver_with`], with `customize` applied to the state.
pub async fn start_apiserver_custom(
    dir: &Path,
    config: ApiConfig,
    customize: impl FnOnce(ApiState) -> ApiState,
) -> anyhow::Result<Apiserver> {
    start_apiserver_on(dir, Store::open(&dir.join("store.db"))?, config, customize).await
}

/// Like [`start_apiserver_custom`] over `store` (several apiservers may
/// share one store, as `bosun control` processes share one etcd); `dir`
/// holds the PKI and kubeconfig.
pub async fn start_apiserver_on(
    dir: &Path,
    store: Store,
    config: ApiConfig,
    customize: impl FnOnce(ApiState) -> ApiState,
) -> anyhow::Result<Apiserver> {
    let ca = Ca::load_or_create(&dir.join("pki"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // Static tokens when the test put a `tokens.csv` there.
    let tokens = dir.join("tokens.csv");
    let sa_key = Arc::new(bosun_control::auth::sa_token::key::SigningKey::load_or_create(&dir.join("pki"))?);
    let security = serving::security(
        &ca,
        addr,
        None,
        "10.96.0.1".parse()?,
        tokens.exists().then_some(tokens.as_path()),
        sa_key.clone(),
    )?;
    let token = CancellationToken::new();
    let state = Arc::new(customize(
        ApiState::new(store.clone(), "10.96.0.0/16".parse()?, addr.to_string(), token.clone())
            .with_config(config)
            .with_service_account_key(sa_key)
            .with_issuer_discovery(&bosun_control::apiserver::oidc::default_jwks_uri(&addr.to_string()))
            .with_root_ca(ca.cert_pem().to_string()),
    ));
    let server_token = token.clone();
    let server_state = state.clone();
    let server = tokio::spawn(async move {
        let state = server_state;
        if let Err(e) = serve(listener, state, security, server_token).await {
            eprintln!("apiserver: {e}");
        }
    });
    let admin = serving::admin(&ca)?;
    let ca_pem = ca.cert_pem().to_string();
    bosun_control::apiserver::kubeconfig::write_kubeconfig(
        &dir.join("kubeconfig"),
        &format!("https://{addr}"),
        &ca_pem,
        &admin,
    )?;
    Ok(Apiserver { store, addr, token, server, state, ca_pem, admin })
}

/// Polls `check` every 100 ms until it yields `Some`, for up to `within`;
/// the last error is in the timeout message.
pub async fn eventually<T, F, Fut>(what: &str, within: std::time::Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what} (last error: {last_error:?})");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Runs the real kubectl against the kubeconfig in `dir` (90 s at most).
pub async fn kubectl(dir: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    use anyhow::Context;
    let run = tokio::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--cache-dir")
        .arg(dir.join("kube-cache"))
        .args(args)
        .output();
    tokio::time::timeout(std::time::Duration::from_secs(90), run)
        .await
        .context("kubectl timed out")?
        .context("run kubectl")
}

/// [`kubectl`] that must succeed; returns its stdout.
pub async fn kubectl_ok(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = kubectl(dir, args).await?;
    if !out.status.success() {
        anyhow::bail!("kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Cancels `token` and waits (10 s each at most) for the tasks to end.
pub async fn stop(token: CancellationToken, tasks: Vec<tokio::task::JoinHandle<()>>) {
    token.cancel();
    for task in tasks {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
    }
}

/// An in-process control plane for a test: the apiserver (answering before
/// this returns), optionally the supervised scheduler and every controller,
/// plus any test tasks pushed onto `tasks`.
pub struct Plane {
    pub dir: tempfile::TempDir,
    pub client: kube::Client,
    pub token: CancellationToken,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Plane {
    /// The apiserver only (`RUST_LOG=bosun_control=debug` shows what it does).
    pub async fn apiserver() -> anyhow::Result<Plane> {
        Plane::apiserver_with(|state| state).await
    }

    /// [`Plane::apiserver`] with `customize` applied to its state.
    pub async fn apiserver_with(customize: impl FnOnce(ApiState) -> ApiState) -> anyhow::Result<Plane> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir()?;
        let api = start_apiserver_custom(dir.path(), ApiConfig::default(), customize).await?;
        let client = api.kube_client().await?;
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
        eventually("apiserver up", std::time::Duration::from_secs(60), || async {
            Ok(namespaces.get_opt("default").await?.map(|_| ()))
        })
        .await?;
        Ok(Plane { dir, client, token: api.token, tasks: vec![api.server] })
    }

    /// The apiserver, the supervised scheduler and every (supervised) controller,
    /// as `bosun control` runs them.
    pub async fn full() -> anyhow::Result<Plane> {
        let mut plane = Plane::apiserver().await?;
        let informers = bosun_control::controllers::shared::Informers::new(plane.client.clone(), plane.token.clone());
        let (c, i, t) = (plane.client.clone(), informers.clone(), plane.token.clone());
        plane.tasks.push(tokio::spawn(bosun_control::supervisor::supervise(
            "scheduler",
            t,
            bosun_control::supervisor::Backoff::default(),
            move |t| bosun_control::scheduler::run(c.clone(), i.clone(), t),
        )));
        let (c, t) = (plane.client.clone(), plane.token.clone());
        let ca = bosun_control::auth::ca::Ca::load_or_create(&plane.dir.path().join("pki"))?;
        plane.tasks.push(tokio::spawn(async move {
            if let Err(e) = bosun_control::controllers::run_all(
                c,
                informers,
                std::sync::Arc::new(ca),
                bosun_control::controllers::csr::sign::DEFAULT_MAX_LIFETIME,
                false,
                t,
            )
            .await
            {
                eprintln!("controllers: {e:#}");
            }
        }));
        Ok(plane)
    }

    /// kubectl against this plane; must succeed; returns stdout.
    pub async fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        kubectl_ok(self.dir.path(), args).await
    }

    /// kubectl against this plane, whatever its exit status.
    pub async fn kubectl_raw(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        kubectl(self.dir.path(), args).await
    }

    /// Cancels everything and waits for the tasks.
    pub async fn stop(self) {
        stop(self.token, self.tasks).await
    }
}
