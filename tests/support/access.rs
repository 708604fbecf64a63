//! Client access to an apiserver from a kubeconfig bosun wrote (HTTPS with
//! the cluster CA and a client certificate, all embedded): the server URL,
//! a reqwest client with that identity, and the PEM files for curl.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use base64::Engine as _;
use serde_json::Value;

/// An identity to call an apiserver with.
pub struct Access {
    /// `https://host:port`.
    pub server: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// PEM files for curl (`ca.crt`, `client.crt`, `client.key`).
    pub files: tempfile::TempDir,
}

impl Access {
    /// Reads `kubeconfig` (its current cluster and user).
    pub fn from_kubeconfig(kubeconfig: &Path) -> Result<Access> {
        let text = std::fs::read(kubeconfig).with_context(|| format!("reading {}", kubeconfig.display()))?;
        let config: Value = serde_json::from_slice(&text)?;
        let field = |pointer: &str| -> Result<String> {
            config
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
                .with_context(|| format!("{pointer} in kubeconfig"))
        };
        let decode = |pointer: &str| -> Result<String> {
            Ok(String::from_utf8(base64::engine::general_purpose::STANDARD.decode(field(pointer)?)?)?)
        };
        let access = Access {
            server: field("/clusters/0/cluster/server")?,
            ca_pem: decode("/clusters/0/cluster/certificate-authority-data")?,
            cert_pem: decode("/users/0/user/client-certificate-data")?,
            key_pem: decode("/users/0/user/client-key-data")?,
            files: tempfile::Builder::new().prefix("bosun-access-").tempdir()?,
        };
        std::fs::write(access.ca_file(), &access.ca_pem)?;
        std::fs::write(access.files.path().join("client.crt"), &access.cert_pem)?;
        std::fs::write(access.files.path().join("client.key"), &access.key_pem)?;
        Ok(access)
    }

    /// The apiserver's `host:port`.
    pub fn address(&self) -> &str {
        self.server.trim_start_matches("https://")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.files.path().join("ca.crt")
    }

    /// A reqwest client builder that trusts the CA only (no identity).
    pub fn anonymous_builder(&self) -> Result<reqwest::ClientBuilder> {
        Ok(reqwest::Client::builder()
            .no_proxy()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes())?))
    }

    /// A reqwest client builder with this identity.
    pub fn builder(&self) -> Result<reqwest::ClientBuilder> {
        let identity = reqwest::Identity::from_pem(format!("{}{}", self.cert_pem, self.key_pem).as_bytes())?;
        Ok(self.anonymous_builder()?.identity(identity))
    }

    /// A reqwest client with this identity (120 s timeout).
    pub fn client(&self) -> Result<reqwest::Client> {
        Ok(self.builder()?.timeout(Duration::from_secs(120)).build()?)
    }

    /// curl arguments that present this identity and trust the CA.
    pub fn curl_args(&self) -> Vec<String> {
        let file = |name: &str| self.files.path().join(name).display().to_string();
        vec!["--cacert".into(), file("ca.crt"), "--cert".into(), file("client.crt"), "--key".into(), file("client.key")]
    }

    /// A rustls client configuration with this identity.
    pub fn tls(&self) -> Result<std::sync::Arc<rustls::ClientConfig>> {
        let identity =
            bosun_control::auth::ca::Credential { cert_pem: self.cert_pem.clone(), key_pem: self.key_pem.clone() };
        Ok(bosun_control::auth::tls::client_config(&self.ca_pem, Some(&identity))?)
    }

    /// `GET path` with this identity via curl (must succeed): the body.
    pub fn get(&self, path: &str) -> Result<String> {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--noproxy", "*", "--max-time", "10"])
            .args(self.curl_args())
            .arg(self.url(path))
            .output()?;
        ensure!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}
