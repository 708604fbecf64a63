//! PATCH bodies: JSON merge patch, strategic merge patch and JSON patch.
//!
//! Strategic merge patch knows the merge keys of the built-in list fields by
//! field name (and, for `ports`, by parent field); unknown lists are replaced.
//!
//! Bounded work: a JSON patch has at most [`Limits::max_operations`]
//! operations, the bytes its `copy` operations duplicate count against
//! [`Limits::max_bytes`], and every patch's result must encode within
//! `max_bytes`. Keyed and set-like list merges index the original list, so
//! they are linear in the list sizes.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

/// Most operations in one JSON patch (as upstream).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Bounds of one patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most JSON patch operations.
    pub max_operations: usize,
    /// Largest encoded result (and most bytes `copy` operations may duplicate).
    pub max_bytes: usize,
}

/// Patch failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The patch body is not valid JSON of the right shape.
    #[error("invalid patch body: {0}")]
    Body(String),
    /// A JSON patch operation failed.
    #[error("the json patch could not be applied: {0}")]
    JsonPatch(#[from] json_patch::PatchError),
    /// Server-side apply is not implemented.
    #[error("server-side apply (application/apply-patch+yaml) is not supported by this apiserver; use client-side `kubectl apply` (the default) or another patch type")]
    ApplyUnsupported,
    /// A JSON patch with too many operations.
    #[error("The allowed maximum operations in a JSON patch is {max}, got {count}")]
    TooManyOperations { count: usize, max: usize },
    /// The patched object (or what copy operations duplicate) is too large.
    #[error("the patched object is larger than the limit of {max} bytes")]
    TooLarge { max: usize },
    /// Unknown content type.
    #[error("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json")]
    UnknownType(String),
}

/// Supported patch kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 7386.
    Merge,
    /// Kubernetes strategic merge patch.
    Strategic,
    /// RFC 6902.
    Json,
}

impl PatchType {
    /// From the request Content-Type.
    pub fn from_content_type(ct: &str) -> Result<PatchType, Error> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Err(Error::ApplyUnsupported),
            other => Err(Error::UnknownType(other.to_string())),
        }
    }
}

/// Applies `body` of `kind` to `doc` within `limits`, returning the patched document.
pub fn apply(kind: PatchType, doc: &Value, body: &[u8], limits: Limits) -> Result<Value, Error> {
    let mut out = doc.clone();
    match kind {
        PatchType::Merge => {
            let patch: Value = serde_json::from_slice(body).map_err(|e| Error::Body(e.to_string()))?;
            json_patch::merge(&mut out, &patch);
        }
        PatchType::Strategic => {
            let patch: Value = serde_json::from_slice(body).map_err(|e| Error::Body(e.to_string()))?;
            if !patch.is_object() {
                return Err(Error::Body("a strategic merge patch must be a JSON object".into()));
            }
            out = strategic_merge(&out, &patch, "");
        }
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body).map_err(|e| Error::Body(e.to_string()))?;
            if patch.0.len() > limits.max_operations {
                return Err(Error::TooManyOperations { count: patch.0.len(), max: limits.max_operations });
            }
            apply_json_patch(&mut out, &patch.0, limits.max_bytes)?;
        }
    }
    if encoded_len_within(&out, limits.max_bytes).is_none() {
        return Err(Error::TooLarge { max: limits.max_bytes });
    }
    Ok(out)
}

/// Applies JSON patch operations one by one (on a copy, so no undo log),
/// counting the bytes `copy` operations duplicate against `max_bytes`: without
/// that, a few copies of a document into itself grow it exponentially.
fn apply_json_patch(doc: &mut Value, ops: &[json_patch::PatchOperation], max_bytes: usize) -> Result<(), Error> {
    let mut copied = 0usize;
    for op in ops {
        if let json_patch::PatchOperation::Copy(copy) = op {
            let budget = max_bytes.saturating_sub(copied);
            if let Some(source) = doc.pointer(copy.from.as_str()) {
                let size = encoded_len_within(source, budget).ok_or(Error::TooLarge { max: max_bytes })?;
                copied = copied.saturating_add(size);
            }
        }
        json_patch::patch_unsafe(doc, std::slice::from_ref(op))?;
    }
    Ok(())
}

/// The JSON-encoded size of `v` if it is at most `max` (stops counting past it).
pub fn encoded_len_within(v: &Value, max: usize) -> Option<usize> {
    struct Counter {
        n: usize,
        max: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.n = self.n.saturating_add(buf.len());
            if self.n > self.max {
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { n: 0, max };
    serde_json::to_writer(&mut counter, v).ok().map(|()| counter.n)
}

/// A hashable identity of a JSON value (its encoding), for list indexes.
fn identity(v: &Value) -> String {
    v.to_string()
}

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStrategy {
    /// Objects merged by this key.
    MergeKey(&'static str),
    /// Primitive values merged as a set.
    PrimitiveSet,
    /// Replaced wholesale.
    Replace,
}

/// Merge strategy of the list `field` whose enclosing object is field `parent`.
fn list_strategy(parent: &str, field: &str) -> ListStrategy {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "readinessGates" => {
            if field == "readinessGates" {
                ListStrategy::MergeKey("conditionType")
            } else {
                ListStrategy::MergeKey("name")
            }
        }
        "ports" if matches!(parent, "containers" | "initContainers" | "ephemeralContainers") => {
            ListStrategy::MergeKey("containerPort")
        }
        "ports" if parent == "spec" => ListStrategy::MergeKey("port"),
        "volumeMounts" => ListStrategy::MergeKey("mountPath"),
        "volumeDevices" => ListStrategy::MergeKey("devicePath"),
        "conditions" | "addresses" | "taints" => {
            if field == "taints" {
                ListStrategy::MergeKey("key")
            } else {
                ListStrategy::MergeKey("type")
            }
        }
        "hostAliases" | "podIPs" | "hostIPs" => ListStrategy::MergeKey("ip"),
        "ownerReferences" => ListStrategy::MergeKey("uid"),
        "finalizers" => ListStrategy::PrimitiveSet,
        _ => ListStrategy::Replace,
    }
}

/// Strategic merge of `patch` into `original`; `field` is the name of the
/// field holding `original` (for list strategies of its children).
pub fn strategic_merge(original: &Value, patch: &Value, field: &str) -> Value {
    let (Some(orig), Some(p)) = (original.as_object(), patch.as_object()) else {
        return strip_directives(patch);
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut rest = p.clone();
        rest.remove("$patch");
        return strip_directives(&Value::Object(rest));
    }
    if p.get("$patch").and_then(Value::as_str) == Some("delete") {
        return Value::Object(Map::new());
    }
    let mut out = orig.clone();
    for (key, pv) in p {
        if key.starts_with('$') {
            continue;
        }
        if pv.is_null() {
            out.remove(key);
            continue;
        }
        let merged = match (out.get(key), pv) {
            (Some(ov @ Value::Object(_)), Value::Object(_)) => strategic_merge(ov, pv, key),
            (Some(Value::Array(ol)), Value::Array(pl)) => merge_list(field, key, ol, pl),
            (None, Value::Array(pl)) => merge_list(field, key, &[], pl),
            _ => strip_directives(pv),
        };
        out.insert(key.clone(), merged);
    }
    for (key, pv) in p {
        if let Some(list_field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Some(remove)) = (out.get(list_field), pv.as_array()) {
                let remove: HashSet<String> = remove.iter().map(identity).collect();
                let kept: Vec<Value> = cur.iter().filter(|v| !remove.contains(&identity(v))).cloned().collect();
                out.insert(list_field.to_string(), Value::Array(kept));
            }
        }
    }
    if let Some(retain) = p.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    Value::Object(out)
}

fn merge_list(parent: &str, field: &str, original: &[Value], patch: &[Value]) -> Value {
    if patch.iter().any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace")) {
        let rest: Vec<Value> = patch.iter().filter(|e| e.get("$patch").is_none()).map(strip_directives).collect();
        return Value::Array(rest);
    }
    match list_strategy(parent, field) {
        ListStrategy::Replace => Value::Array(patch.iter().map(strip_directives).collect()),
        ListStrategy::PrimitiveSet => {
            let mut seen: HashSet<String> = original.iter().map(identity).collect();
            let mut out = original.to_vec();
            for v in patch {
                if seen.insert(identity(v)) {
                    out.push(v.clone());
                }
            }
            Value::Array(out)
        }
        ListStrategy::MergeKey(mk) => {
            if patch.iter().any(|e| !e.is_object()) {
                return Value::Array(patch.to_vec());
            }
            // Slots (None once deleted) and an index from merge key to the
            // first live slot with it: one pass over each list.
            let mut out: Vec<Option<Value>> = original.iter().cloned().map(Some).collect();
            let mut index: HashMap<String, usize> = HashMap::with_capacity(out.len());
            for (i, oe) in original.iter().enumerate() {
                if let Some(k) = oe.get(mk) {
                    index.entry(identity(k)).or_insert(i);
                }
            }
            for pe in patch {
                let key = pe.get(mk).map(identity);
                let pos = key.as_ref().and_then(|k| index.get(k).copied());
                let delete = pe.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        out[i] = None;
                        if let Some(k) = &key {
                            index.remove(k);
                        }
                    }
                    (None, true) => {}
                    (Some(i), false) => {
                        let merged = out[i].as_ref().map(|oe| strategic_merge(oe, pe, field));
                        out[i] = merged;
                    }
                    (None, false) => {
                        if let Some(k) = key {
                            index.insert(k, out.len());
                        }
                        out.push(Some(strategic_merge(&Value::Object(Map::new()), pe, field)));
                    }
                }
            }
            Value::Array(out.into_iter().flatten().collect())
        }
    }
}

/// Removes `$` directives (and null map values) from a value inserted whole.
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(l) => Value::Array(l.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: Limits = Limits { max_operations: MAX_JSON_PATCH_OPERATIONS, max_bytes: 1 << 20 };

    fn smp(orig: Value, patch: Value) -> Value {
        apply(PatchType::Strategic, &orig, patch.to_string().as_bytes(), LIMITS).expect("patch")
    }

    #[test]
    fn json_patch_operation_count_and_result_size_are_bounded() {
        let doc = json!({"a": "x"});
        let op = json!({"op": "replace", "path": "/a", "value": "y"});
        let ops = |n: usize| Value::Array(vec![op.clone(); n]).to_string();
        assert!(apply(PatchType::Json, &doc, ops(10_000).as_bytes(), LIMITS).is_ok());
        let err = apply(PatchType::Json, &doc, ops(10_001).as_bytes(), LIMITS).expect_err("too many");
        assert!(matches!(err, Error::TooManyOperations { count: 10_001, max: 10_000 }), "{err}");
        // Copying the document into itself doubles it each time.
        let big = json!({"a": "x".repeat(1000)});
        let doubling: Vec<Value> =
            (0..20).map(|i| json!({"op": "copy", "from": "", "path": format!("/c{i}")})).collect();
        let small = Limits { max_bytes: 100_000, ..LIMITS };
        let err = apply(PatchType::Json, &big, Value::Array(doubling).to_string().as_bytes(), small);
        assert!(matches!(err, Err(Error::TooLarge { .. })), "{err:?}");
        for kind in [PatchType::Merge, PatchType::Strategic] {
            let grow = json!({"b": "y".repeat(200_000)}).to_string();
            assert!(matches!(apply(kind, &doc, grow.as_bytes(), small), Err(Error::TooLarge { .. })), "{kind:?}");
        }
        assert_eq!(encoded_len_within(&json!({"a": 1}), 100), Some(7));
        assert_eq!(encoded_len_within(&json!({"a": 1}), 6), None);
    }

    #[test]
    fn keyed_list_merge_of_large_lists_is_linear_and_correct() {
        let n = 20_000;
        let orig = json!({"env": (0..n).map(|i| json!({"name": format!("V{i}"), "value": "0"})).collect::<Vec<_>>()});
        let mut changes: Vec<Value> = (0..n).map(|i| json!({"name": format!("V{i}"), "value": "1"})).collect();
        changes.push(json!({"name": "V0", "$patch": "delete"}));
        changes.push(json!({"name": "NEW", "value": "2"}));
        let out = smp(orig, json!({"env": changes}));
        let env = out["env"].as_array().expect("env");
        assert_eq!(env.len(), n);
        assert_eq!(env[0], json!({"name": "V1", "value": "1"}));
        assert_eq!(env[n - 1], json!({"name": "NEW", "value": "2"}));
        let set = smp(
            json!({"finalizers": (0..n).map(|i| format!("f{i}")).collect::<Vec<_>>()}),
            json!({"finalizers": (0..n).map(|i| format!("g{i}")).collect::<Vec<_>>(),
                "$deleteFromPrimitiveList/finalizers": (0..n).map(|i| format!("f{i}")).collect::<Vec<_>>()}),
        );
        assert_eq!(set["finalizers"].as_array().map(Vec::len), Some(n));
    }

    #[test]
    fn strategic_merge_merges_containers_by_name_and_ports_by_key() {
        let orig = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "ports": [{"containerPort": 80, "name": "http"}]},
            {"name": "b", "image": "b:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "image": "a:2", "ports": [{"containerPort": 81}]}]
        }}}});
        let out = smp(orig, patch);
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["image"], "a:2");
        assert_eq!(cs[1]["image"], "b:1");
        assert_eq!(cs[0]["ports"].as_array().map(Vec::len), Some(2));
        assert!(out["spec"]["template"]["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn strategic_merge_directives_delete_replace_and_retain() {
        let orig = json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "labels": {"x": "1", "y": "2"}, "args": ["a", "b"], "finalizers": ["f1"]});
        let patch = json!({
            "env": [{"name": "A", "$patch": "delete"}],
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "labels": {"x": null},
            "args": ["c"],
            "finalizers": ["f2"],
            "$deleteFromPrimitiveList/finalizers": ["f1"]
        });
        let out = smp(orig, patch);
        assert_eq!(out["env"], json!([{"name": "B", "value": "2"}]));
        assert_eq!(out["strategy"], json!({"type": "Recreate"}));
        assert_eq!(out["labels"], json!({"y": "2"}));
        assert_eq!(out["args"], json!(["c"]));
        assert_eq!(out["finalizers"], json!(["f2"]));
        let replaced = smp(json!({"m": {"a": 1}}), json!({"m": {"$patch": "replace", "b": 2}}));
        assert_eq!(replaced, json!({"m": {"b": 2}}));
    }

    #[test]
    fn service_ports_merge_by_port_and_conditions_by_type() {
        let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
        let out = smp(svc, json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443}]}}));
        assert_eq!(out["spec"]["ports"][0], json!({"port": 80, "targetPort": 8080, "name": "http"}));
        assert_eq!(out["spec"]["ports"][1], json!({"port": 443}));
        let st =
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "X", "status": "True"}]}});
        let out = smp(st, json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}));
        assert_eq!(out["status"]["conditions"][0]["status"], "True");
        assert_eq!(out["status"]["conditions"][1]["type"], "X");
    }

    #[test]
    fn merge_and_json_patches_and_content_types() {
        let orig = json!({"spec": {"replicas": 1, "list": [1, 2]}});
        let out = apply(PatchType::Merge, &orig, br#"{"spec":{"replicas":5,"list":[3]}}"#, LIMITS).expect("merge");
        assert_eq!(out, json!({"spec": {"replicas": 5, "list": [3]}}));
        let out = apply(PatchType::Json, &orig, br#"[{"op":"replace","path":"/spec/replicas","value":2}]"#, LIMITS)
            .expect("json patch");
        assert_eq!(out["spec"]["replicas"], 2);
        assert!(apply(PatchType::Json, &orig, br#"[{"op":"remove","path":"/nope"}]"#, LIMITS).is_err());
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8").ok(),
            Some(PatchType::Merge)
        );
        assert!(matches!(PatchType::from_content_type("application/apply-patch+yaml"), Err(Error::ApplyUnsupported)));
    }
}
