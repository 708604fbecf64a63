//! How the apiserver dials kubelets: HTTPS (ALPN http/1.1, so exec,
//! attach and port-forward can upgrade) with the apiserver's kubelet client
//! certificate (upstream's `--kubelet-client-certificate`; the user
//! `kube-apiserver-kubelet-client`, bound to `system:kubelet-api-admin`).
//!
//! As upstream by default, the kubelet's serving certificate (self-signed
//! by each node) is not verified unless `--kubelet-certificate-authority`
//! gives the CA that signs them; the handshake's signatures are still
//! checked, so the connection is encrypted, but not authenticated.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::auth::ca::Credential;
use crate::auth::tls::{provider, Error};

/// The apiserver's TLS client for kubelets.
#[derive(Clone)]
pub struct KubeletClient {
    tls: Arc<ClientConfig>,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient").finish_non_exhaustive()
    }
}

impl Default for KubeletClient {
    /// No client certificate, no server verification (tests' fakes).
    fn default() -> KubeletClient {
        KubeletClient::new(None, None).unwrap_or_else(|_| unreachable!("a config without inputs builds"))
    }
}

impl KubeletClient {
    /// Presents `identity` (if any); verifies kubelets against `ca_pem` if
    /// given, else not at all (upstream's default).
    pub fn new(identity: Option<&Credential>, ca_pem: Option<&str>) -> Result<KubeletClient, Error> {
        let mut config = match ca_pem {
            Some(ca) => Arc::unwrap_or_clone(crate::auth::tls::client_config(ca, identity)?),
            None => {
                let verifier = Arc::new(NoServerVerification(provider()));
                let builder = ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()?
                    .dangerous()
                    .with_custom_certificate_verifier(verifier);
                match identity {
                    Some(cred) => {
                        let (chain, key) = crate::auth::tls::chain_and_key(cred)?;
                        builder.with_client_auth_cert(chain, key)?
                    }
                    None => builder.with_no_client_auth(),
                }
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient { tls: Arc::new(config) })
    }

    /// A TLS connection to the kubelet at `addr` (`host:port`).
    pub async fn connect(&self, addr: &str) -> std::io::Result<TlsStream<TcpStream>> {
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host).trim_matches(['[', ']']);
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let tcp = TcpStream::connect(addr).await?;
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "kubelet connection: TCP_NODELAY");
        }
        tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp).await
    }
}

/// Accepts any server certificate; checks the handshake's signatures.
#[derive(Debug)]
struct NoServerVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ca::Ca;

    /// A TLS server with `cred` on loopback; answers one connection.
    async fn server(cred: &Credential, ca: &Ca) -> String {
        let config = crate::auth::tls::server_config(ca.cert_pem(), cred).expect("server config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tokio::io::AsyncWriteExt::write_all(&mut tls, b"hi").await;
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn kubelets_are_not_verified_by_default_and_are_with_a_ca() {
        let (cluster, other) = (Ca::generate().expect("ca"), Ca::generate().expect("ca"));
        // A kubelet whose certificate no CA we know signed (self-signed, as upstream's default).
        let kubelet = other.issue_server(&[], &["127.0.0.1".parse().expect("ip")]).expect("cert");
        let addr = server(&kubelet, &cluster).await;
        let identity = cluster.issue_client("kube-apiserver-kubelet-client", "").expect("client");
        let default = KubeletClient::new(Some(&identity), None).expect("client");
        assert!(default.connect(&addr).await.is_ok(), "no verification by default");
        let verifying = KubeletClient::new(Some(&identity), Some(cluster.cert_pem())).expect("client");
        assert!(verifying.connect(&addr).await.is_err(), "--kubelet-certificate-authority verifies");
        let trusted = KubeletClient::new(Some(&identity), Some(other.cert_pem())).expect("client");
        assert!(trusted.connect(&addr).await.is_ok(), "a kubelet signed by the given CA is accepted");
    }
}
