//! Name and metadata syntax: DNS labels and subdomains, qualified names,
//! label keys and values, annotations, finalizers, generateName.

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::status::Cause;
use super::Causes;

pub(crate) const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
pub(crate) const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
pub(crate) const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const PATH_SEGMENT_MSG: &str = "may not be '.' or '..' and may not contain '/' or '%'";
const C_IDENTIFIER_MSG: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit";

/// Upstream's limit on the total size of `metadata.annotations` (keys plus values).
pub const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

/// How a kind's `metadata.name` is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (Namespace).
    Label,
    /// RFC 1035 label (Service).
    Label1035,
    /// Anything usable as a URL path segment (Event, ConfigMap keys' style kinds).
    PathSegment,
}

impl NameRule {
    fn check(self, name: &str) -> Option<&'static str> {
        let (ok, msg) = match self {
            NameRule::Subdomain => (is_dns1123_subdomain(name), DNS1123_SUBDOMAIN_MSG),
            NameRule::Label => (is_dns1123_label(name), DNS1123_LABEL_MSG),
            NameRule::Label1035 => (is_dns1035_label(name), DNS1035_LABEL_MSG),
            NameRule::PathSegment => (is_path_segment(name), PATH_SEGMENT_MSG),
        };
        (!ok).then_some(msg)
    }
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 chars.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 chars.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// RFC 1035 label: an RFC 1123 label starting with a letter.
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// A name usable as one URL path segment.
pub fn is_path_segment(s: &str) -> bool {
    s != "." && s != ".." && !s.contains(['/', '%'])
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 chars.
pub fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// A qualified name: `[prefix/]name` with an RFC 1123 subdomain prefix.
pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => !prefix.is_empty() && is_dns1123_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(s),
    }
}

/// A label value: empty or a qualified name part.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_qualified_name_part(s)
}

pub use bosun_resources::is_env_var_name;

/// `IANA_SVC_NAME`: at most 15 lowercase alphanumerics or '-', with a letter,
/// no leading, trailing or double '-'.
pub fn is_iana_svc_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(u8::is_ascii_lowercase)
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

/// Labels at `field` (`metadata.labels`, `spec.selector`...).
pub fn validate_labels(labels: &BTreeMap<String, String>, field: &str, out: &mut Causes) {
    for (k, v) in labels {
        if !is_qualified_name(k) {
            out.push(Cause::invalid(field, k, QUALIFIED_NAME_MSG));
        }
        if !is_label_value(v) {
            out.push(Cause::invalid(format!("{field}[{k}]"), v, LABEL_VALUE_MSG));
        }
    }
}

/// A single name at `field` under `rule`.
pub fn validate_name(name: &str, rule: NameRule, field: &str, out: &mut Causes) {
    if let Some(msg) = rule.check(name) {
        out.push(Cause::invalid(field, name, msg));
    }
}

/// An env var name at `field`.
pub fn validate_env_name(name: &str, field: &str, out: &mut Causes) {
    if name.is_empty() {
        out.push(Cause::required(field));
    } else if !is_env_var_name(name) {
        out.push(Cause::invalid(field, name, C_IDENTIFIER_MSG));
    }
}

/// `metadata` of any object: name (or generateName), namespace, labels,
/// annotations, finalizers.
pub fn validate_object_meta(obj: &Value, rule: NameRule, namespaced: bool, out: &mut Causes) {
    let meta = obj.get("metadata");
    let get = |f: &str| meta.and_then(|m| m.get(f)).and_then(Value::as_str).unwrap_or_default();
    let name = get("name");
    let generate = get("generateName");
    if name.is_empty() {
        if generate.is_empty() {
            out.push(Cause::required("metadata.name"));
        } else {
            // generateName must be a valid name once the 5-char suffix is added.
            let trimmed = generate.trim_end_matches('-');
            let probe = format!("{}{}", if trimmed.is_empty() { "x" } else { trimmed }, "-abcde");
            if rule.check(generate.trim_end_matches('-')).is_some() || rule.check(&probe).is_some() {
                let msg = rule.check(generate).unwrap_or(DNS1123_SUBDOMAIN_MSG);
                out.push(Cause::invalid("metadata.generateName", generate, msg));
            }
        }
    } else {
        validate_name(name, rule, "metadata.name", out);
    }
    if namespaced {
        let ns = get("namespace");
        if ns.is_empty() {
            out.push(Cause::required("metadata.namespace"));
        } else {
            validate_name(ns, NameRule::Label, "metadata.namespace", out);
        }
    }
    let strings = |f: &str| -> BTreeMap<String, String> {
        meta.and_then(|m| m.get(f))
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default()
    };
    validate_labels(&strings("labels"), "metadata.labels", out);
    let annotations = strings("annotations");
    let mut total = 0usize;
    for k in annotations.keys() {
        if !is_qualified_name(&k.to_ascii_lowercase()) {
            out.push(Cause::invalid("metadata.annotations", k, QUALIFIED_NAME_MSG));
        }
    }
    for (k, v) in &annotations {
        total = total.saturating_add(k.len()).saturating_add(v.len());
    }
    if total > TOTAL_ANNOTATION_SIZE {
        out.push(super::too_long("metadata.annotations", TOTAL_ANNOTATION_SIZE));
    }
    let owners = meta.and_then(|m| m.get("ownerReferences")).and_then(Value::as_array);
    let mut controllers = 0usize;
    for (i, o) in owners.into_iter().flatten().enumerate() {
        for field in ["apiVersion", "kind", "name", "uid"] {
            if o.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
                out.push(Cause::required(format!("metadata.ownerReferences[{i}].{field}")));
            }
        }
        if o.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers = controllers.saturating_add(1);
        }
    }
    if controllers > 1 {
        out.push(super::invalid_value(
            "metadata.ownerReferences",
            controllers as u64,
            "Only one reference can have Controller set to true",
        ));
    }
    let finalizers = meta.and_then(|m| m.get("finalizers")).and_then(Value::as_array);
    for (i, f) in finalizers.into_iter().flatten().enumerate() {
        let f = f.as_str().unwrap_or_default();
        if !is_qualified_name(f) {
            out.push(Cause::invalid(format!("metadata.finalizers[{i}]"), f, QUALIFIED_NAME_MSG));
        } else if !f.contains('/') && !STANDARD_FINALIZERS.contains(&f) {
            out.push(Cause::invalid(
                format!("metadata.finalizers[{i}]"),
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
}

/// Finalizers upstream accepts without a domain prefix (the last one is
/// the CRD cleanup's).
const STANDARD_FINALIZERS: &[&str] =
    &["kubernetes", "orphan", "foregroundDeletion", "customresourcecleanup.apiextensions.k8s.io"];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(obj: Value, rule: NameRule) -> Vec<String> {
        let mut out = Vec::new();
        validate_object_meta(&obj, rule, true, &mut out);
        out.into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn metadata_rules() {
        let cases: Vec<(Value, NameRule, Vec<&str>)> = vec![
            (json!({"metadata": {"name": "a", "namespace": "n"}}), NameRule::Subdomain, vec![]),
            (json!({"metadata": {"generateName": "web-", "namespace": "n"}}), NameRule::Subdomain, vec![]),
            (
                json!({"metadata": {"generateName": "Web-", "namespace": "n"}}),
                NameRule::Subdomain,
                vec!["metadata.generateName"],
            ),
            (json!({"metadata": {"namespace": "n"}}), NameRule::Subdomain, vec!["metadata.name"]),
            (json!({"metadata": {"name": "a.b", "namespace": "n"}}), NameRule::Label1035, vec!["metadata.name"]),
            (json!({"metadata": {"name": "a:b", "namespace": "n"}}), NameRule::PathSegment, vec![]),
            (json!({"metadata": {"name": "a/b", "namespace": "n"}}), NameRule::PathSegment, vec!["metadata.name"]),
            (json!({"metadata": {"name": "a", "namespace": "N"}}), NameRule::Subdomain, vec!["metadata.namespace"]),
            (
                json!({"metadata": {"name": "a", "namespace": "n", "labels": {"x/y/z": "v", "k": "bad value"}}}),
                NameRule::Subdomain,
                vec!["metadata.labels[k]", "metadata.labels"],
            ),
            (
                json!({"metadata": {"name": "a", "namespace": "n", "finalizers": ["example.com/f", "kubernetes", "f", "a b"]}}),
                NameRule::Subdomain,
                vec!["metadata.finalizers[2]", "metadata.finalizers[3]"],
            ),
            (
                json!({"metadata": {"name": "a", "namespace": "n", "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "s", "controller": true}]}}),
                NameRule::Subdomain,
                vec!["metadata.ownerReferences[1].uid", "metadata.ownerReferences"],
            ),
            (
                json!({"metadata": {"name": "a", "namespace": "n", "annotations": {"big": "x".repeat(TOTAL_ANNOTATION_SIZE)}}}),
                NameRule::Subdomain,
                vec!["metadata.annotations"],
            ),
        ];
        for (obj, rule, want) in cases {
            let mut got = fields(obj.clone(), rule);
            let mut want: Vec<String> = want.into_iter().map(String::from).collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{obj}");
        }
    }

    #[test]
    fn name_predicates() {
        assert!(is_dns1123_subdomain("a.b-c"));
        assert!(!is_dns1123_subdomain("A"));
        assert!(!is_dns1123_label("a.b"));
        assert!(is_iana_svc_name("http"));
        assert!(!is_iana_svc_name("80"));
        assert!(!is_iana_svc_name("a--b"));
        assert!(!is_iana_svc_name("abcdefghijklmnop"));
        assert!(is_env_var_name("MY_VAR.x"));
        assert!(!is_env_var_name("1X"));
        assert!(!is_env_var_name("A=B"));
        assert!(is_qualified_name("example.com/name"));
        assert!(!is_qualified_name("/name"));
    }
}
