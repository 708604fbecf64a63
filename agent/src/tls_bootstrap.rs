//! TLS bootstrapping, as the kubelet's `--bootstrap-kubeconfig`: while the
//! agent's `--kubeconfig` does not exist, it uses the bootstrap credentials
//! (a bootstrap token) only to ask for its own client certificate — a key
//! generated here (kept 0600 next to the kubeconfig, so a restart while
//! waiting asks again with the same key), a CertificateSigningRequest for
//! CN `system:node:<name>`, O `system:nodes`, signer
//! `kubernetes.io/kube-apiserver-client-kubelet` — waits (watching) for the
//! certificate, and writes the kubeconfig (certificate and key inline, 0600
//! in a 0700 directory) that the agent then runs with.
//!
//! [`renew`] asks for a new certificate with the current one (auto-approved
//! as `selfnodeclient`) and rewrites the kubeconfig; [`rotation_due`]
//! decides when (70–90% of the lifetime, jittered per node, as upstream).
//! [`crate::cert_rotation`] schedules both and reloads the agent's client.
//!
//! Must not: keep using the bootstrap credentials for anything else.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec};
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The signer of kubelet client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The group of node identities.
pub const NODES_GROUP: &str = "system:nodes";
/// How long to wait for the certificate before giving up (the agent then
/// exits and its supervisor starts it again, which asks again).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(15 * 60);
/// The private key's file name, next to the kubeconfig.
pub const KEY_FILE: &str = "kubelet-client.key";

/// Bootstrapping failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("bootstrap kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error("key or request: {0}")]
    Key(#[from] rcgen::Error),
    #[error("CertificateSigningRequest: {0}")]
    Api(#[from] kube::Error),
    #[error("CertificateSigningRequest {name}: {reason}")]
    Refused { name: String, reason: String },
    #[error("CertificateSigningRequest {name}: no certificate within {waited:?}")]
    Timeout { name: String, waited: Duration },
    #[error("cancelled")]
    Cancelled,
    #[error("kubeconfig: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("issued certificate not used: {0}")]
    Issued(String),
}

/// Checks an issued client certificate before it replaces the only working
/// credential: it parses, is for `node` (CN `system:node:<node>`), holds
/// `key`'s public key and is valid at `now` (Unix seconds).
pub fn check_issued(cert_pem: &[u8], key: &rcgen::KeyPair, node: &str, now: i64) -> Result<(), Error> {
    use rustls_pki_types::pem::PemObject as _;
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let bad = |m: String| Error::Issued(m);
    let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem).map_err(|e| bad(e.to_string()))?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| bad(e.to_string()))?;
    let cn = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default();
    if cn != format!("system:node:{node}") {
        return Err(bad(format!("its subject is {cn:?}, not system:node:{node}")));
    }
    if cert.tbs_certificate.subject_pki.raw != rcgen::PublicKeyData::subject_public_key_info(key).as_slice() {
        return Err(bad("it does not hold the requested key".into()));
    }
    let validity = cert.validity();
    if now < validity.not_before.timestamp() || now >= validity.not_after.timestamp() {
        return Err(bad("it is not valid now".into()));
    }
    Ok(())
}

/// Where the cluster is, as the bootstrap kubeconfig says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub server: String,
    /// The CA bundle, PEM (empty: the system roots).
    pub ca_pem: Vec<u8>,
}

/// Writes `kubeconfig` from `bootstrap` unless it exists. Returns whether it bootstrapped.
pub async fn ensure_kubeconfig(
    kubeconfig: &Path,
    bootstrap: &Path,
    node: &str,
    wait: Duration,
    token: &CancellationToken,
) -> Result<bool, Error> {
    if kubeconfig.exists() {
        return Ok(false);
    }
    let (client, cluster) = bootstrap_client(bootstrap).await?;
    let dir = kubeconfig.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    private_dir(dir)?;
    let key = load_or_create_key(&dir.join(KEY_FILE))?;
    let cert_pem = request_certificate(&client, node, &key, None, wait, token).await?;
    write_kubeconfig(kubeconfig, &cluster, node, cert_pem.as_bytes(), key.serialize_pem().as_bytes())?;
    tracing::info!(node, kubeconfig = %kubeconfig.display(), "TLS bootstrap: client certificate issued");
    Ok(true)
}

/// Renews the client certificate of `kubeconfig` (node `node`): a new key,
/// a request made with the current identity (auto-approved as
/// `selfnodeclient`), and `kubeconfig` rewritten once the issued
/// certificate checks out ([`check_issued`]). Clients already built
/// keep the old certificate until they are rebuilt.
pub async fn renew(kubeconfig: &Path, node: &str, wait: Duration, token: &CancellationToken) -> Result<(), Error> {
    let (client, cluster) = bootstrap_client(kubeconfig).await?;
    let key = rcgen::KeyPair::generate()?;
    let cert_pem = request_certificate(&client, node, &key, None, wait, token).await?;
    check_issued(cert_pem.as_bytes(), &key, node, jiff::Timestamp::now().as_second())?;
    write_kubeconfig(kubeconfig, &cluster, node, cert_pem.as_bytes(), key.serialize_pem().as_bytes())?;
    tracing::info!(node, kubeconfig = %kubeconfig.display(), "client certificate renewed");
    Ok(())
}

/// A client with the credentials of kubeconfig `path`, and its cluster.
pub async fn bootstrap_client(path: &Path) -> Result<(Client, Cluster), Error> {
    let bad = |message: String| Error::Kubeconfig { path: path.to_path_buf(), message };
    let file = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
    let cluster = cluster_of(&file).map_err(bad)?;
    let config = kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    let client = Client::try_from(config).map_err(|e| bad(e.to_string()))?;
    Ok((client, cluster))
}

fn cluster_of(file: &kube::config::Kubeconfig) -> Result<Cluster, String> {
    let context_name = file.current_context.clone().unwrap_or_default();
    let context = file
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .or(file.contexts.first())
        .and_then(|c| c.context.as_ref())
        .ok_or("no context")?;
    let cluster = file
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or("no cluster for the context")?;
    let server = cluster.server.clone().ok_or("the cluster has no server")?;
    let ca_pem = match (&cluster.certificate_authority_data, &cluster.certificate_authority) {
        (Some(data), _) => {
            base64::engine::general_purpose::STANDARD.decode(data.trim()).map_err(|e| format!("CA data: {e}"))?
        }
        (None, Some(file)) => std::fs::read(file).map_err(|e| format!("CA file {file}: {e}"))?,
        (None, None) => Vec::new(),
    };
    Ok(Cluster { server, ca_pem })
}

/// Submits a CSR for node `node` with `key` and waits for its certificate (PEM).
pub async fn request_certificate(
    client: &Client,
    node: &str,
    key: &rcgen::KeyPair,
    expiration_seconds: Option<i32>,
    wait: Duration,
    token: &CancellationToken,
) -> Result<String, Error> {
    let request = Signing {
        request_pem: csr_pem(node, key)?,
        signer: KUBELET_CLIENT_SIGNER,
        usages: &["digital signature", "client auth"],
        expiration_seconds,
    };
    request_signed(client, node, &request, wait, token).await
}

/// A request to sign: the PEM CSR, its signer and usages.
#[derive(Debug, Clone)]
pub struct Signing<'a> {
    pub request_pem: String,
    pub signer: &'a str,
    pub usages: &'a [&'a str],
    pub expiration_seconds: Option<i32>,
}

/// Submits `request` (for node `node`) and waits for its certificate (PEM).
pub async fn request_signed(
    client: &Client,
    node: &str,
    request: &Signing<'_>,
    wait: Duration,
    token: &CancellationToken,
) -> Result<String, Error> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta { generate_name: Some("node-csr-".into()), ..ObjectMeta::default() },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.request_pem.clone().into_bytes()),
            signer_name: request.signer.into(),
            usages: Some(request.usages.iter().map(|u| u.to_string()).collect()),
            expiration_seconds: request.expiration_seconds,
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    let created = api.create(&PostParams::default(), &csr).await?;
    let name = created.metadata.name.clone().unwrap_or_default();
    tracing::info!(csr = name, node, signer = request.signer, "certificate requested, waiting for it");
    let done = |csr: Option<&CertificateSigningRequest>| csr.is_some_and(|c| outcome(c).is_some());
    let waited = tokio::select! {
        _ = token.cancelled() => return Err(Error::Cancelled),
        r = tokio::time::timeout(wait, kube::runtime::wait::await_condition(api, &name, done)) => r,
    };
    let csr = match waited {
        Err(_) => return Err(Error::Timeout { name, waited: wait }),
        Ok(Err(e)) => return Err(Error::Refused { name, reason: e.to_string() }),
        Ok(Ok(csr)) => csr,
    };
    match csr.as_ref().and_then(outcome) {
        Some(Ok(pem)) => Ok(pem),
        Some(Err(reason)) => Err(Error::Refused { name, reason }),
        None => Err(Error::Refused { name, reason: "deleted".into() }),
    }
}

/// The request's end: its certificate, or why there will be none.
pub fn outcome(csr: &CertificateSigningRequest) -> Option<Result<String, String>> {
    let status = csr.status.as_ref()?;
    for c in status.conditions.iter().flatten() {
        if matches!(c.type_.as_str(), "Denied" | "Failed") {
            return Some(Err(format!("{}: {}", c.type_, c.message.clone().unwrap_or_default())));
        }
    }
    let cert = status.certificate.as_ref().filter(|c| !c.0.is_empty())?;
    Some(Ok(String::from_utf8_lossy(&cert.0).into_owned()))
}

/// A PEM CSR for `system:node:<node>` in `system:nodes`.
pub fn csr_pem(node: &str, key: &rcgen::KeyPair) -> Result<String, rcgen::Error> {
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, NODES_GROUP);
    dn.push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    params.distinguished_name = dn;
    params.serialize_request(key)?.pem()
}

/// The key at `path`, or a new one saved there (0600).
fn load_or_create_key(path: &Path) -> Result<rcgen::KeyPair, Error> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    if path.exists() {
        let pem = std::fs::read_to_string(path).map_err(io)?;
        if let Ok(key) = rcgen::KeyPair::from_pem(&pem) {
            return Ok(key);
        }
        tracing::warn!(path = %path.display(), "unreadable bootstrap key: making a new one");
    }
    let key = rcgen::KeyPair::generate()?;
    write_private(path, key.serialize_pem().as_bytes())?;
    Ok(key)
}

/// Writes the node's kubeconfig: `cluster`, the certificate and key inline.
pub fn write_kubeconfig(
    path: &Path,
    cluster: &Cluster,
    node: &str,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(), Error> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut cluster_entry = json!({"server": cluster.server});
    if !cluster.ca_pem.is_empty() {
        cluster_entry["certificate-authority-data"] = json!(b64(&cluster.ca_pem));
    }
    let user = format!("system:node:{node}");
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default-cluster", "cluster": cluster_entry}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": "default-context", "context": {"cluster": "default-cluster", "user": user}}],
        "current-context": "default-context",
    });
    let text = serde_yaml_ng::to_string(&doc)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    write_private(path, text.as_bytes())
}

/// Creates `dir` (and parents) 0700 when it does not exist. An existing
/// directory is left as it is (`--kubeconfig /etc/kubelet.conf` must not
/// make `/etc` private); the files in it are 0600 whatever its mode.
pub(crate) fn private_dir(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Io { path: dir.to_path_buf(), source })
}

/// Writes `bytes` to `path` through a 0600 temporary file and a rename.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// When a certificate valid from `not_before` to `not_after` (unix
/// seconds) should be renewed: at a point between 70% and 90% of its
/// lifetime, `jitter_permille` (0–1000, fixed per node) choosing where.
pub fn rotation_due(not_before: i64, not_after: i64, jitter_permille: u16) -> i64 {
    let lifetime = not_after.saturating_sub(not_before).max(0);
    let share = 700 + 200 * i64::from(jitter_permille.min(1000)) / 1000;
    not_before.saturating_add(lifetime.saturating_mul(share) / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_certificate_is_checked_before_it_is_used() {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = |cn: &str, key: &rcgen::KeyPair| {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            params.distinguished_name.push(rcgen::DnType::CommonName, cn);
            params.self_signed(key).expect("cert").pem()
        };
        let now = jiff::Timestamp::now().as_second();
        let good = cert("system:node:n1", &key);
        assert!(check_issued(good.as_bytes(), &key, "n1", now).is_ok());
        let other = rcgen::KeyPair::generate().expect("key");
        for (what, pem, node, at) in [
            ("another node", cert("system:node:n2", &key), "n1", now),
            ("another key", cert("system:node:n1", &other), "n1", now),
            ("expired", good.clone(), "n1", i64::from(i32::MAX) * 40),
            ("garbage", "not a certificate".to_string(), "n1", now),
        ] {
            assert!(matches!(check_issued(pem.as_bytes(), &key, node, at), Err(Error::Issued(_))), "{what}");
        }
    }

    #[test]
    fn rotation_is_due_between_70_and_90_percent() {
        assert_eq!(rotation_due(0, 1000, 0), 700);
        assert_eq!(rotation_due(0, 1000, 1000), 900);
        assert_eq!(rotation_due(100, 1100, 500), 900);
        assert_eq!(rotation_due(100, 1100, 7000), 1000, "jitter is clamped");
        assert_eq!(rotation_due(500, 100, 500), 500, "a backwards validity is due at once");
    }

    #[test]
    fn the_request_names_the_node() {
        let key = rcgen::KeyPair::generate().expect("key");
        let pem = csr_pem("n1", &key).expect("csr");
        let params = rcgen::CertificateSigningRequestParams::from_pem(&pem).expect("parses and verifies");
        let dn: Vec<String> = params.params.distinguished_name.iter().map(|(t, v)| format!("{t:?}={v:?}")).collect();
        assert!(dn.iter().any(|d| d.contains("system:node:n1")), "{dn:?}");
        assert!(dn.iter().any(|d| d.contains(NODES_GROUP)), "{dn:?}");
    }

    #[test]
    fn outcome_reads_the_certificate_or_the_refusal() {
        use k8s_openapi::api::certificates::v1::{CertificateSigningRequestCondition, CertificateSigningRequestStatus};
        let with = |conds: &[&str], cert: &str| CertificateSigningRequest {
            status: Some(CertificateSigningRequestStatus {
                certificate: (!cert.is_empty()).then(|| ByteString(cert.as_bytes().to_vec())),
                conditions: Some(
                    conds
                        .iter()
                        .map(|t| CertificateSigningRequestCondition {
                            type_: t.to_string(),
                            status: "True".into(),
                            ..CertificateSigningRequestCondition::default()
                        })
                        .collect(),
                ),
            }),
            ..CertificateSigningRequest::default()
        };
        assert_eq!(outcome(&with(&[], "")), None);
        assert_eq!(outcome(&with(&["Approved"], "")), None);
        assert_eq!(outcome(&with(&["Approved"], "PEM")), Some(Ok("PEM".into())));
        assert!(matches!(outcome(&with(&["Denied"], "")), Some(Err(_))));
        assert!(matches!(outcome(&with(&["Approved", "Failed"], "")), Some(Err(_))));
    }

    #[test]
    fn the_kubeconfig_is_private_and_reads_back() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("node/kubeconfig");
        let cluster = Cluster { server: "https://127.0.0.1:6443".into(), ca_pem: b"CA".to_vec() };
        write_kubeconfig(&path, &cluster, "n1", b"CERT", b"KEY").expect("written");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("dir")), 0o700);
        let file = kube::config::Kubeconfig::read_from(&path).expect("reads");
        assert_eq!(cluster_of(&file), Ok(cluster));
    }
}
