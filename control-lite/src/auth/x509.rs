//! The client-certificate authenticator's reading of a certificate: the
//! subject's CN is the user name, each O a group (upstream's
//! `CommonNameUserConversion`). The chain was verified against the cluster
//! CA during the TLS handshake; this only reads the verified leaf.

use x509_parser::prelude::{FromDer, X509Certificate};

use super::user::UserInfo;

/// The user a verified client certificate names; `None` when it has no CN
/// (upstream refuses such a certificate as a credential).
pub fn user_of_cert(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    if name.is_empty() {
        return None;
    }
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
    Some(UserInfo { name, uid: String::new(), groups })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ca::Ca;
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::CertificateDer;

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem").to_vec()
    }

    #[test]
    fn common_name_is_the_user_and_organizations_are_groups() {
        let ca = Ca::generate().expect("ca");
        let node = ca.issue_client("system:node:n1", "system:nodes").expect("issue");
        let user = user_of_cert(&der(&node.cert_pem)).expect("user");
        assert_eq!(user.name, "system:node:n1");
        assert_eq!(user.groups, ["system:nodes"]);
        let admin = ca.issue_client("bosun-admin", "system:masters").expect("issue");
        assert_eq!(user_of_cert(&der(&admin.cert_pem)).expect("user").groups, ["system:masters"]);
    }

    #[test]
    fn garbage_is_no_user() {
        assert_eq!(user_of_cert(b"not a certificate"), None);
    }
}
