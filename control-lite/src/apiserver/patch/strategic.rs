//! Strategic merge patch: merge keys of the built-in list fields by field
//! name (and, for `ports`, by parent field); unknown lists are replaced.
//! Keyed and set-like list merges index the original list, so they are
//! linear in the list sizes.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

/// A hashable identity of a JSON value (its encoding), for list indexes.
fn identity(v: &Value) -> String {
    v.to_string()
}

/// How a list field merges (shared with server-side apply's associative lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// Objects merged by this key.
    MergeKey(&'static str),
    /// Primitive values merged as a set.
    PrimitiveSet,
    /// Replaced wholesale.
    Replace,
}

/// Merge strategy of the list `field` whose enclosing object is field `parent`.
pub fn list_strategy(parent: &str, field: &str) -> ListStrategy {
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
    use super::super::tests::LIMITS;
    use super::super::{apply, PatchType};
    use super::*;
    use serde_json::json;

    fn smp(orig: Value, patch: Value) -> Value {
        apply(PatchType::Strategic, &orig, patch.to_string().as_bytes(), LIMITS).expect("patch")
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
}
