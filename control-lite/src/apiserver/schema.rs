//! Typed view of stored JSON: round-trips through the k8s-openapi structs to
//! type-check input, drop unknown fields, and report them for `fieldValidation`.

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::authorization::v1::{
    LocalSubjectAccessReview, SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::registry::Kind;

/// The bounds every served k8s-openapi type meets: serde both ways and a
/// JSON schema (its generated documentation, served as OpenAPI).
pub trait Typed: DeserializeOwned + Serialize + JsonSchema {}

impl<T: DeserializeOwned + Serialize + JsonSchema> Typed for T {}

/// Something done with the k8s-openapi type behind a [`Kind`] ([`with_type`]).
pub trait TypeVisitor {
    /// What the visit returns.
    type Output;
    /// Called with the kind's type.
    fn visit<T: Typed>(self) -> Self::Output;
}

/// Calls `visitor` with the k8s-openapi type of `kind`: the one place that
/// maps kinds to types.
pub fn with_type<V: TypeVisitor>(kind: Kind, visitor: V) -> V::Output {
    match kind {
        Kind::Namespace => visitor.visit::<Namespace>(),
        Kind::Pod => visitor.visit::<Pod>(),
        Kind::Node => visitor.visit::<Node>(),
        Kind::Service => visitor.visit::<Service>(),
        Kind::Endpoints => visitor.visit::<Endpoints>(),
        Kind::EndpointSlice => visitor.visit::<EndpointSlice>(),
        Kind::Deployment => visitor.visit::<Deployment>(),
        Kind::ReplicaSet => visitor.visit::<ReplicaSet>(),
        Kind::DaemonSet => visitor.visit::<DaemonSet>(),
        Kind::StatefulSet => visitor.visit::<StatefulSet>(),
        Kind::ControllerRevision => visitor.visit::<ControllerRevision>(),
        Kind::Job => visitor.visit::<k8s_openapi::api::batch::v1::Job>(),
        Kind::CronJob => visitor.visit::<k8s_openapi::api::batch::v1::CronJob>(),
        Kind::PodDisruptionBudget => visitor.visit::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(),
        Kind::Event => visitor.visit::<Event>(),
        Kind::EventV1 => visitor.visit::<k8s_openapi::api::events::v1::Event>(),
        Kind::ConfigMap => visitor.visit::<ConfigMap>(),
        Kind::Secret => visitor.visit::<Secret>(),
        Kind::Lease => visitor.visit::<Lease>(),
        Kind::ServiceAccount => visitor.visit::<ServiceAccount>(),
        Kind::PriorityClass => visitor.visit::<PriorityClass>(),
        Kind::Role => visitor.visit::<Role>(),
        Kind::ClusterRole => visitor.visit::<ClusterRole>(),
        Kind::RoleBinding => visitor.visit::<RoleBinding>(),
        Kind::ClusterRoleBinding => visitor.visit::<ClusterRoleBinding>(),
        Kind::SelfSubjectAccessReview => visitor.visit::<SelfSubjectAccessReview>(),
        Kind::SubjectAccessReview => visitor.visit::<SubjectAccessReview>(),
        Kind::LocalSubjectAccessReview => visitor.visit::<LocalSubjectAccessReview>(),
        Kind::SelfSubjectRulesReview => visitor.visit::<SelfSubjectRulesReview>(),
        Kind::TokenReview => visitor.visit::<k8s_openapi::api::authentication::v1::TokenReview>(),
        Kind::SelfSubjectReview => visitor.visit::<k8s_openapi::api::authentication::v1::SelfSubjectReview>(),
        Kind::CustomResourceDefinition => {
            visitor
                .visit::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>()
        }
        // Custom resources are checked against their CRD's schema (`crd::check`).
        Kind::Custom => visitor.visit::<Value>(),
        Kind::CertificateSigningRequest => {
            visitor.visit::<k8s_openapi::api::certificates::v1::CertificateSigningRequest>()
        }
    }
}

/// Round-trips a value through the kind's type.
struct Roundtrip<'a>(&'a Value);

impl TypeVisitor for Roundtrip<'_> {
    type Output = Result<Value, serde_json::Error>;

    fn visit<T: Typed>(self) -> Self::Output {
        let typed: T = serde_json::from_value(self.0.clone())?;
        serde_json::to_value(typed)
    }
}

/// Type-checks `v` as `kind` and returns it with unknown fields dropped.
pub fn normalize(kind: Kind, v: &Value) -> Result<Value, serde_json::Error> {
    with_type(kind, Roundtrip(v))
}

/// Field paths present in `input` but absent from `normalized` (unknown to the
/// schema). Null inputs are ignored: they carry no value.
pub fn unknown_fields(input: &Value, normalized: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(input, normalized, "", &mut out);
    out
}

fn walk(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, iv) in i {
                let sub = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match k.get(key) {
                    None if !iv.is_null() => out.push(sub),
                    None => {}
                    Some(kv) => walk(iv, kv, &sub, out),
                }
            }
        }
        (Value::Array(i), Value::Array(k)) => {
            for (idx, (iv, kv)) in i.iter().zip(k.iter()).enumerate() {
                walk(iv, kv, &format!("{path}[{idx}]"), out);
            }
        }
        _ => {}
    }
}

/// Dotted paths of keys that occur more than once in the same JSON object
/// (lost by ordinary parsing, reported by `fieldValidation`).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = String::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    // A malformed body is reported by the real parse; here it only ends the scan.
    let _ = serde::de::DeserializeSeed::deserialize(Dups { path: &mut path, out: &mut out }, &mut de);
    out
}

/// Most duplicate fields reported: each report copies its path, so the
/// count is bounded to keep the scan linear in the body size.
const MAX_DUPLICATES: usize = 100;

/// Scans one value. `path` is shared by the whole scan: each level appends
/// its segment and truncates it afterwards, so the work per value is its own
/// segment, not its full path (linear in the body, however deep or long the keys).
struct Dups<'a> {
    path: &'a mut String,
    out: &'a mut Vec<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Dups<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Dups<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (path, out) = (self.path, self.out);
        let base = path.len();
        for i in 0usize.. {
            use std::fmt::Write;
            // Writing to a String cannot fail.
            let _ = write!(path, "[{i}]");
            let more = seq.next_element_seed(Dups { path: &mut *path, out: &mut *out });
            path.truncate(base);
            if more?.is_none() {
                break;
            }
        }
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (path, out) = (self.path, self.out);
        let base = path.len();
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if base > 0 {
                path.push('.');
            }
            path.push_str(&key);
            if !seen.insert(key) && out.len() < MAX_DUPLICATES {
                out.push(path.clone());
            }
            let value = map.next_value_seed(Dups { path: &mut *path, out: &mut *out });
            path.truncate(base);
            value?;
        }
        Ok(())
    }
}

/// Reads `v` as a typed struct (None when it does not fit).
pub fn typed<T: DeserializeOwned>(v: &Value) -> Option<T> {
    serde_json::from_value(v.clone()).ok()
}

/// Serializes a typed struct back (Null if it cannot be, which k8s-openapi types never do).
pub fn untyped<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_reported_with_paths_and_dropped() {
        let input = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "bogus": 1},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {
                "containers": [{"name": "c", "image": "i", "imagePullPolicyy": "Always", "args": null}]
            }}}
        });
        let norm = normalize(Kind::Deployment, &input).expect("typed");
        let unknown = unknown_fields(&input, &norm);
        assert_eq!(unknown, vec!["metadata.bogus", "spec.template.spec.containers[0].imagePullPolicyy"]);
        assert!(norm["metadata"].get("bogus").is_none());
        assert_eq!(norm["spec"]["replicas"], 2);
    }

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        let body = br#"{"a": 1, "spec": {"replicas": 1, "replicas": 2, "l": [{"n": 1, "n": 2}]}, "a": 3}"#;
        assert_eq!(duplicate_fields(body), vec!["spec.replicas", "spec.l[0].n", "a"]);
        assert!(duplicate_fields(br#"{"a": {"b": 1}, "c": {"b": 2}}"#).is_empty());
    }

    #[test]
    fn duplicate_scan_is_linear_for_long_keys_and_many_duplicates() {
        // A long key above a long array: copying the path per element would be
        // quadratic (200 KiB x 200,000 elements).
        let key = "k".repeat(200 * 1024);
        let zeros = vec!["0"; 200_000].join(",");
        let body = format!("{{\"{key}\": [{zeros}]}}");
        assert!(duplicate_fields(body.as_bytes()).is_empty());
        // Many duplicates under a long key: only the first few are reported.
        let dups = vec!["\"a\": 1"; 100_000].join(",");
        let body = format!("{{\"{key}\": {{{dups}}}}}");
        let found = duplicate_fields(body.as_bytes());
        assert_eq!(found.len(), MAX_DUPLICATES);
        assert_eq!(found[0], format!("{key}.a"));
    }

    #[test]
    fn wrong_types_and_kinds_fail_to_normalize() {
        assert!(normalize(Kind::Deployment, &json!({"spec": {"replicas": "two"}})).is_err());
        assert!(normalize(Kind::Pod, &json!({"apiVersion": "v1", "kind": "Service"})).is_err());
        assert!(normalize(Kind::Pod, &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})).is_ok());
    }
}
