//! certificates.k8s.io/v1 CertificateSigningRequest, as upstream's registry
//! strategies: the requester (`spec.username`, `uid`, `groups`, `extra`) is
//! the authenticated user, set on create and never taken from the client;
//! the spec never changes after create; `/status` writes the certificate
//! and conditions other than Approved/Denied; `/approval` writes only the
//! conditions. Validation with upstream field paths, and the table columns
//! kubectl prints (one definition of both here).
//!
//! Must not: approve or sign (`controllers::csr` does, with the CA).

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::crud::UpdateScope;
use super::duration::human_duration;
use super::objects::now_rfc3339;
use super::status::Cause;
use super::table::Column;
use crate::auth::csr;
use crate::auth::user::UserInfo;

/// The condition an approver adds.
pub const APPROVED: &str = "Approved";
/// The condition a denier adds.
pub const DENIED: &str = "Denied";
/// The condition a signer adds when it cannot sign.
pub const FAILED: &str = "Failed";
/// Shortest `spec.expirationSeconds` accepted (upstream: 10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Most conditions a request may carry.
const MAX_CONDITIONS: usize = 32;

/// Every usage name upstream accepts (`KeyUsage`).
pub const USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// Sets the requester fields of a new request from `user` (whatever the client sent).
pub fn set_requester(obj: &mut Value, user: &UserInfo) {
    let Some(o) = obj.as_object_mut() else { return };
    let spec = o.entry("spec").or_insert_with(|| json!({}));
    let Some(spec) = spec.as_object_mut() else { return };
    spec.insert("username".into(), json!(user.name));
    spec.insert("groups".into(), json!(user.groups));
    if user.uid.is_empty() {
        spec.remove("uid");
    } else {
        spec.insert("uid".into(), json!(user.uid));
    }
    spec.remove("extra");
}

fn conditions(obj: &Value) -> &[Value] {
    obj.pointer("/status/conditions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn ctype(c: &Value) -> &str {
    c.get("type").and_then(Value::as_str).unwrap_or_default()
}

fn is_approval(c: &Value) -> bool {
    matches!(ctype(c), APPROVED | DENIED)
}

/// Whether `obj` has a condition of type `t`.
pub fn has_condition(obj: &Value, t: &str) -> bool {
    conditions(obj).iter().any(|c| ctype(c) == t)
}

/// Makes `next` (the merged write) what the scope may change of `current`:
/// the spec always stays; `/status` keeps the stored approval conditions;
/// `/approval` keeps the stored certificate. Conditions get their times.
pub fn prepare_update(scope: UpdateScope, current: &Value, next: &mut Value) {
    let Some(o) = next.as_object_mut() else { return };
    match current.get("spec") {
        Some(spec) => o.insert("spec".into(), spec.clone()),
        None => o.remove("spec"),
    };
    let mut conds: Vec<Value> = conditions(next).to_vec();
    match scope {
        UpdateScope::Status => {
            conds.retain(|c| !is_approval(c));
            conds.extend(conditions(current).iter().filter(|c| is_approval(c)).cloned());
        }
        UpdateScope::Approval => {
            let cert = current.pointer("/status/certificate").cloned();
            if let Some(status) = status_mut(next) {
                match cert {
                    Some(c) => status.insert("certificate".into(), c),
                    None => status.remove("certificate"),
                };
            }
        }
        _ => return,
    }
    let now = now_rfc3339();
    for c in &mut conds {
        let before = conditions(current).iter().find(|old| ctype(old) == ctype(c)).cloned();
        let Some(m) = c.as_object_mut() else { continue };
        if !m.contains_key("lastUpdateTime") {
            m.insert("lastUpdateTime".into(), json!(now));
        }
        let same_status = before.as_ref().is_some_and(|b| b.get("status") == m.get("status"));
        let old_transition = before.as_ref().and_then(|b| b.get("lastTransitionTime")).cloned();
        match (same_status, old_transition) {
            (true, Some(t)) => {
                m.insert("lastTransitionTime".into(), t);
            }
            _ => {
                m.entry("lastTransitionTime").or_insert_with(|| json!(now));
            }
        }
    }
    if let Some(status) = status_mut(next) {
        if conds.is_empty() {
            status.remove("conditions");
        } else {
            status.insert("conditions".into(), Value::Array(conds));
        }
    }
}

fn status_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    obj.get_mut("status").and_then(Value::as_object_mut)
}

/// The decoded `spec.request` (base64 in JSON).
pub fn request_bytes(obj: &Value) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = obj.pointer("/spec/request").and_then(Value::as_str)?;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// Upstream's `CertificateSubjectRestriction` admission (on by default): no
/// request to the `kube-apiserver-client` signer may name the
/// `system:masters` group, which no authorizer could ever narrow.
pub fn restrict_subject(obj: &Value) -> Result<(), super::status::ApiError> {
    let signer = obj.pointer("/spec/signerName").and_then(Value::as_str).unwrap_or_default();
    if signer != "kubernetes.io/kube-apiserver-client" {
        return Ok(());
    }
    let masters = request_bytes(obj)
        .and_then(|bytes| csr::parse_pem(&bytes).ok())
        .is_some_and(|req| req.organizations.iter().any(|o| o == crate::auth::user::MASTERS));
    if masters {
        return Err(super::status::ApiError::Forbidden(format!(
            "use of {signer} signer with system:masters group is not allowed"
        )));
    }
    Ok(())
}

/// Validates a request (upstream `ValidateCertificateSigningRequestCreate` and its status rules).
pub fn validate(obj: &Value, out: &mut Vec<Cause>) {
    match request_bytes(obj) {
        None => out.push(Cause::required("spec.request")),
        Some(bytes) if bytes.is_empty() => out.push(Cause::required("spec.request")),
        Some(bytes) => {
            if let Err(e) = csr::parse_pem(&bytes) {
                out.push(Cause::invalid("spec.request", "[]byte{...}", &e.to_string()));
            }
        }
    }
    let signer = obj.pointer("/spec/signerName").and_then(Value::as_str).unwrap_or_default();
    if signer.is_empty() {
        out.push(Cause::required("spec.signerName"));
    } else if let Err(detail) = signer_name_error(signer) {
        out.push(Cause::invalid("spec.signerName", signer, detail));
    }
    let usages = obj.pointer("/spec/usages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if usages.is_empty() {
        out.push(Cause::required("spec.usages"));
    }
    let mut seen = Vec::new();
    for (i, u) in usages.iter().enumerate() {
        let u = u.as_str().unwrap_or_default();
        if !USAGES.contains(&u) {
            out.push(Cause::not_supported(format!("spec.usages[{i}]"), u, USAGES));
        } else if seen.contains(&u) {
            out.push(Cause::duplicate(format!("spec.usages[{i}]"), u));
        }
        seen.push(u);
    }
    if let Some(secs) = obj.pointer("/spec/expirationSeconds").and_then(Value::as_i64) {
        if secs < MIN_EXPIRATION_SECONDS {
            out.push(Cause::invalid(
                "spec.expirationSeconds",
                &secs.to_string(),
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
    }
    validate_status(obj, out);
}

fn validate_status(obj: &Value, out: &mut Vec<Cause>) {
    let conds = conditions(obj);
    if conds.len() > MAX_CONDITIONS {
        out.push(Cause {
            reason: "FieldValueTooMany",
            field: "status.conditions".into(),
            message: format!("Too many: {}: must have at most {MAX_CONDITIONS} items", conds.len()),
        });
        return;
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, c) in conds.iter().enumerate() {
        let t = ctype(c);
        let field = format!("status.conditions[{i}]");
        if t.is_empty() {
            out.push(Cause::required(format!("{field}.type")));
            continue;
        }
        if matches!(t, APPROVED | DENIED | FAILED) {
            if seen.contains(&t) {
                out.push(Cause::duplicate(format!("{field}.type"), t));
            }
            let status = c.get("status").and_then(Value::as_str).unwrap_or_default();
            if status != "True" {
                out.push(Cause::not_supported(format!("{field}.status"), status, &["True"]));
            }
        }
        seen.push(t);
    }
    if seen.contains(&APPROVED) && seen.contains(&DENIED) {
        out.push(Cause::invalid("status.conditions", "", "Approved and Denied conditions are mutually exclusive"));
    }
    let cert = obj.pointer("/status/certificate").and_then(Value::as_str).unwrap_or_default();
    if !cert.is_empty() {
        if !seen.contains(&APPROVED) || seen.contains(&DENIED) || seen.contains(&FAILED) {
            out.push(Cause {
                reason: "FieldValueForbidden",
                field: "status.certificate".into(),
                message: "Forbidden: certificate may only be set when the request is Approved and not Denied or Failed"
                    .into(),
            });
        }
        use base64::Engine as _;
        let pem = base64::engine::general_purpose::STANDARD.decode(cert).unwrap_or_default();
        if !is_certificate_pem(&pem) {
            out.push(Cause::invalid(
                "status.certificate",
                "<certificate data>",
                "must contain at least one CERTIFICATE PEM block",
            ));
        }
    }
}

fn is_certificate_pem(pem: &[u8]) -> bool {
    use rustls_pki_types::pem::PemObject as _;
    let mut certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem);
    matches!(certs.next(), Some(Ok(_))) && certs.all(|c| c.is_ok())
}

/// `example.com/path`: a DNS subdomain, a slash, a non-empty path (upstream's `ValidateSignerName`).
fn signer_name_error(signer: &str) -> Result<(), &'static str> {
    let Some((domain, path)) = signer.split_once('/') else {
        return Err("must be a fully qualified domain and path of the form 'example.com/signer-name'");
    };
    if path.is_empty() || path.len() > 253 || path.contains('/') && path.split('/').any(str::is_empty) {
        return Err("validating path: must not be empty or contain empty segments");
    }
    if !super::validation::is_dns1123_subdomain(domain) || !domain.contains('.') {
        return Err("the domain must be a fully qualified DNS subdomain");
    }
    Ok(())
}

/// Update rules (upstream's update validations): an approval condition,
/// once set, stays; a certificate, once set, never changes.
pub fn validate_update(old: &Value, new: &Value, out: &mut Vec<Cause>) {
    for t in [APPROVED, DENIED] {
        if has_condition(old, t) && !has_condition(new, t) {
            out.push(Cause {
                reason: "FieldValueForbidden",
                field: "status.conditions".into(),
                message: format!("Forbidden: updates may not remove a condition of type {t:?}"),
            });
        }
    }
    let cert = |o: &Value| o.pointer("/status/certificate").and_then(Value::as_str).unwrap_or_default().to_string();
    if !cert(old).is_empty() && cert(old) != cert(new) {
        out.push(Cause {
            reason: "FieldValueForbidden",
            field: "status.certificate".into(),
            message: "Forbidden: updates may not modify existing certificate content".into(),
        });
    }
}

/// The columns kubectl prints.
pub fn columns() -> Vec<Column> {
    vec![
        ("Name", "string", 0, "Name must be unique within a namespace."),
        (
            "Age",
            "string",
            0,
            "CreationTimestamp is a timestamp representing the server time when this object was created.",
        ),
        ("SignerName", "string", 0, "signerName indicates the requested signer, and is a qualified name."),
        (
            "Requestor",
            "string",
            0,
            "username contains the name of the user that created the CertificateSigningRequest.",
        ),
        (
            "RequestedDuration",
            "string",
            0,
            "expirationSeconds is the requested duration of validity of the issued certificate.",
        ),
        ("Condition", "string", 0, "The conditions of the request and whether a certificate was issued."),
    ]
}

/// One row's cells (`name` and `age` rendered by the caller).
pub fn cells(obj: &Value, name: Value, age: Value, _now: Timestamp) -> Vec<Value> {
    let signer = obj.pointer("/spec/signerName").and_then(Value::as_str).filter(|s| !s.is_empty());
    let requestor = obj.pointer("/spec/username").and_then(Value::as_str).unwrap_or_default();
    let duration = obj
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .map(human_duration)
        .unwrap_or_else(|| "<none>".into());
    vec![name, age, json!(signer.unwrap_or("<none>")), json!(requestor), json!(duration), json!(condition(obj))]
}

/// Upstream's CONDITION column: Denied, else Approved, else Pending; then `,Failed`, `,Issued`.
pub fn condition(obj: &Value) -> String {
    let mut out = if has_condition(obj, DENIED) {
        DENIED.to_string()
    } else if has_condition(obj, APPROVED) {
        APPROVED.to_string()
    } else {
        "Pending".to_string()
    };
    if has_condition(obj, FAILED) {
        out.push_str(",Failed");
    }
    if obj.pointer("/status/certificate").and_then(Value::as_str).is_some_and(|c| !c.is_empty()) {
        out.push_str(",Issued");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn csr_obj() -> Value {
        let key = rcgen::KeyPair::generate().expect("key");
        let pem = csr::make_pem("system:node:n1", &["system:nodes"], &key).expect("csr");
        json!({"metadata": {"name": "c"}, "spec": {"request": b64(&pem),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet", "usages": ["client auth"]}})
    }

    fn fields(obj: &Value) -> Vec<String> {
        let mut out = Vec::new();
        validate(obj, &mut out);
        out.into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn no_apiserver_client_request_may_name_system_masters() {
        let key = rcgen::KeyPair::generate().expect("key");
        let request = |orgs: &[&str], signer: &str| {
            let pem = csr::make_pem("mallory", orgs, &key).expect("csr");
            json!({"spec": {"request": b64(&pem), "signerName": signer, "usages": ["client auth"]}})
        };
        let client = "kubernetes.io/kube-apiserver-client";
        let refused = restrict_subject(&request(&["dev", "system:masters"], client));
        assert!(matches!(&refused, Err(super::super::status::ApiError::Forbidden(m)) if m.contains("system:masters")));
        assert!(restrict_subject(&request(&["dev"], client)).is_ok());
        assert!(restrict_subject(&request(&["system:masters"], "example.com/custom")).is_ok());
    }

    #[test]
    fn validation_names_the_bad_fields() {
        assert!(fields(&csr_obj()).is_empty());
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("no request", json!(null), vec!["spec.request"]),
            ("not pem", json!(b64("hello")), vec!["spec.request"]),
        ];
        for (what, request, want) in cases {
            let mut o = csr_obj();
            o["spec"]["request"] = request;
            assert_eq!(fields(&o), want, "{what}");
        }
        let mut o = csr_obj();
        o["spec"]["signerName"] = json!("");
        o["spec"]["usages"] = json!(["client auth", "flying", "client auth"]);
        o["spec"]["expirationSeconds"] = json!(60);
        assert_eq!(fields(&o), ["spec.signerName", "spec.usages[1]", "spec.usages[2]", "spec.expirationSeconds"]);
        for bad in ["nodomain", "example.com/", "Exa mple.com/x", "localhost/x"] {
            o = csr_obj();
            o["spec"]["signerName"] = json!(bad);
            assert_eq!(fields(&o), ["spec.signerName"], "{bad}");
        }
    }

    #[test]
    fn status_rules_on_conditions_and_certificate() {
        let cond = |t: &str| json!({"type": t, "status": "True"});
        let mut o = csr_obj();
        o["status"] = json!({"conditions": [cond(APPROVED), cond(DENIED)]});
        assert_eq!(fields(&o), ["status.conditions"]);
        o["status"] = json!({"certificate": b64("x")});
        assert_eq!(fields(&o), ["status.certificate", "status.certificate"]);
        o["status"] = json!({"conditions": [{"type": APPROVED, "status": "False"}]});
        assert_eq!(fields(&o), ["status.conditions[0].status"]);
    }

    #[test]
    fn approval_writes_only_conditions_and_status_keeps_approval() {
        let cond = |t: &str| json!({"type": t, "status": "True"});
        let mut current = csr_obj();
        current["status"] = json!({"conditions": [cond(APPROVED)]});
        // /status cannot drop the approval but sets the certificate.
        let mut next = current.clone();
        next["spec"]["usages"] = json!(["server auth"]);
        next["status"] = json!({"certificate": "Y2VydA=="});
        prepare_update(UpdateScope::Status, &current, &mut next);
        assert_eq!(next["spec"], current["spec"]);
        assert_eq!(next["status"]["certificate"], "Y2VydA==");
        assert!(has_condition(&next, APPROVED));
        // /approval cannot set the certificate.
        let mut next = csr_obj();
        next["status"] = json!({"certificate": "Y2VydA==", "conditions": [cond(DENIED)]});
        let fresh = csr_obj();
        prepare_update(UpdateScope::Approval, &fresh, &mut next);
        assert!(next.pointer("/status/certificate").is_none());
        assert!(has_condition(&next, DENIED));
        assert!(next.pointer("/status/conditions/0/lastUpdateTime").is_some());
    }

    #[test]
    fn approval_and_certificate_cannot_be_taken_back() {
        let mut old = csr_obj();
        old["status"] = json!({"conditions": [{"type": APPROVED, "status": "True"}], "certificate": "YQ=="});
        let mut new = old.clone();
        new["status"] = json!({"certificate": "Yg=="});
        let mut out = Vec::new();
        validate_update(&old, &new, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn condition_column_like_upstream() {
        let with = |conds: Value, cert: Option<&str>| {
            let mut o = json!({"status": {"conditions": conds}});
            if let Some(c) = cert {
                o["status"]["certificate"] = json!(c);
            }
            condition(&o)
        };
        assert_eq!(with(json!([]), None), "Pending");
        assert_eq!(with(json!([{"type": "Approved"}]), Some("YQ==")), "Approved,Issued");
        assert_eq!(with(json!([{"type": "Denied"}]), None), "Denied");
        assert_eq!(with(json!([{"type": "Approved"}, {"type": "Failed"}]), None), "Approved,Failed");
    }

    #[test]
    fn requester_comes_from_the_user_not_the_client() {
        let mut o = csr_obj();
        o["spec"]["username"] = json!("system:admin");
        o["spec"]["extra"] = json!({"x": ["y"]});
        let user = UserInfo { name: "system:bootstrap:abcdef".into(), uid: String::new(), groups: vec!["g".into()] };
        set_requester(&mut o, &user);
        assert_eq!(o["spec"]["username"], "system:bootstrap:abcdef");
        assert_eq!(o["spec"]["groups"], json!(["g"]));
        assert!(o["spec"].get("extra").is_none());
    }
}
