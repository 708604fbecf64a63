//! The kubelet API's serving certificate through a CSR (the kubelet's
//! `--rotate-server-certificates`): signer `kubernetes.io/kubelet-serving`,
//! CN `system:node:<name>`, O `system:nodes`, SANs the addresses the Node
//! reports (its name, its InternalIP), usages server auth. Until a
//! certificate is issued the self-signed one keeps serving; once issued it
//! is kept in `<root-dir>/pki/kubelet-server-current.pem` (certificate and
//! key, 0600), swapped into the kubelet API's [`ServingSlot`], and renewed
//! at 70–90% of its life like the client certificate.
//!
//! Upstream does not approve these requests automatically: someone must
//! (`kubectl certificate approve`, or `bosun control
//! --approve-kubelet-serving-certificates`, which checks the SANs against
//! the Node). While nobody does, the request is retried with backoff.
//!
//! Must not: serve a certificate whose key does not match, or stop the agent.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{jitter_of, next_step, parse_cert, pause, retry_delay, unix_now, Pacer, Step};
use crate::kubelet_tls::cert::Pem;
use crate::kubelet_tls::ServingSlot;
use crate::tls_bootstrap::{self, Signing};

/// The signer of kubelet serving certificates.
pub const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// The usages asked for.
pub const SERVING_USAGES: &[&str] = &["digital signature", "key encipherment", "server auth"];
/// The issued certificate and its key, in the pki directory.
pub const CURRENT_FILE: &str = "kubelet-server-current.pem";
/// How long one request waits for approval and signing.
pub const WAIT: Duration = Duration::from_secs(10 * 60);

/// The serving rotation task's inputs.
pub struct ServingRotation {
    pub client: kube::Client,
    pub node: String,
    /// The Node's addresses: DNS names and IPs the certificate names.
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    /// `<root-dir>/pki`.
    pub pki_dir: PathBuf,
    pub slot: ServingSlot,
    /// True once the Node is registered: its addresses, which an approver
    /// checks the request against, are then in the API.
    pub registered: tokio::sync::watch::Receiver<bool>,
}

/// A PEM CSR of node `node` for serving on `dns` and `ips`.
pub fn serving_csr_pem(
    node: &str,
    dns: &[String],
    ips: &[IpAddr],
    key: &rcgen::KeyPair,
) -> Result<String, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(dns.to_vec())?;
    params.subject_alt_names.extend(ips.iter().copied().map(rcgen::SanType::IpAddress));
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, tls_bootstrap::NODES_GROUP);
    dn.push(rcgen::DnType::CommonName, format!("{}{node}", super::NODE_USER_PREFIX));
    params.distinguished_name = dn;
    params.serialize_request(key)?.pem()
}

impl ServingRotation {
    /// Requests, installs and renews the serving certificate until `token` is cancelled.
    pub async fn run(mut self, token: CancellationToken) {
        tokio::select! {
            () = token.cancelled() => return,
            // A dropped sender (the node task ended) does not hold it up.
            _ = self.registered.wait_for(|registered| *registered) => {}
        }
        let path = self.pki_dir.join(CURRENT_FILE);
        let jitter = jitter_of(&self.node);
        let mut loaded: Option<String> = None;
        let mut failures: u32 = 0;
        let mut pacer = Pacer::default();
        loop {
            let current = tokio::fs::read_to_string(&path).await.ok().and_then(|text| {
                let cert = parse_cert(text.as_bytes()).ok()?;
                Some((Pem { cert: text.clone(), key: text }, cert))
            });
            let step = match &current {
                Some((pem, cert)) => {
                    if loaded.as_ref() != Some(&cert.serial) && cert.not_after > unix_now() {
                        match self.slot.replace(pem) {
                            Ok(()) => {
                                tracing::info!(
                                    serial = cert.serial,
                                    "kubelet API: serving certificate from the cluster CA in use"
                                );
                                loaded = Some(cert.serial.clone());
                            }
                            Err(error) => tracing::warn!(%error, "kubelet API: issued serving certificate unusable"),
                        }
                    }
                    next_step(Some(cert), &self.node, unix_now(), jitter)
                }
                None => Step::Renew,
            };
            match step {
                Step::Wait(delay) => {
                    pacer.healthy();
                    if !pause(delay, &token).await {
                        return;
                    }
                }
                Step::Stop(_) | Step::Renew => {
                    if let Some(delay) = pacer.before_renewal(Instant::now()) {
                        tracing::warn!(
                            ?delay,
                            "kubelet serving certificate due again right after its renewal; waiting"
                        );
                        if !pause(delay, &token).await {
                            return;
                        }
                        continue;
                    }
                    match self.request(&path, &token).await {
                        Ok(()) => {
                            failures = 0;
                            pacer.renewed(Instant::now());
                        }
                        Err(tls_bootstrap::Error::Cancelled) => return,
                        Err(error) => {
                            failures = failures.saturating_add(1);
                            let delay = retry_delay(failures);
                            tracing::warn!(%error, ?delay, "kubelet serving certificate request failed; retrying");
                            if !pause(delay, &token).await {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    async fn request(&self, path: &std::path::Path, token: &CancellationToken) -> Result<(), tls_bootstrap::Error> {
        let key = rcgen::KeyPair::generate()?;
        let request = Signing {
            request_pem: serving_csr_pem(&self.node, &self.dns, &self.ips, &key)?,
            signer: SERVING_SIGNER,
            usages: SERVING_USAGES,
            expiration_seconds: None,
        };
        let cert = tls_bootstrap::request_signed(&self.client, &self.node, &request, WAIT, token).await?;
        tls_bootstrap::private_dir(&self.pki_dir)?;
        let both = format!("{}\n{}", cert.trim_end(), key.serialize_pem());
        tls_bootstrap::write_private(path, both.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serving_request_names_the_node_and_its_addresses() {
        let key = rcgen::KeyPair::generate().expect("key");
        let ips = ["10.0.0.5".parse().expect("ip")];
        let pem = serving_csr_pem("n1", &["n1".into()], &ips, &key).expect("csr");
        let req = rcgen::CertificateSigningRequestParams::from_pem(&pem).expect("parses and verifies");
        let sans: Vec<String> = req.params.subject_alt_names.iter().map(|s| format!("{s:?}")).collect();
        assert_eq!(sans.len(), 2, "{sans:?}");
        assert!(sans.iter().any(|s| s.contains("n1")) && sans.iter().any(|s| s.contains("10.0.0.5")), "{sans:?}");
    }
}
