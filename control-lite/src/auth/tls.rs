//! TLS for the apiserver: the serving configuration (client certificates
//! optional but, when sent, verified against the cluster CA; ALPN h2 and
//! http/1.1), a client configuration, and a readiness probe over HTTPS.

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::ca::Credential;

/// Building a TLS configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("PEM: {0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The crypto provider (ring, as kube-rs and reqwest use).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_pem: &str) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    Ok(roots)
}

/// A credential as rustls takes it: the chain and the key.
pub fn chain_and_key(cred: &Credential) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let chain = CertificateDer::pem_slice_iter(cred.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    Ok((chain, PrivateKeyDer::from_pem_slice(cred.key_pem.as_bytes())?))
}

/// The apiserver's TLS: `serving` as its certificate; a client certificate
/// is optional, and verified against `ca_pem` when sent.
pub fn server_config(ca_pem: &str, serving: &Credential) -> Result<Arc<ServerConfig>, Error> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_pem)?), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let (chain, key) = chain_and_key(serving)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client's TLS: trusts `ca_pem`, presents `identity` if given.
pub fn client_config(ca_pem: &str, identity: Option<&Credential>) -> Result<Arc<ClientConfig>, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?);
    let config = match identity {
        Some(cred) => {
            let (chain, key) = chain_and_key(cred)?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Whether `GET path` on the HTTPS server at `address` (`host:port`,
/// trusted via `ca_pem`) answers 200 within two seconds.
pub async fn https_ok(address: &str, path: &str, ca_pem: &str) -> bool {
    tokio::time::timeout(Duration::from_secs(2), https_status(address, path, ca_pem))
        .await
        .ok()
        .and_then(Result::ok)
        .is_some_and(|status| status == 200)
}

async fn https_status(address: &str, path: &str, ca_pem: &str) -> Result<u16, Box<dyn std::error::Error>> {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host).trim_matches(['[', ']']);
    let name = ServerName::try_from(host.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(client_config(ca_pem, None)?);
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut head = [0u8; 12];
    tls.read_exact(&mut head).await?;
    // `HTTP/1.1 200`
    Ok(std::str::from_utf8(&head[9..12])?.parse()?)
}
