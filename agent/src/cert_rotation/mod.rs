//! Client certificate rotation, as the kubelet's certificate manager: while
//! the agent's `--kubeconfig` holds a client certificate of the node's own
//! identity (`system:node:<name>`: bootstrapped, or issued by `bosun
//! control --node-kubeconfig-out`), a task renews it at 70–90% of its
//! lifetime ([`crate::tls_bootstrap::rotation_due`], jittered per node)
//! through a CertificateSigningRequest made with the current certificate
//! ([`crate::tls_bootstrap::renew`], auto-approved as `selfnodeclient`),
//! which rewrites the kubeconfig atomically (temporary file, rename, 0600).
//! The agent's API client is then rebuilt from the new file and swapped in
//! ([`reload::ClientSlot`]): new requests use the new certificate.
//!
//! The file is looked at again every [`RECHECK`] as well, so a kubeconfig
//! replaced from outside (a restarted `bosun control` writes a fresh node
//! certificate) is picked up too. A failed renewal is logged and retried
//! with backoff ([`retry_delay`]); it never stops the agent.
//!
//! Must not: rotate credentials of another identity (an admin's kubeconfig
//! given to the agent is left alone), or hold a lock across an `.await`.

pub mod reload;
pub mod serving;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use tokio_util::sync::CancellationToken;

use crate::tls_bootstrap;
use reload::ClientSlot;

/// The user name prefix of node identities.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// How often the kubeconfig is read again while nothing is due.
pub const RECHECK: Duration = Duration::from_secs(60);
/// The first retry delay after a failed renewal; doubled up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest retry delay.
pub const MAX_RETRY: Duration = Duration::from_secs(5 * 60);
/// How long one renewal waits for its certificate.
pub const RENEW_WAIT: Duration = Duration::from_secs(5 * 60);

/// Reading the kubeconfig's certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error("client certificate of {path}: {message}")]
    Certificate { path: PathBuf, message: String },
}

/// The client certificate a kubeconfig authenticates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The subject's CN (the user).
    pub common_name: String,
    /// The serial number, hex.
    pub serial: String,
    /// Validity, unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// What the rotation task does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to rotate: no certificate, or another identity's.
    Stop(String),
    /// Look again after this long.
    Wait(Duration),
    /// Renew now.
    Renew,
}

/// The step for certificate `cert` (`None`: the kubeconfig has none) of
/// node `node` at `now` (unix seconds), renewal placed by `jitter_permille`.
pub fn next_step(cert: Option<&ClientCert>, node: &str, now: i64, jitter_permille: u16) -> Step {
    let Some(cert) = cert else { return Step::Stop("the kubeconfig has no client certificate".into()) };
    if cert.common_name.strip_prefix(NODE_USER_PREFIX) != Some(node) {
        return Step::Stop(format!("the client certificate is {:?}, not this node's", cert.common_name));
    }
    let due = tls_bootstrap::rotation_due(cert.not_before, cert.not_after, jitter_permille);
    match u64::try_from(due.saturating_sub(now)) {
        Ok(secs) if secs > 0 => Step::Wait(Duration::from_secs(secs).min(RECHECK)),
        _ => Step::Renew,
    }
}

/// Shortest time between two renewals.
pub const MIN_BETWEEN_RENEWALS: Duration = Duration::from_secs(30);

/// Paces renewals: a certificate due again right after it was renewed
/// (issued near its end already, or a clock ahead of the signer's) is not
/// asked for again at once, but after [`MIN_BETWEEN_RENEWALS`] and then
/// with the failure backoff, until a certificate is healthy again.
#[derive(Debug, Default)]
pub struct Pacer {
    last: Option<std::time::Instant>,
    /// The least time from the last renewal to the next.
    gap: Duration,
    /// Renewals since the certificate was last seen healthy.
    renewals: u32,
}

impl Pacer {
    /// How long to wait before renewing at `now` (`None`: renew now).
    pub fn before_renewal(&self, now: std::time::Instant) -> Option<Duration> {
        let since = now.saturating_duration_since(self.last?);
        (since < self.gap).then(|| self.gap.saturating_sub(since))
    }

    /// A renewal succeeded at `now`: the next one waits at least
    /// [`MIN_BETWEEN_RENEWALS`], longer after each renewal in a row.
    pub fn renewed(&mut self, now: std::time::Instant) {
        self.last = Some(now);
        self.gap = MIN_BETWEEN_RENEWALS.max(retry_delay(self.renewals));
        self.renewals = self.renewals.saturating_add(1);
    }

    /// The certificate is not due: the backoff starts over.
    pub fn healthy(&mut self) {
        self.renewals = 0;
    }
}

/// The delay before retry number `failures` (1 for the first): doubling
/// from [`FIRST_RETRY`], at most [`MAX_RETRY`].
pub fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.checked_mul(1u32 << doublings).unwrap_or(MAX_RETRY).min(MAX_RETRY)
}

/// Where between 70% and 90% of the lifetime node `node` renews (0–1000,
/// fixed per node so that nodes started together do not renew together).
pub fn jitter_of(node: &str) -> u16 {
    // FNV-1a: stable across runs and builds, unlike the std hasher.
    let hash = node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    u16::try_from(hash % 1001).unwrap_or(500)
}

/// The client certificate of kubeconfig text `text` read from `path`
/// (inline `client-certificate-data`, or the `client-certificate` file).
pub fn client_cert(path: &Path, text: &str) -> Result<Option<ClientCert>, Error> {
    let bad = |message: String| Error::Kubeconfig { path: path.to_path_buf(), message };
    let file: kube::config::Kubeconfig = serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string()))?;
    let context_name = file.current_context.clone().unwrap_or_default();
    let Some(context) = file
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .or(file.contexts.first())
        .and_then(|c| c.context.as_ref())
    else {
        return Ok(None);
    };
    let user_name = context.user.clone().unwrap_or_default();
    let Some(user) = file.auth_infos.iter().find(|a| a.name == user_name).and_then(|a| a.auth_info.as_ref()) else {
        return Ok(None);
    };
    let pem = match (&user.client_certificate_data, &user.client_certificate) {
        (Some(data), _) => base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| bad(format!("certificate data: {e}")))?,
        (None, Some(file)) => std::fs::read(file).map_err(|source| Error::Io { path: PathBuf::from(file), source })?,
        (None, None) => return Ok(None),
    };
    parse_cert(&pem).map(Some).map_err(|message| Error::Certificate { path: path.to_path_buf(), message })
}

/// The first certificate of PEM `pem`.
pub fn parse_cert(pem: &[u8]) -> Result<ClientCert, String> {
    use rustls_pki_types::pem::PemObject as _;
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem).map_err(|e| e.to_string())?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| e.to_string())?;
    let common_name =
        cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default().to_string();
    let validity = cert.validity();
    Ok(ClientCert {
        common_name,
        serial: cert.raw_serial_as_string(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

/// Builds the agent's API client from a kubeconfig file.
pub type BuildClient =
    std::sync::Arc<dyn Fn(PathBuf) -> futures::future::BoxFuture<'static, anyhow::Result<kube::Client>> + Send + Sync>;

/// The rotation task's inputs.
pub struct Rotation {
    /// The agent's `--kubeconfig`.
    pub kubeconfig: PathBuf,
    pub node: String,
    /// The client every agent component shares.
    pub slot: ClientSlot,
    /// How a new client is built from the (rotated) kubeconfig.
    pub build: BuildClient,
}

impl Rotation {
    /// Renews the certificate whenever due until `token` is cancelled, or
    /// until there turns out to be nothing to rotate.
    pub async fn run(self, token: CancellationToken) {
        let jitter = jitter_of(&self.node);
        let mut loaded = self.read().await.ok().flatten().map(|c| c.serial);
        let mut failures: u32 = 0;
        let mut pacer = Pacer::default();
        loop {
            let cert = match self.read().await {
                Ok(cert) => cert,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, "certificate rotation: cannot read the kubeconfig; retrying");
                    if !pause(retry_delay(failures), &token).await {
                        return;
                    }
                    continue;
                }
            };
            if let Some(cert) = cert.as_ref().filter(|c| loaded.as_ref() != Some(&c.serial)) {
                // Replaced from outside (or renewed but not yet loaded).
                if self.reload(cert).await {
                    loaded = Some(cert.serial.clone());
                }
            }
            match next_step(cert.as_ref(), &self.node, unix_now(), jitter) {
                Step::Stop(why) => {
                    tracing::info!(kubeconfig = %self.kubeconfig.display(), "no client certificate rotation: {why}");
                    return;
                }
                Step::Wait(delay) => {
                    pacer.healthy();
                    if !pause(delay, &token).await {
                        return;
                    }
                }
                Step::Renew => {
                    if let Some(delay) = pacer.before_renewal(std::time::Instant::now()) {
                        tracing::warn!(?delay, "client certificate due again right after its renewal; waiting");
                        if !pause(delay, &token).await {
                            return;
                        }
                        continue;
                    }
                    let renewed = tls_bootstrap::renew(&self.kubeconfig, &self.node, RENEW_WAIT, &token).await;
                    match renewed {
                        Ok(()) => {
                            failures = 0;
                            pacer.renewed(std::time::Instant::now());
                        }
                        Err(tls_bootstrap::Error::Cancelled) => return,
                        Err(error) => {
                            failures = failures.saturating_add(1);
                            let delay = retry_delay(failures);
                            tracing::warn!(%error, ?delay, failures, "client certificate renewal failed; retrying");
                            if !pause(delay, &token).await {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    async fn read(&self) -> Result<Option<ClientCert>, Error> {
        let text = tokio::fs::read_to_string(&self.kubeconfig)
            .await
            .map_err(|source| Error::Io { path: self.kubeconfig.clone(), source })?;
        let path = self.kubeconfig.clone();
        tokio::task::spawn_blocking(move || client_cert(&path, &text))
            .await
            .unwrap_or_else(|e| Err(Error::Kubeconfig { path: self.kubeconfig.clone(), message: e.to_string() }))
    }

    /// Swaps in a client built from the kubeconfig; whether it could.
    async fn reload(&self, cert: &ClientCert) -> bool {
        match (self.build)(self.kubeconfig.clone()).await {
            Ok(client) => {
                self.slot.replace(client);
                let not_after = jiff::Timestamp::from_second(cert.not_after).map(|t| t.to_string()).unwrap_or_default();
                tracing::info!(serial = cert.serial, not_after, "client certificate rotated: API client reloaded");
                true
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "client certificate rotated but the API client was not rebuilt"
                );
                false
            }
        }
    }
}

/// Waits `delay`; false when `token` was cancelled first.
pub(crate) async fn pause(delay: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        () = token.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}

pub(crate) fn unix_now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
