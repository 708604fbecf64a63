//! PATCH bodies: JSON merge patch, strategic merge patch and JSON patch.
//!
//! Strategic merge patch knows the merge keys of the built-in list fields by
//! field name (and, for `ports`, by parent field); unknown lists are replaced.

use serde_json::{Map, Value};

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

/// Applies `body` of `kind` to `doc`, returning the patched document.
pub fn apply(kind: PatchType, doc: &Value, body: &[u8]) -> Result<Value, Error> {
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
            json_patch::patch(&mut out, &patch)?;
        }
    }
    Ok(out)
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
                let kept: Vec<Value> = cur.iter().filter(|v| !remove.contains(v)).cloned().collect();
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
            let mut out = original.to_vec();
            for v in patch {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Value::Array(out)
        }
        ListStrategy::MergeKey(mk) => {
            if patch.iter().any(|e| !e.is_object()) {
                return Value::Array(patch.to_vec());
            }
            let mut out = original.to_vec();
            for pe in patch {
                let key = pe.get(mk);
                let pos = key.and_then(|k| out.iter().position(|oe| oe.get(mk) == Some(k)));
                let delete = pe.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        out.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => out[i] = strategic_merge(&out[i], pe, field),
                    (None, false) => out.push(strategic_merge(&Value::Object(Map::new()), pe, field)),
                }
            }
            Value::Array(out)
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

    fn smp(orig: Value, patch: Value) -> Value {
        apply(PatchType::Strategic, &orig, patch.to_string().as_bytes()).expect("patch")
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
        let out = apply(PatchType::Merge, &orig, br#"{"spec":{"replicas":5,"list":[3]}}"#).expect("merge");
        assert_eq!(out, json!({"spec": {"replicas": 5, "list": [3]}}));
        let out = apply(PatchType::Json, &orig, br#"[{"op":"replace","path":"/spec/replicas","value":2}]"#)
            .expect("json patch");
        assert_eq!(out["spec"]["replicas"], 2);
        assert!(apply(PatchType::Json, &orig, br#"[{"op":"remove","path":"/nope"}]"#).is_err());
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8").ok(),
            Some(PatchType::Merge)
        );
        assert!(matches!(PatchType::from_content_type("application/apply-patch+yaml"), Err(Error::ApplyUnsupported)));
    }
}
