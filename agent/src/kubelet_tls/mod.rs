//! HTTPS for the kubelet API: the TLS configuration (serving certificate
//! from [`cert`]; client certificates optional but, when sent, verified
//! against the client CA; ALPN h2 and http/1.1, as the apiserver) and the
//! accept loop, which puts the verified client certificate's user into
//! every request's extensions as a [`PeerCert`] for `kubelet_auth`.
//!
//! Must not: decide who may do what (that is `kubelet_auth`).

pub mod cert;
pub mod config;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::kubelet_auth::user::User;

/// Building the TLS configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PEM input is not readable.
    #[error("PEM: {0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The client CA is not usable.
    #[error("client CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// How long a client has for the TLS handshake and its first request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for open connections (log followers end with the
/// agent's token anyway).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the TLS handshake verified about the peer: the user of its client
/// certificate (`None` without one).
#[derive(Debug, Clone, Default)]
pub struct PeerCert(pub Option<User>);

/// The serving certificate the kubelet API presents, swappable while it
/// serves (a certificate issued through a CSR replaces the self-signed
/// one; new handshakes get it). The lock is held only to clone an `Arc`.
#[derive(Debug, Clone)]
pub struct ServingSlot {
    current: Arc<std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServingSlot {
    fn new(serving: &cert::Pem, provider: Arc<rustls::crypto::CryptoProvider>) -> Result<ServingSlot, Error> {
        let key = certified_key(serving, &provider)?;
        Ok(ServingSlot { current: Arc::new(std::sync::RwLock::new(key)), provider })
    }

    /// From now on, handshakes present `serving`.
    pub fn replace(&self, serving: &cert::Pem) -> Result<(), Error> {
        let key = certified_key(serving, &self.provider)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = key;
        Ok(())
    }
}

impl rustls::server::ResolvesServerCert for ServingSlot {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }
}

fn certified_key(
    serving: &cert::Pem,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<rustls::sign::CertifiedKey>, Error> {
    let chain = CertificateDer::pem_slice_iter(serving.cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(serving.key.as_bytes())?;
    let key = provider.key_provider.load_private_key(key)?;
    let certified = rustls::sign::CertifiedKey::new(chain, key);
    certified.keys_match()?;
    Ok(Arc::new(certified))
}

/// The serving configuration: `serving` as certificate (in the returned
/// slot, to be replaced later); client certificates verified against
/// `client_ca` when given (else none asked).
pub fn server_config(serving: &cert::Pem, client_ca: Option<&str>) -> Result<(Arc<ServerConfig>, ServingSlot), Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(cert?)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let slot = ServingSlot::new(serving, provider)?;
    let mut config = builder.with_cert_resolver(Arc::new(slot.clone()));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), slot))
}

/// Serves `router` over HTTPS on `listener` until `token` is cancelled.
pub async fn serve(listener: TcpListener, tls: Arc<ServerConfig>, router: Router, token: CancellationToken) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HANDSHAKE_TIMEOUT);
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(error) => {
                tracing::warn!(%error, "kubelet API: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, builder, watcher, router) =
            (acceptor.clone(), builder.clone(), graceful.watcher(), router.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "kubelet API: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "kubelet API: no TLS handshake in time; closing");
                    return;
                }
            };
            let user =
                tls.get_ref().1.peer_certificates().and_then(|chain| chain.first()).and_then(|c| user_of_cert(c));
            let peer_cert = PeerCert(user);
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(peer_cert.clone());
                let router = router.clone();
                async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|never| match never {})) }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).into_owned();
            if let Err(error) = watcher.watch(conn).await {
                tracing::debug!(%peer, %error, "kubelet API: connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::debug!("kubelet API: connections still open at shutdown");
    }
}

/// The user a verified client certificate names: CN the name, each O a
/// group (upstream's x509 authenticator); `None` without a CN.
pub fn user_of_cert(der: &[u8]) -> Option<User> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    if name.is_empty() {
        return None;
    }
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
    Some(User { name, uid: String::new(), groups })
}
