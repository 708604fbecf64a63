//! HTTP/1.1 over TLS with a certificate from files: `GET /healthz`.

use std::path::PathBuf;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{crypto, ServerConfig};

/// While this file exists, `/healthz` answers 500.
const UNHEALTHY_FILE: &str = "/tmp/unhealthy";

/// The status code for `path` (`unhealthy`: the file exists).
fn status_for(path: &str, unhealthy: bool) -> http::StatusCode {
    match path {
        "/healthz" if unhealthy => http::StatusCode::INTERNAL_SERVER_ERROR,
        "/healthz" => http::StatusCode::OK,
        _ => http::StatusCode::NOT_FOUND,
    }
}

fn tls_config(cert: &PathBuf, key: &PathBuf) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("key {}: {e}", key.display()))?;
    let config = ServerConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS config: {e}"))?;
    Ok(Arc::new(config))
}

/// Serves HTTPS on `0.0.0.0:port` until the process ends.
pub async fn serve(port: u16, cert: PathBuf, key: PathBuf) -> Result<(), String> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls_config(&cert, &key)?);
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await.map_err(|e| format!("bind {port}: {e}"))?;
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let service = service_fn(|request: http::Request<hyper::body::Incoming>| async move {
                let unhealthy = tokio::fs::try_exists(UNHEALTHY_FILE).await.unwrap_or(false);
                let status = status_for(request.uri().path(), unhealthy);
                let body = format!("{}\n", status.as_u16());
                http::Response::builder().status(status).body(body)
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_follows_the_file() {
        assert_eq!(status_for("/healthz", false), http::StatusCode::OK);
        assert_eq!(status_for("/healthz", true), http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status_for("/", false), http::StatusCode::NOT_FOUND);
    }
}
