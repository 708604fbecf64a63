//! The signing decision (upstream's `csrsigning` with the cluster CA): an
//! Approved (not Denied, not Failed, not yet issued) request for one of the
//! signers served here is signed when it meets that signer's rules, or
//! marked Failed when it does not. Requests for other signers are left to
//! whoever serves them.
//!
//! - `kubernetes.io/kube-apiserver-client-kubelet`: a node client request
//!   (see [`super::approve::is_node_client`]).
//! - `kubernetes.io/kube-apiserver-client`: any CN, usages `client auth`
//!   with at most `digital signature` and `key encipherment`, no SANs.
//! - `kubernetes.io/kubelet-serving`: CN `system:node:<name>`, O
//!   `system:nodes`, usages `server auth` (+ the same two), at least one DNS
//!   or IP SAN and nothing else.
//!
//! The lifetime is `spec.expirationSeconds` (at least [`MIN_LIFETIME`], as
//! the API validates it) capped at `max` (`--cluster-signing-duration`);
//! without it, `max`.

use std::time::Duration;

use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
use serde_json::Value;

use super::approve::{is_node_client, usages, KUBELET_CLIENT_SIGNER, NODES_GROUP};
use crate::apiserver::certificates::{has_condition, request_bytes, APPROVED, DENIED, FAILED};
use crate::auth::ca::Terms;
use crate::auth::csr::{self, Request};

/// The signer of client certificates for the apiserver.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// The signer of kubelet serving certificates.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// Shortest lifetime signed (upstream's minimum `expirationSeconds`).
pub const MIN_LIFETIME: Duration = Duration::from_secs(600);
/// Longest lifetime signed by default (upstream's `--cluster-signing-duration`).
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Not ours, or not ready, or done.
    Skip,
    /// Sign the parsed request with these terms.
    Sign(Box<Request>, Terms),
    /// Add a Failed condition with this message.
    Fail(String),
}

const EXTRA_USAGES: &[&str] = &["digital signature", "key encipherment"];

/// The plan for request object `obj` with a longest lifetime of `max`.
pub fn plan(obj: &Value, max: Duration) -> Plan {
    let signer = obj.pointer("/spec/signerName").and_then(Value::as_str).unwrap_or_default();
    let issued = obj.pointer("/status/certificate").and_then(Value::as_str).is_some_and(|c| !c.is_empty());
    if !has_condition(obj, APPROVED) || has_condition(obj, DENIED) || has_condition(obj, FAILED) || issued {
        return Plan::Skip;
    }
    if ![KUBELET_CLIENT_SIGNER, CLIENT_SIGNER, KUBELET_SERVING_SIGNER].contains(&signer) {
        return Plan::Skip;
    }
    let req = match request_bytes(obj).map(|b| csr::parse_pem(&b)) {
        Some(Ok(req)) => req,
        Some(Err(e)) => return Plan::Fail(e.to_string()),
        None => return Plan::Fail("no request".into()),
    };
    let usages = usages(obj);
    let only = |required: &str| {
        usages.contains(&required) && usages.iter().all(|u| *u == required || EXTRA_USAGES.contains(u))
    };
    let no_sans = req.dns_names.is_empty() && req.ips.is_empty() && req.other_sans == 0;
    let (ok, why, eku, with_sans) = match signer {
        KUBELET_CLIENT_SIGNER => (
            is_node_client(&req, &usages),
            "subject must be CN system:node:<name>, O system:nodes, usages client auth (with digital signature, key encipherment), no SANs",
            ExtendedKeyUsagePurpose::ClientAuth,
            false,
        ),
        CLIENT_SIGNER => (
            !req.common_name.is_empty() && only("client auth") && no_sans,
            "needs a CN, usages client auth (with digital signature, key encipherment) and no SANs",
            ExtendedKeyUsagePurpose::ClientAuth,
            false,
        ),
        _ => (
            req.organizations == [NODES_GROUP]
                && req.common_name.strip_prefix(crate::auth::node::NODE_USER_PREFIX).is_some_and(|n| !n.is_empty())
                && only("server auth")
                && (!req.dns_names.is_empty() || !req.ips.is_empty())
                && req.other_sans == 0,
            "subject must be CN system:node:<name>, O system:nodes, usages server auth (with digital signature, key encipherment), DNS or IP SANs only",
            ExtendedKeyUsagePurpose::ServerAuth,
            true,
        ),
    };
    if !ok {
        return Plan::Fail(format!("invalid request for signer {signer:?}: {why}"));
    }
    let mut key_usages = Vec::new();
    if usages.contains(&"digital signature") {
        key_usages.push(KeyUsagePurpose::DigitalSignature);
    }
    if usages.contains(&"key encipherment") {
        key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    let terms = Terms { key_usages, extended: vec![eku], lifetime: lifetime(obj, max), with_sans };
    Plan::Sign(Box::new(req), terms)
}

/// `spec.expirationSeconds`, at least [`MIN_LIFETIME`], capped at `max`;
/// `max` without it.
pub fn lifetime(obj: &Value, max: Duration) -> Duration {
    match obj.pointer("/spec/expirationSeconds").and_then(Value::as_u64) {
        Some(secs) => Duration::from_secs(secs).max(MIN_LIFETIME).min(max),
        None => max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    fn obj(cn: &str, orgs: &[&str], sans: &[&str], signer: &str, usages: &[&str], conds: &[&str]) -> Value {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
        let mut dn = rcgen::DistinguishedName::new();
        for o in orgs {
            dn.push(rcgen::DnType::OrganizationName, *o);
        }
        dn.push(rcgen::DnType::CommonName, cn);
        params.distinguished_name = dn;
        let pem = params.serialize_request(&key).expect("csr").pem().expect("pem");
        let conditions: Vec<Value> = conds.iter().map(|t| json!({"type": t, "status": "True"})).collect();
        json!({"spec": {"request": base64::engine::general_purpose::STANDARD.encode(pem), "signerName": signer,
            "usages": usages}, "status": {"conditions": conditions}})
    }

    fn kind(p: &Plan) -> &'static str {
        match p {
            Plan::Skip => "skip",
            Plan::Sign(..) => "sign",
            Plan::Fail(_) => "fail",
        }
    }

    #[test]
    fn signs_only_approved_requests_that_meet_their_signer() {
        let node = "system:node:n1";
        let nodes: &[&str] = &[NODES_GROUP];
        let client: &[&str] = &["client auth", "digital signature"];
        let serving: &[&str] = &["server auth", "digital signature", "key encipherment"];
        let ok: &[&str] = &[APPROVED];
        let cases: Vec<(&str, Value, &str)> = vec![
            ("pending", obj(node, nodes, &[], KUBELET_CLIENT_SIGNER, client, &[]), "skip"),
            ("denied", obj(node, nodes, &[], KUBELET_CLIENT_SIGNER, client, &[DENIED]), "skip"),
            ("failed", obj(node, nodes, &[], KUBELET_CLIENT_SIGNER, client, &[APPROVED, FAILED]), "skip"),
            ("other signer", obj(node, nodes, &[], "example.com/x", client, ok), "skip"),
            ("kubelet client", obj(node, nodes, &[], KUBELET_CLIENT_SIGNER, client, ok), "sign"),
            ("kubelet client not a node", obj("bob", nodes, &[], KUBELET_CLIENT_SIGNER, client, ok), "fail"),
            ("client", obj("alice", &["dev"], &[], CLIENT_SIGNER, client, ok), "sign"),
            ("client with server auth", obj("alice", &[], &[], CLIENT_SIGNER, serving, ok), "fail"),
            ("client with SANs", obj("alice", &[], &["a.example"], CLIENT_SIGNER, client, ok), "fail"),
            ("serving", obj(node, nodes, &["n1.example", "10.0.0.1"], KUBELET_SERVING_SIGNER, serving, ok), "sign"),
            ("serving without SANs", obj(node, nodes, &[], KUBELET_SERVING_SIGNER, serving, ok), "fail"),
        ];
        for (what, o, want) in cases {
            assert_eq!(kind(&plan(&o, DEFAULT_MAX_LIFETIME)), want, "{what}");
        }
        let mut issued = obj(node, nodes, &[], KUBELET_CLIENT_SIGNER, client, ok);
        issued["status"]["certificate"] = json!("YQ==");
        assert_eq!(plan(&issued, DEFAULT_MAX_LIFETIME), Plan::Skip);
    }

    #[test]
    fn lifetime_is_the_request_bounded() {
        let max = Duration::from_secs(7200);
        let with = |secs: Option<u64>| lifetime(&json!({"spec": {"expirationSeconds": secs}}), max);
        assert_eq!(with(None), max);
        assert_eq!(with(Some(3600)), Duration::from_secs(3600));
        assert_eq!(with(Some(1_000_000)), max);
        assert_eq!(with(Some(1)), MIN_LIFETIME);
        let short = Duration::from_secs(60);
        let capped = lifetime(&json!({"spec": {"expirationSeconds": 3600}}), short);
        assert_eq!(capped, short, "--cluster-signing-duration caps even the minimum");
    }

    #[test]
    fn a_signed_certificate_names_the_requested_subject_for_its_lifetime() {
        let ca = crate::auth::ca::Ca::generate().expect("ca");
        let mut o = obj("system:node:n1", &[NODES_GROUP], &[], KUBELET_CLIENT_SIGNER, &["client auth"], &[APPROVED]);
        o["spec"]["expirationSeconds"] = json!(3600);
        let Plan::Sign(req, terms) = plan(&o, DEFAULT_MAX_LIFETIME) else { panic!("sign") };
        let pem = ca.sign_request(&req, &terms).expect("signed");
        use rustls_pki_types::pem::PemObject as _;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).expect("der");
        let user = crate::auth::x509::user_of_cert(&der).expect("user");
        assert_eq!(
            (user.name.as_str(), user.groups.as_slice()),
            ("system:node:n1", [NODES_GROUP.to_string()].as_slice())
        );
        use x509_parser::prelude::FromDer as _;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).expect("parse");
        let validity = cert.validity();
        let secs = validity.not_after.timestamp() - validity.not_before.timestamp();
        assert_eq!(secs, 3600 + 300, "lifetime plus the backdate");
    }
}
