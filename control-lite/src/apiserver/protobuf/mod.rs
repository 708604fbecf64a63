//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`)
//! for the kinds kubectl's common `create <generator>` subcommands send:
//! Namespace, ConfigMap, Secret, ServiceAccount, Deployment, Job, CronJob,
//! CertificateSigningRequest (`kubectl certificate approve|deny`),
//! PodDisruptionBudget (and the Eviction `kubectl drain` posts), the RBAC kinds and
//! the access reviews of `kubectl auth can-i` (the fields
//! `kubectl create deployment` sets). The result is the JSON the
//! same object would have been sent as.
//!
//! Decoding is schema-driven by the field-number tables below and strict: an
//! unknown field number fails the request instead of dropping data. Zero
//! values are omitted, matching the JSON encoding's `omitempty`.

use serde_json::{json, Map, Value};

use super::registry::Kind;

mod auth_tables;
mod batch_tables;
mod certificates_tables;
mod policy_tables;
mod tables;
use auth_tables::{
    BINDING, CLUSTER_ROLE, LOCAL_SAR, ROLE, SAR, SELF_RULES_REVIEW, SELF_SAR, SELF_SUBJECT_REVIEW, TOKEN_REQUEST,
};
use tables::*;

/// Decoding failures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Not a `k8s\0`-prefixed envelope.
    #[error("missing the k8s protobuf envelope prefix")]
    Envelope,
    /// Truncated or malformed wire data.
    #[error("malformed protobuf at {0}")]
    Wire(&'static str),
    /// The kind has no table here.
    #[error("protobuf bodies are not supported for {0}; send JSON (e.g. `kubectl apply -f`)")]
    Kind(String),
    /// A field number the table does not know.
    #[error("unknown protobuf field {number} in {message}")]
    UnknownField { message: &'static str, number: u64 },
}

#[derive(Debug, Clone, Copy)]
enum Ty {
    Str,
    Int,
    Bool,
    Time,
    Msg(&'static Msg),
    MapStr,
    MapBytes,
    /// `map<string, Quantity>` (Quantity is `{string = 1}`).
    MapQuantity,
    /// `IntOrString {type = 1, intVal = 2, strVal = 3}` (kept when 0: the field is a message).
    IntOrString,
    /// An `optional int64`: present even when 0 (`gracePeriodSeconds: 0` means now).
    OptInt,
    /// Accepted and dropped (server-owned data such as managedFields).
    Skip,
    /// `bytes`: base64 in JSON.
    Bytes,
}

#[derive(Debug)]
struct Msg {
    name: &'static str,
    fields: &'static [(u64, &'static str, Ty, bool)],
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, Error> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first().ok_or(Error::Wire("varint"))?;
            self.buf = rest;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(Error::Wire("varint too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let len = usize::try_from(self.varint()?).map_err(|_| Error::Wire("length"))?;
        if len > self.buf.len() {
            return Err(Error::Wire("length beyond end"));
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    /// One field: (number, wire type, varint value or bytes).
    fn field(&mut self) -> Result<(u64, u64, u64, &'a [u8]), Error> {
        let tag = self.varint()?;
        let (number, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => Ok((number, wire, self.varint()?, &[])),
            2 => Ok((number, wire, 0, self.bytes()?)),
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                if n > self.buf.len() {
                    return Err(Error::Wire("fixed beyond end"));
                }
                let (head, rest) = self.buf.split_at(n);
                self.buf = rest;
                Ok((number, wire, 0, head))
            }
            _ => Err(Error::Wire("wire type")),
        }
    }
}

fn text(b: &[u8]) -> Result<String, Error> {
    String::from_utf8(b.to_vec()).map_err(|_| Error::Wire("utf-8"))
}

fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | u32::from(x) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn map_entry(b: &[u8], as_bytes: bool) -> Result<(String, Value), Error> {
    let mut r = Reader { buf: b };
    let (mut key, mut value) = (String::new(), json!(""));
    while !r.buf.is_empty() {
        match r.field()? {
            (1, 2, _, k) => key = text(k)?,
            (2, 2, _, v) => value = if as_bytes { json!(base64(v)) } else { json!(text(v)?) },
            _ => return Err(Error::Wire("map entry")),
        }
    }
    Ok((key, value))
}

fn int_or_string(b: &[u8]) -> Result<Value, Error> {
    let mut r = Reader { buf: b };
    let (mut is_str, mut int, mut string) = (false, 0i64, String::new());
    while !r.buf.is_empty() {
        match r.field()? {
            (1, 0, v, _) => is_str = v == 1,
            (2, 0, v, _) => int = v as i64,
            (3, 2, _, s) => string = text(s)?,
            _ => return Err(Error::Wire("IntOrString")),
        }
    }
    Ok(if is_str { json!(string) } else { json!(int as i32) })
}

fn quantity_entry(b: &[u8]) -> Result<(String, Value), Error> {
    let mut r = Reader { buf: b };
    let (mut key, mut value) = (String::new(), json!(""));
    while !r.buf.is_empty() {
        match r.field()? {
            (1, 2, _, k) => key = text(k)?,
            (2, 2, _, q) => {
                let mut qr = Reader { buf: q };
                while !qr.buf.is_empty() {
                    match qr.field()? {
                        (1, 2, _, s) => value = json!(text(s)?),
                        _ => return Err(Error::Wire("Quantity")),
                    }
                }
            }
            _ => return Err(Error::Wire("map entry")),
        }
    }
    Ok((key, value))
}

fn time(b: &[u8]) -> Result<Option<String>, Error> {
    let mut r = Reader { buf: b };
    let mut seconds = 0i64;
    while !r.buf.is_empty() {
        match r.field()? {
            (1, 0, v, _) => seconds = v as i64,
            (2, 0, _, _) => {}
            _ => return Err(Error::Wire("Time")),
        }
    }
    if seconds == 0 {
        return Ok(None);
    }
    let ts = jiff::Timestamp::from_second(seconds).map_err(|_| Error::Wire("Time range"))?;
    Ok(Some(jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", ts).map_err(|_| Error::Wire("Time format"))?))
}

fn decode(msg: &'static Msg, b: &[u8]) -> Result<Map<String, Value>, Error> {
    let mut out = Map::new();
    let mut r = Reader { buf: b };
    while !r.buf.is_empty() {
        let (number, wire, int, bytes) = r.field()?;
        let Some(&(_, name, ty, repeated)) = msg.fields.iter().find(|f| f.0 == number) else {
            return Err(Error::UnknownField { message: msg.name, number });
        };
        let value = match (ty, wire) {
            (Ty::Skip, _) => continue,
            (Ty::Str, 2) => json!(text(bytes)?),
            (Ty::Bytes, 2) => {
                use base64::Engine as _;
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            (Ty::Int, 0) if name == "replicas" => {
                out.insert(name.to_string(), json!(int as i64 as i32));
                continue;
            }
            (Ty::Int, 0) => json!(int as i64),
            (Ty::OptInt, 0) => {
                out.insert(name.to_string(), json!(int as i64));
                continue;
            }
            (Ty::IntOrString, 2) => {
                out.insert(name.to_string(), int_or_string(bytes)?);
                continue;
            }
            (Ty::Bool, 0) => json!(int != 0),
            (Ty::Time, 2) => match time(bytes)? {
                Some(t) => json!(t),
                None => continue,
            },
            (Ty::Msg(inner), 2) => Value::Object(decode(inner, bytes)?),
            (Ty::MapStr | Ty::MapBytes | Ty::MapQuantity, 2) => {
                let (k, v) = match ty {
                    Ty::MapQuantity => quantity_entry(bytes)?,
                    _ => map_entry(bytes, matches!(ty, Ty::MapBytes))?,
                };
                let entry = out.entry(name).or_insert_with(|| json!({}));
                if let Some(m) = entry.as_object_mut() {
                    m.insert(k, v);
                }
                continue;
            }
            _ => return Err(Error::Wire("wire type does not match the field")),
        };
        if repeated {
            let entry = out.entry(name).or_insert_with(|| json!([]));
            if let Some(list) = entry.as_array_mut() {
                list.push(value);
            }
        } else {
            let zero = matches!(&value, Value::String(s) if s.is_empty())
                || value == json!(0)
                || value == json!(false)
                || matches!(&value, Value::Object(m) if m.is_empty());
            if !zero {
                out.insert(name.to_string(), value);
            }
        }
    }
    Ok(out)
}

/// Decodes a protobuf request body for `kind` into its JSON form.
pub fn to_json(kind: Kind, body: &[u8]) -> Result<Value, Error> {
    let msg: &'static Msg = match kind {
        Kind::Namespace => &NAMESPACE,
        Kind::ConfigMap => &CONFIG_MAP,
        Kind::Secret => &SECRET,
        Kind::ServiceAccount => &SERVICE_ACCOUNT,
        Kind::PriorityClass => &PRIORITY_CLASS,
        Kind::Deployment => &DEPLOYMENT,
        Kind::Job => &batch_tables::JOB,
        Kind::CronJob => &batch_tables::CRON_JOB,
        Kind::PodDisruptionBudget => &policy_tables::POD_DISRUPTION_BUDGET,
        Kind::Role => &ROLE,
        Kind::ClusterRole => &CLUSTER_ROLE,
        Kind::RoleBinding | Kind::ClusterRoleBinding => &BINDING,
        Kind::SelfSubjectAccessReview => &SELF_SAR,
        Kind::SubjectAccessReview => &SAR,
        Kind::LocalSubjectAccessReview => &LOCAL_SAR,
        Kind::SelfSubjectRulesReview => &SELF_RULES_REVIEW,
        Kind::SelfSubjectReview => &SELF_SUBJECT_REVIEW,
        Kind::CertificateSigningRequest => &certificates_tables::CERTIFICATE_SIGNING_REQUEST,
        other => return Err(Error::Kind(format!("{other:?}"))),
    };
    envelope_to_json(msg, body)
}

/// Decodes a protobuf Eviction (policy/v1) body.
pub fn eviction_to_json(body: &[u8]) -> Result<Value, Error> {
    envelope_to_json(&policy_tables::EVICTION, body)
}

/// Decodes a protobuf TokenRequest (authentication.k8s.io/v1) body.
pub fn token_request_to_json(body: &[u8]) -> Result<Value, Error> {
    envelope_to_json(&TOKEN_REQUEST, body)
}

fn envelope_to_json(msg: &'static Msg, body: &[u8]) -> Result<Value, Error> {
    let inner = body.strip_prefix(b"k8s\0").ok_or(Error::Envelope)?;
    let mut envelope = Reader { buf: inner };
    let mut type_meta = Map::new();
    let mut raw: &[u8] = &[];
    while !envelope.buf.is_empty() {
        match envelope.field()? {
            (1, 2, _, b) => type_meta = decode(&TYPE_META, b)?,
            (2, 2, _, b) => raw = b,
            (3 | 4, 2, _, _) => {}
            (number, _, _, _) => return Err(Error::UnknownField { message: UNKNOWN.name, number }),
        }
    }
    let mut obj = decode(msg, raw)?;
    for (k, v) in type_meta {
        obj.insert(k, v);
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn field(number: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        field(1, api_version.as_bytes(), &mut tm);
        field(2, kind.as_bytes(), &mut tm);
        let mut body = b"k8s\0".to_vec();
        field(1, &tm, &mut body);
        field(2, raw, &mut body);
        field(3, b"", &mut body);
        field(4, b"", &mut body);
        body
    }

    #[test]
    fn decodes_a_configmap_with_zero_fields_omitted() {
        let mut meta = Vec::new();
        field(1, b"cfg", &mut meta);
        field(2, b"", &mut meta);
        field(8, b"", &mut meta);
        let mut label = Vec::new();
        field(1, b"app", &mut label);
        field(2, b"web", &mut label);
        field(11, &label, &mut meta);
        let mut raw = Vec::new();
        field(1, &meta, &mut raw);
        let mut entry = Vec::new();
        field(1, b"k", &mut entry);
        field(2, b"v", &mut entry);
        field(2, &entry, &mut raw);
        let mut bin = Vec::new();
        field(1, b"b", &mut bin);
        field(2, b"hi!", &mut bin);
        field(3, &bin, &mut raw);
        let got = to_json(Kind::ConfigMap, &envelope("v1", "ConfigMap", &raw)).expect("decode");
        assert_eq!(
            got,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"app": "web"}},
                "data": {"k": "v"}, "binaryData": {"b": "aGkh"}})
        );
    }

    #[test]
    fn int_or_string_and_quantities_decode() {
        let mut percent = Vec::new();
        varint(1 << 3, &mut percent);
        varint(1, &mut percent);
        field(3, b"25%", &mut percent);
        assert_eq!(int_or_string(&percent), Ok(json!("25%")));
        let mut int = Vec::new();
        varint(2 << 3, &mut int);
        varint(3, &mut int);
        assert_eq!(int_or_string(&int), Ok(json!(3)));
        let mut q = Vec::new();
        field(1, b"500m", &mut q);
        let mut entry = Vec::new();
        field(1, b"cpu", &mut entry);
        field(2, &q, &mut entry);
        assert_eq!(quantity_entry(&entry), Ok(("cpu".to_string(), json!("500m"))));
    }

    #[test]
    fn unknown_fields_kinds_and_bad_envelopes_are_errors() {
        let mut raw = Vec::new();
        field(9, b"x", &mut raw);
        assert_eq!(
            to_json(Kind::Namespace, &envelope("v1", "Namespace", &raw)),
            Err(Error::UnknownField { message: "Namespace", number: 9 })
        );
        assert!(matches!(to_json(Kind::Pod, &envelope("v1", "Pod", &[])), Err(Error::Kind(_))));
        assert_eq!(to_json(Kind::Secret, b"{}"), Err(Error::Envelope));
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(b"he"), "aGU=");
    }

    #[test]
    fn decodes_the_eviction_kubectl_drain_posts() {
        let mut meta = Vec::new();
        field(1, b"web-1", &mut meta);
        field(3, b"default", &mut meta);
        let mut pre = Vec::new();
        field(1, b"u1", &mut pre);
        let mut opts = Vec::new();
        varint(1 << 3, &mut opts);
        varint(0, &mut opts);
        field(2, &pre, &mut opts);
        field(5, b"All", &mut opts);
        let mut raw = Vec::new();
        field(1, &meta, &mut raw);
        field(2, &opts, &mut raw);
        let got = eviction_to_json(&envelope("policy/v1", "Eviction", &raw)).expect("decode");
        assert_eq!(
            got,
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-1", "namespace": "default"},
                "deleteOptions": {"gracePeriodSeconds": 0, "preconditions": {"uid": "u1"}, "dryRun": ["All"]}})
        );
    }

    #[test]
    fn a_budget_of_min_available_zero_keeps_its_zero() {
        let mut meta = Vec::new();
        field(1, b"web", &mut meta);
        let mut zero = Vec::new();
        varint(2 << 3, &mut zero);
        varint(0, &mut zero);
        let mut labels = Vec::new();
        let mut entry = Vec::new();
        field(1, b"app", &mut entry);
        field(2, b"web", &mut entry);
        field(1, &entry, &mut labels);
        let mut spec = Vec::new();
        field(1, &zero, &mut spec);
        field(2, &labels, &mut spec);
        let mut raw = Vec::new();
        field(1, &meta, &mut raw);
        field(2, &spec, &mut raw);
        let got =
            to_json(Kind::PodDisruptionBudget, &envelope("policy/v1", "PodDisruptionBudget", &raw)).expect("decode");
        assert_eq!(
            got,
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
                "spec": {"minAvailable": 0, "selector": {"matchLabels": {"app": "web"}}}})
        );
    }
}
