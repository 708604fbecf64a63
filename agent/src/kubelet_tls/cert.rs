//! The kubelet API's serving certificate and the CA its clients' certificates
//! are checked against.
//!
//! As upstream's default (no `--tls-cert-file`): a self-signed certificate
//! made at the first start in `<root>/pki` (`kubelet.crt`, `kubelet.key`,
//! 0600 in a 0700 directory), with the node's IPs and names as SANs, and
//! reused across restarts while it is valid for at least a day more and
//! still names every wanted IP. The client CA is `--client-ca-file` or the
//! CA of the agent's own kubeconfig (the cluster CA).

use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Loading or making a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Generating the certificate failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// The kubeconfig has no usable cluster CA.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The kubeconfig.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// How long a generated serving certificate is valid.
const VALID_DAYS: u64 = 365;
/// A certificate that expires sooner than this is made again at start.
const RENEW_BEFORE_SECS: i64 = 24 * 3600;

/// A certificate chain and its key, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pem {
    /// The certificate (chain), PEM.
    pub cert: String,
    /// The private key, PEM.
    pub key: String,
}

/// The names a generated serving certificate carries (deduplicated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServingNames {
    /// DNS names (the node name and the host name).
    pub dns: Vec<String>,
    /// IP addresses (the node IP, and the bind address if it is specific).
    pub ips: Vec<IpAddr>,
}

impl ServingNames {
    /// Names for a node called `node` on host `host`, reached at `ips`.
    pub fn new(node: &str, host: &str, ips: &[IpAddr]) -> ServingNames {
        let mut names = ServingNames::default();
        for name in [node, host] {
            if !name.is_empty() && !names.dns.iter().any(|d| d == name) {
                names.dns.push(name.to_string());
            }
        }
        for ip in ips {
            if !ip.is_unspecified() && !names.ips.contains(ip) {
                names.ips.push(*ip);
            }
        }
        names
    }
}

/// `--tls-cert-file`/`--tls-private-key-file` when both are given, else the
/// self-signed certificate in `pki_dir` (made or renewed as needed).
pub fn serving(given: Option<(&Path, &Path)>, pki_dir: &Path, names: &ServingNames) -> Result<Pem, Error> {
    if let Some((cert, key)) = given {
        return Ok(Pem { cert: read(cert)?, key: read(key)? });
    }
    let (cert_path, key_path) = (pki_dir.join("kubelet.crt"), pki_dir.join("kubelet.key"));
    if let (Ok(cert), Ok(key)) = (std::fs::read_to_string(&cert_path), std::fs::read_to_string(&key_path)) {
        if still_fits(&cert, names, now_unix()) {
            return Ok(Pem { cert, key });
        }
        tracing::info!(path = %cert_path.display(), "kubelet serving certificate expires soon or lacks an address; making a new one");
    }
    let pem = self_signed(names)?;
    private_dir(pki_dir)?;
    write_private(&key_path, &pem.key)?;
    write_private(&cert_path, &pem.cert)?;
    Ok(pem)
}

/// Whether the PEM certificate `cert` is valid beyond a day after `now`
/// (seconds since the epoch) and names every IP of `names` (pure).
pub fn still_fits(cert: &str, names: &ServingNames, now: i64) -> bool {
    let Some(der) = first_der(cert) else { return false };
    let Ok((_, parsed)) = X509Certificate::from_der(&der) else { return false };
    if parsed.validity().not_after.timestamp() < now.saturating_add(RENEW_BEFORE_SECS) {
        return false;
    }
    let have: Vec<IpAddr> = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| san.value.general_names.iter().filter_map(ip_of).collect())
        .unwrap_or_default();
    names.ips.iter().all(|ip| have.contains(ip))
}

fn ip_of(name: &GeneralName<'_>) -> Option<IpAddr> {
    match name {
        GeneralName::IPAddress(b) => match b.len() {
            4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

fn first_der(pem: &str) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).next()?.ok().map(|c| c.to_vec())
}

/// A self-signed serving certificate for `names` (CN `<node>@<unix time>`,
/// as upstream names its own).
pub fn self_signed(names: &ServingNames) -> Result<Pem, Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let now = now_unix();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{}@{now}", names.dns.first().map_or("kubelet", String::as_str)));
    params.distinguished_name = dn;
    let since_epoch = std::time::Duration::from_secs(u64::try_from(now).unwrap_or(0));
    let start = rcgen::date_time_ymd(1970, 1, 1) + since_epoch - std::time::Duration::from_secs(3600);
    params.not_before = start;
    params.not_after = start + std::time::Duration::from_secs(VALID_DAYS * 86_400);
    for dns in &names.dns {
        if let Ok(name) = dns.clone().try_into() {
            params.subject_alt_names.push(SanType::DnsName(name));
        }
    }
    params.subject_alt_names.extend(names.ips.iter().copied().map(SanType::IpAddress));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key)?;
    Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
}

/// The client CA: `--client-ca-file`, else the cluster CA of `kubeconfig`
/// (embedded data or a file it names); `None` when neither gives one
/// (client certificates are then not accepted, only tokens).
pub fn client_ca(file: Option<&Path>, kubeconfig: Option<&Path>) -> Result<Option<String>, Error> {
    if let Some(file) = file {
        return read(file).map(Some);
    }
    let Some(path) = kubeconfig else { return Ok(None) };
    let fail = |message: String| Error::Kubeconfig { path: path.to_path_buf(), message };
    let config = kube::config::Kubeconfig::read_from(path).map_err(|e| fail(e.to_string()))?;
    let context_name = config.current_context.clone().unwrap_or_default();
    let cluster_name = config
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone());
    let cluster = config
        .clusters
        .iter()
        .find(|c| Some(&c.name) == cluster_name.as_ref())
        .or_else(|| config.clusters.first())
        .and_then(|c| c.cluster.as_ref());
    let Some(cluster) = cluster else { return Ok(None) };
    if let Some(data) = &cluster.certificate_authority_data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| fail(format!("certificate-authority-data: {e}")))?;
        return String::from_utf8(bytes).map(Some).map_err(|e| fail(format!("certificate-authority-data: {e}")));
    }
    match &cluster.certificate_authority {
        Some(file) => {
            let file = Path::new(file);
            let file =
                if file.is_relative() { path.parent().unwrap_or(Path::new(".")).join(file) } else { file.into() };
            read(&file).map(Some)
        }
        None => Ok(None),
    }
}

fn now_unix() -> i64 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

fn private_dir(dir: &Path) -> Result<(), Error> {
    let io = |source| Error::Io { path: dir.to_path_buf(), source };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

/// Writes `text` to `path` as a fresh 0600 file (via a temporary file and a rename).
fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ServingNames {
        ServingNames::new("n1", "host", &["10.0.0.5".parse().expect("ip"), "0.0.0.0".parse().expect("ip")])
    }

    #[test]
    fn names_skip_wildcards_and_duplicates() {
        let n = ServingNames::new("n1", "n1", &["10.0.0.5".parse().expect("ip"), "10.0.0.5".parse().expect("ip")]);
        assert_eq!(n.dns, ["n1"]);
        assert_eq!(n.ips.len(), 1);
        assert_eq!(names().ips, ["10.0.0.5".parse::<IpAddr>().expect("ip")]);
    }

    #[test]
    fn a_generated_certificate_fits_until_a_day_before_it_expires_and_only_its_addresses() {
        let pem = self_signed(&names()).expect("cert");
        let now = now_unix();
        assert!(still_fits(&pem.cert, &names(), now));
        assert!(!still_fits(&pem.cert, &names(), now + 364 * 86_400), "renewed in its last day");
        let moved = ServingNames::new("n1", "host", &["10.0.0.6".parse().expect("ip")]);
        assert!(!still_fits(&pem.cert, &moved, now), "a new node IP makes a new certificate");
        assert!(!still_fits("garbage", &names(), now));
    }

    #[test]
    fn the_certificate_is_made_once_with_a_private_key_and_reused() {
        let dir = tempfile::tempdir().expect("tmp");
        let pki = dir.path().join("pki");
        let first = serving(None, &pki, &names()).expect("made");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&pki.join("kubelet.key")), 0o600);
        assert_eq!(mode(&pki), 0o700);
        assert_eq!(serving(None, &pki, &names()).expect("reused"), first);
        let given =
            serving(Some((&pki.join("kubelet.crt"), &pki.join("kubelet.key"))), &dir.path().join("x"), &names());
        assert_eq!(given.expect("given files"), first);
    }

    #[test]
    fn the_client_ca_comes_from_the_kubeconfig_when_no_file_is_given() {
        let dir = tempfile::tempdir().expect("tmp");
        let kubeconfig = dir.path().join("kubeconfig");
        let ca = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let data = base64::engine::general_purpose::STANDARD.encode(ca);
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://x\n    certificate-authority-data: {data}\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user: {{}}\n"
        );
        std::fs::write(&kubeconfig, text).expect("write");
        assert_eq!(client_ca(None, Some(&kubeconfig)).expect("ca").as_deref(), Some(ca));
        let file = dir.path().join("ca.crt");
        std::fs::write(&file, "other").expect("write");
        assert_eq!(client_ca(Some(&file), Some(&kubeconfig)).expect("ca").as_deref(), Some("other"));
        assert_eq!(client_ca(None, None).expect("none"), None);
    }
}
