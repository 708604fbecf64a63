//! The cluster CA: generated at the first start of `bosun control` in its
//! data directory (`pki/ca.crt`, `pki/ca.key`, 0600 in 0700) and reused on
//! every restart. It signs the apiserver's serving certificate (fresh at
//! each start) and client certificates: CN is the user, O the groups, as
//! upstream's x509 authenticator reads them.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::files::write_private;

/// Issuing or loading a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("subject alternative name {0:?}: {1}")]
    San(String, rcgen::Error),
}

/// How long the CA is valid.
const CA_DAYS: i64 = 3650;
/// How long issued certificates are valid.
const LEAF_DAYS: i64 = 365;

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Credential {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The cluster's certificate authority.
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new CA, in memory only.
    pub fn generate() -> Result<Ca, Error> {
        let key = KeyPair::generate()?;
        let mut params = validity(CertificateParams::default(), CA_DAYS);
        params.distinguished_name = name("bosun-ca", None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        Ok(Ca { cert_pem, issuer })
    }

    /// Loads the CA from `dir/ca.crt` and `dir/ca.key`, or generates and
    /// saves one there (0600 files, `dir` 0700) when there is none yet.
    pub fn load_or_create(dir: &Path) -> Result<Ca, Error> {
        let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| Error::Io { path, source }
        };
        if cert_path.exists() && key_path.exists() {
            let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
            let key = KeyPair::from_pem(&std::fs::read_to_string(&key_path).map_err(io(&key_path))?)?;
            super::files::private_dir(dir).map_err(io(dir))?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
            return Ok(Ca { cert_pem, issuer });
        }
        let ca = Ca::generate()?;
        write_private(&key_path, ca.issuer.key().serialize_pem().as_bytes()).map_err(io(&key_path))?;
        write_private(&cert_path, ca.cert_pem.as_bytes()).map_err(io(&cert_path))?;
        Ok(ca)
    }

    /// The CA certificate (PEM), which clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A client certificate for `user` in `group` (CN and O; rcgen writes
    /// one value per attribute type, so one group; "" for none).
    pub fn issue_client(&self, user: &str, group: &str) -> Result<Credential, Error> {
        let mut params = validity(CertificateParams::default(), LEAF_DAYS);
        params.distinguished_name = name(user, Some(group));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    /// A client certificate as [`Ca::issue_client`], valid for `lifetime`
    /// (backdated as [`Ca::sign_request`] does).
    pub fn issue_client_for(
        &self,
        user: &str,
        group: &str,
        lifetime: std::time::Duration,
    ) -> Result<Credential, Error> {
        let mut params = valid_for(CertificateParams::default(), lifetime);
        params.distinguished_name = name(user, Some(group));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    /// A serving certificate for these DNS names and IP addresses.
    pub fn issue_server(&self, dns_names: &[&str], ips: &[IpAddr]) -> Result<Credential, Error> {
        let mut params = validity(CertificateParams::default(), LEAF_DAYS);
        params.distinguished_name = name("bosun-apiserver", None);
        for dns in dns_names {
            let san = (*dns).try_into().map_err(|e| Error::San(dns.to_string(), e))?;
            params.subject_alt_names.push(SanType::DnsName(san));
        }
        params.subject_alt_names.extend(ips.iter().copied().map(SanType::IpAddress));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// Signs a verified request's key and subject (CN and O) with `terms`;
    /// SANs only when the terms allow them. Returns the certificate PEM.
    pub fn sign_request(&self, req: &super::csr::Request, terms: &Terms) -> Result<String, Error> {
        let mut params = valid_for(CertificateParams::default(), terms.lifetime);
        let mut dn = DistinguishedName::new();
        for org in &req.organizations {
            dn.push(DnType::OrganizationName, org.as_str());
        }
        dn.push(DnType::CommonName, req.common_name.as_str());
        params.distinguished_name = dn;
        if terms.with_sans {
            for dns in &req.dns_names {
                let san = dns.as_str().try_into().map_err(|e| Error::San(dns.clone(), e))?;
                params.subject_alt_names.push(SanType::DnsName(san));
            }
            params.subject_alt_names.extend(req.ips.iter().copied().map(SanType::IpAddress));
        }
        params.key_usages = terms.key_usages.clone();
        params.extended_key_usages = terms.extended.clone();
        params.is_ca = IsCa::ExplicitNoCa;
        let spki = rcgen::SubjectPublicKeyInfo::from_der(&req.spki_der)?;
        Ok(params.signed_by(&spki, &self.issuer)?.pem())
    }

    fn sign(&self, params: CertificateParams) -> Result<Credential, Error> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Credential { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// How a certificate signed from a request is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    pub key_usages: Vec<KeyUsagePurpose>,
    pub extended: Vec<ExtendedKeyUsagePurpose>,
    pub lifetime: std::time::Duration,
    /// Copy the requested DNS and IP SANs (serving certificates).
    pub with_sans: bool,
}

/// How far back a signed certificate's validity starts (clock skew), as upstream.
const BACKDATE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// The backdate of a certificate valid for `lifetime`: [`BACKDATE`], but
/// at most a tenth of the lifetime, so that a short-lived certificate
/// (`--cluster-signing-duration` of minutes) is not mostly in the past and
/// its holder's renewal (due at 70–90% of notBefore..notAfter) is not due
/// the moment it arrives.
pub fn backdate(lifetime: std::time::Duration) -> std::time::Duration {
    BACKDATE.min(lifetime / 10)
}

/// Valid from [`backdate`] ago for `lifetime` from now.
fn valid_for(mut params: CertificateParams, lifetime: std::time::Duration) -> CertificateParams {
    let now = rcgen::date_time_ymd(1970, 1, 1)
        + std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    params.not_before = now - backdate(lifetime);
    params.not_after = now + lifetime;
    params
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(org) = organization.filter(|o| !o.is_empty()) {
        dn.push(DnType::OrganizationName, org);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Valid from an hour ago (clock skew) for `days`.
fn validity(mut params: CertificateParams, days: i64) -> CertificateParams {
    let now = rcgen::date_time_ymd(1970, 1, 1)
        + std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    params.not_before = now - time_hours(1);
    params.not_after = now + time_hours(days.saturating_mul(24));
    params
}

fn time_hours(hours: i64) -> std::time::Duration {
    std::time::Duration::from_secs(u64::try_from(hours).unwrap_or(0).saturating_mul(3600))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn short_lifetimes_are_backdated_by_a_tenth_at_most() {
        assert_eq!(backdate(Duration::from_secs(365 * 24 * 3600)), BACKDATE);
        assert_eq!(backdate(Duration::from_secs(3600)), BACKDATE);
        assert_eq!(backdate(Duration::from_secs(90)), Duration::from_secs(9));
        assert_eq!(backdate(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_node_certificate_lives_as_long_as_asked() {
        let ca = Ca::generate().expect("ca");
        let cred = ca.issue_client_for("system:node:n1", "system:nodes", Duration::from_secs(120)).expect("cert");
        use rustls_pki_types::pem::PemObject as _;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(cred.cert_pem.as_bytes()).expect("der");
        use x509_parser::prelude::FromDer as _;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).expect("parse");
        let v = cert.validity();
        assert_eq!(v.not_after.timestamp() - v.not_before.timestamp(), 120 + 12);
    }
}
