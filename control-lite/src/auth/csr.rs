//! PKCS#10 certificate requests as the CertificateSigningRequest API carries
//! them (`spec.request`, PEM `CERTIFICATE REQUEST`): parsed, their signature
//! verified (proof that the requester holds the key), and read into the
//! terms the approver and signer decide on. Pure; no I/O.

use std::net::IpAddr;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateSigningRequestDer;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// The longest `spec.request` accepted (a CSR is a few hundred bytes).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Why a request is not a usable CSR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("request is larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    #[error("PEM block type must be CERTIFICATE REQUEST")]
    NotPem,
    #[error("failed to parse certificate request: {0}")]
    Parse(String),
    #[error("certificate request signature does not verify: {0}")]
    Signature(String),
}

/// What a verified request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Subject CN.
    pub common_name: String,
    /// Subject O values, in order.
    pub organizations: Vec<String>,
    /// Requested DNS SANs.
    pub dns_names: Vec<String>,
    /// Requested IP SANs.
    pub ips: Vec<IpAddr>,
    /// Requested e-mail and URI SANs (a kubelet client certificate has none).
    pub other_sans: usize,
    /// The SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
}

/// Parses and verifies a PEM CSR.
pub fn parse_pem(pem: &[u8]) -> Result<Request, Error> {
    if pem.len() > MAX_REQUEST_BYTES {
        return Err(Error::TooLarge);
    }
    let der = CertificateSigningRequestDer::from_pem_slice(pem).map_err(|_| Error::NotPem)?;
    parse_der(der.as_ref())
}

/// Parses and verifies a DER CSR.
pub fn parse_der(der: &[u8]) -> Result<Request, Error> {
    let (_, csr) = X509CertificationRequest::from_der(der).map_err(|e| Error::Parse(e.to_string()))?;
    csr.verify_signature().map_err(|e| Error::Signature(e.to_string()))?;
    let info = &csr.certification_request_info;
    let text = |v: &x509_parser::x509::AttributeTypeAndValue<'_>| v.as_str().map(str::to_string).ok();
    let mut out = Request {
        common_name: info.subject.iter_common_name().find_map(text).unwrap_or_default(),
        organizations: info.subject.iter_organization().filter_map(text).collect(),
        spki_der: info.subject_pki.raw.to_vec(),
        ..Request::default()
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => out.dns_names.push((*d).to_string()),
                    GeneralName::IPAddress(bytes) => match ip_of(bytes) {
                        Some(ip) => out.ips.push(ip),
                        None => out.other_sans = out.other_sans.saturating_add(1),
                    },
                    _ => out.other_sans = out.other_sans.saturating_add(1),
                }
            }
        }
    }
    Ok(out)
}

fn ip_of(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// A CSR for `common_name` in `organizations` with `key` (PEM, as the
/// agent and tests make them).
pub fn make_pem(common_name: &str, organizations: &[&str], key: &rcgen::KeyPair) -> Result<String, rcgen::Error> {
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    for org in organizations {
        dn.push(rcgen::DnType::OrganizationName, *org);
    }
    dn.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.serialize_request(key)?.pem()
}

/// A new key and a CSR with it: (CSR PEM, key PEM).
pub fn generate(common_name: &str, organizations: &[&str]) -> Result<(String, String), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    Ok((make_pem(common_name, organizations, &key)?, key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_request_reads_back_its_subject() {
        let key = rcgen::KeyPair::generate().expect("key");
        let pem = make_pem("system:node:n1", &["system:nodes"], &key).expect("csr");
        let req = parse_pem(pem.as_bytes()).expect("parses");
        assert_eq!(req.common_name, "system:node:n1");
        assert_eq!(req.organizations, ["system:nodes"]);
        assert!(req.dns_names.is_empty() && req.ips.is_empty());
        assert!(!req.spki_der.is_empty());
    }

    #[test]
    fn garbage_and_tampered_requests_are_refused() {
        assert_eq!(parse_pem(b"hello"), Err(Error::NotPem));
        assert_eq!(parse_pem(&vec![b'a'; MAX_REQUEST_BYTES + 1]), Err(Error::TooLarge));
        let key = rcgen::KeyPair::generate().expect("key");
        let pem = make_pem("system:node:n1", &["system:nodes"], &key).expect("csr");
        let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes()).expect("der");
        let mut bytes = der.as_ref().to_vec();
        // Flip a bit inside the subject (the signed part).
        let at = bytes.windows(6).position(|w| w == b"system").expect("subject");
        bytes[at] ^= 1;
        assert!(matches!(parse_der(&bytes), Err(Error::Signature(_) | Error::Parse(_))));
    }
}
