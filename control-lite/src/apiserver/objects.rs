//! Object plumbing shared by every write: decoding stored values, input
//! preparation (type check, unknown fields, apiVersion/kind) and metadata rules.

use jiff::Timestamp;
use rand::Rng;
use serde_json::{json, Map, Value};

use super::registry::{Kind, ResourceInfo};
use super::schema;
use super::status::{ApiError, Cause, Result};
use crate::store::KeyValue;

/// `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop them with a `Warning` header (upstream default).
    #[default]
    Warn,
    /// Reject the request.
    Strict,
}

impl FieldValidation {
    /// Parses the query value (unknown values read as the default).
    pub fn parse(s: Option<&str>) -> Result<FieldValidation> {
        match s {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, not {other:?}"
            ))),
        }
    }
}

/// Options common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate, do not store.
    pub dry_run: bool,
    /// How unknown fields are handled.
    pub field_validation: FieldValidation,
    /// Who the write is recorded for in `managedFields` (none: not recorded).
    pub manager: Option<FieldManager>,
    /// Who asks (admission: Pod Security exemptions, a CSR's requester;
    /// none: an internal write).
    pub requester: Option<crate::auth::user::UserInfo>,
}

/// The writer `managedFields` records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldManager {
    /// `fieldManager` (or the client's User-Agent name).
    pub name: String,
    /// `status`, `scale`, ... or empty for the main resource.
    pub subresource: &'static str,
    /// Server-side apply: the request already carries its `managedFields`.
    pub applied: bool,
}

/// A stored value as an object with `metadata.resourceVersion` set.
pub fn decode(kv: &KeyValue) -> Result<Value> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::Internal(format!("stored value of {} is not JSON: {e}", kv.key)))?;
    set_rv(&mut obj, kv.mod_revision);
    Ok(obj)
}

/// Sets `metadata.resourceVersion`.
pub fn set_rv(obj: &mut Value, rv: i64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
    }
}

/// The bytes stored for an object (without `resourceVersion`).
pub fn encode(obj: &Value) -> Vec<u8> {
    let mut copy = obj.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    copy.to_string().into_bytes()
}

/// A string under `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str)
}

/// Mutable `metadata` map, created if absent (None if `obj` is not an object).
pub fn meta_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = obj.as_object_mut()?;
    let slot = map.entry("metadata").or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut()
}

/// `metadata.resourceVersion` parsed, if set.
pub fn requested_rv(obj: &Value) -> Result<Option<i64>> {
    match meta_str(obj, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(rv) => rv.parse().map(Some).map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {rv:?}"))),
    }
}

/// Current time as upstream `Time`.
pub fn now_rfc3339() -> String {
    jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", Timestamp::now()).unwrap_or_default()
}

/// 5 random lowercase alphanumerics (the generateName suffix).
pub fn random_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
}

/// Type-checks input as `info`'s kind: fills in or checks apiVersion/kind,
/// drops unknown fields (per `fv`) and returns warnings.
pub fn prepare(info: &ResourceInfo, mut input: Value, fv: FieldValidation) -> Result<(Value, Vec<String>)> {
    let Some(map) = input.as_object_mut() else {
        return Err(ApiError::BadRequest(format!("the body must be a {} object", info.kind_name)));
    };
    let api_version = info.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )))
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(info.kind_name));
        }
        Some(k) if k == info.kind_name => {}
        Some(k) => {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind_name
            )))
        }
    }
    let normalized = match info.custom {
        // Custom resources: defaulted, pruned and checked against their schema.
        Some(_) => {
            let mut checked = input.clone();
            let causes = super::crd::check_object(info, &mut checked);
            if !causes.is_empty() {
                return Err(super::status::invalid(info, meta_str(&input, "name").unwrap_or_default(), causes));
            }
            checked
        }
        None => schema::normalize(info.kind, &input).map_err(|e| {
            ApiError::BadRequest(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                info.kind_name, info.version, info.kind_name
            ))
        })?,
    };
    let unknown = schema::unknown_fields(&input, &normalized);
    let mut warnings = Vec::new();
    match fv {
        FieldValidation::Strict if !unknown.is_empty() => {
            let name = meta_str(&input, "name").unwrap_or_default();
            return Err(super::status::invalid(
                info,
                name,
                unknown.into_iter().map(|f| Cause::unknown_field(format!(".{f}"))).collect(),
            ));
        }
        FieldValidation::Warn => warnings = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect(),
        _ => {}
    }
    Ok((normalized, warnings))
}

/// Whether `metadata.generation` follows `.spec` changes.
pub fn tracks_generation(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Deployment
            | Kind::ReplicaSet
            | Kind::Pod
            | Kind::Job
            | Kind::CronJob
            | Kind::PodDisruptionBudget
            | Kind::CustomResourceDefinition
            | Kind::Custom
    ) || super::apps::is_apps_workload(kind)
}

/// Whether create resets `.status` (spec-bearing kinds; nodes keep what kubelets register).
pub fn resets_status_on_create(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Pod
            | Kind::Deployment
            | Kind::ReplicaSet
            | Kind::Service
            | Kind::Job
            | Kind::CronJob
            | Kind::PodDisruptionBudget
            | Kind::CertificateSigningRequest
    ) || super::apps::is_apps_workload(kind)
}

/// Metadata and status rules of an update: `new` is the prepared input,
/// `current` the stored object. Returns the object to store.
pub fn merge_update(info: &ResourceInfo, status_only: bool, current: &Value, new: Value) -> Value {
    let mut out = if status_only {
        let mut out = current.clone();
        match new.get("status") {
            Some(s) => out["status"] = s.clone(),
            None => {
                if let Some(m) = out.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        // managedFields follow the request, as on the main resource (field
        // management reads them: absent keeps the live ones).
        if let (Some(meta), Some(sent)) = (meta_mut(&mut out), new.pointer("/metadata/managedFields")) {
            meta.insert("managedFields".into(), sent.clone());
        }
        out
    } else {
        let mut out = new;
        if info.has_status() {
            if let Some(m) = out.as_object_mut() {
                match current.get("status") {
                    Some(s) => {
                        m.insert("status".into(), s.clone());
                    }
                    None => {
                        m.remove("status");
                    }
                }
            }
        }
        out
    };
    let cur_meta = current.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    let Some(meta) = meta_mut(&mut out) else {
        return out;
    };
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match cur_meta.get(field) {
            Some(v) => {
                meta.insert(field.into(), v.clone());
            }
            None => {
                meta.remove(field);
            }
        }
    }
    if tracks_generation(info.kind) && !status_only && out.get("spec") != current.get("spec") {
        let generation = cur_meta.get("generation").and_then(Value::as_i64).unwrap_or(1).saturating_add(1);
        if let Some(meta) = meta_mut(&mut out) {
            meta.insert("generation".into(), json!(generation));
        }
    }
    out
}

/// Whether two objects differ other than in `resourceVersion`.
pub fn differs(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = meta_mut(&mut v) {
            meta.remove("resourceVersion");
        }
        v
    };
    strip(a) != strip(b)
}

/// Pod bound to a node and not finished (deletion must wait for the kubelet).
pub fn is_bound_active_pod(kind: Kind, obj: &Value) -> bool {
    kind == Kind::Pod
        && obj.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty())
        && !matches!(obj.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
}

/// Whether an object marked for deletion can be removed now: no finalizers
/// left (for namespaces, in `spec` too) and, for pods, the kubelet has
/// confirmed (grace 0) or it never ran.
pub fn ready_to_remove(kind: Kind, obj: &Value) -> bool {
    let marked = obj.pointer("/metadata/deletionTimestamp").is_some();
    let non_empty = |path: &str| obj.pointer(path).and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    // A namespace also waits for `spec.finalizers` (the namespace controller's).
    let finalizers = non_empty("/metadata/finalizers") || (kind == Kind::Namespace && non_empty("/spec/finalizers"));
    let grace = obj.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
    marked && !finalizers && (!is_bound_active_pod(kind, obj) || grace == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::by_kind;

    #[test]
    fn prepare_fills_kind_and_handles_unknown_fields_per_mode() {
        let info = by_kind(Kind::ConfigMap);
        let body = json!({"metadata": {"name": "c"}, "data": {"a": "b"}, "extra": 1});
        let (obj, warnings) = prepare(info, body.clone(), FieldValidation::Warn).expect("warn");
        assert_eq!(obj["kind"], "ConfigMap");
        assert_eq!(obj["apiVersion"], "v1");
        assert!(obj.get("extra").is_none());
        assert_eq!(warnings, vec!["unknown field \"extra\""]);
        let (_, warnings) = prepare(info, body.clone(), FieldValidation::Ignore).expect("ignore");
        assert!(warnings.is_empty());
        let err = prepare(info, body, FieldValidation::Strict).expect_err("strict");
        assert!(err.to_string().contains(".extra: field not declared in schema"), "{err}");
        let wrong = json!({"apiVersion": "apps/v1", "kind": "ConfigMap"});
        assert!(matches!(prepare(info, wrong, FieldValidation::Warn), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn updates_keep_identity_bump_generation_and_protect_status() {
        let info = by_kind(Kind::Deployment);
        let current = json!({"metadata": {"name": "d", "namespace": "n", "uid": "u1", "generation": 3,
            "creationTimestamp": "2024-01-01T00:00:00Z", "resourceVersion": "9"},
            "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let new = json!({"metadata": {"name": "d", "namespace": "n", "uid": "evil", "labels": {"a": "b"}},
            "spec": {"replicas": 2}, "status": {"replicas": 99}});
        let out = merge_update(info, false, &current, new.clone());
        assert_eq!(out["metadata"]["uid"], "u1");
        assert_eq!(out["metadata"]["generation"], 4);
        assert_eq!(out["metadata"]["labels"]["a"], "b");
        assert_eq!(out["status"]["replicas"], 1);
        let status = merge_update(info, true, &current, new);
        assert_eq!(status["status"]["replicas"], 99);
        assert_eq!(status["spec"]["replicas"], 1);
        assert_eq!(status["metadata"]["generation"], 3);
        assert!(!differs(
            &current,
            &json!({"metadata": {"name": "d", "namespace": "n", "uid": "u1", "generation": 3,
            "creationTimestamp": "2024-01-01T00:00:00Z"}, "spec": {"replicas": 1}, "status": {"replicas": 1}})
        ));
    }

    #[test]
    fn removal_rules_for_marked_objects() {
        let pod = |node: &str, phase: &str, grace: i64, fin: Value| {
            json!({"metadata": {"deletionTimestamp": "t", "deletionGracePeriodSeconds": grace, "finalizers": fin},
                "spec": {"nodeName": node}, "status": {"phase": phase}})
        };
        assert!(!ready_to_remove(Kind::Pod, &pod("n1", "Running", 30, json!([]))));
        assert!(ready_to_remove(Kind::Pod, &pod("n1", "Running", 0, json!([]))));
        assert!(ready_to_remove(Kind::Pod, &pod("n1", "Succeeded", 30, json!([]))));
        assert!(ready_to_remove(Kind::Pod, &pod("", "Pending", 30, json!([]))));
        assert!(!ready_to_remove(Kind::Pod, &pod("", "Pending", 0, json!(["x"]))));
        assert!(!ready_to_remove(Kind::ConfigMap, &json!({"metadata": {}})));
        assert_eq!(random_suffix().len(), 5);
    }
}
