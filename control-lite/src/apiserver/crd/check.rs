//! Checking a custom resource against its version's [`Schema`] (pure):
//! fills in `default`s of absent properties, prunes fields the schema does
//! not declare (unless `x-kubernetes-preserve-unknown-fields`), and reports
//! every violation as a [`Cause`] with upstream's field path and wording
//! (`spec.replicas: Invalid value: -1: spec.replicas in body should be
//! greater than or equal to 0`).
//!
//! Work is bounded by the input: the walk follows the schema (whose depth is
//! capped at parse time) and each value is visited once; untyped subtrees
//! kept by preserve-unknown-fields are not walked.

use serde_json::{Map, Value};

use super::schema::{Additional, Schema, Type};
use crate::apiserver::status::Cause;

/// Most causes reported for one object (the rest are dropped).
pub const MAX_CAUSES: usize = 100;
/// Longest rendering of a value inside a message.
const MAX_VALUE_TEXT: usize = 128;

/// Defaults, prunes and validates `obj` (a whole custom resource) against
/// `schema`; returns the violations. `apiVersion`, `kind` and `metadata` at
/// the root are kept and left to the generic metadata rules.
pub fn check(schema: &Schema, obj: &mut Value) -> Vec<Cause> {
    let mut out = Vec::new();
    if let Some(map) = obj.as_object_mut() {
        object(schema, map, "", true, &mut out);
    }
    out.truncate(MAX_CAUSES);
    out
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn text(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > MAX_VALUE_TEXT {
        let mut end = MAX_VALUE_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

fn invalid(path: &str, v: &Value, detail: String) -> Cause {
    Cause { reason: "FieldValueInvalid", field: path.into(), message: format!("Invalid value: {}: {detail}", text(v)) }
}

fn node(s: &Schema, v: &mut Value, path: &str, out: &mut Vec<Cause>) {
    if out.len() >= MAX_CAUSES {
        return;
    }
    if v.is_null() {
        if !(s.nullable || (s.ty.is_none() && s.preserve_unknown)) {
            let ty = s.ty.map_or("object", Type::as_str);
            out.push(invalid(path, v, format!("{path} in body must be of type {ty}: \"null\"")));
        }
        return;
    }
    if s.int_or_string {
        if !(v.is_i64() || v.is_u64() || v.is_string()) {
            out.push(invalid(path, v, format!("{path} in body must be of type integer-or-string")));
        }
        return;
    }
    let Some(ty) = s.ty else {
        if let (true, Some(map)) = (s.embedded || !s.properties.is_empty(), v.as_object_mut()) {
            object(s, map, path, s.embedded, out);
        }
        return;
    };
    let ok = match ty {
        Type::Object => v.is_object(),
        Type::Array => v.is_array(),
        Type::String => v.is_string(),
        Type::Integer => v.is_i64() || v.is_u64(),
        Type::Number => v.is_number(),
        Type::Boolean => v.is_boolean(),
    };
    if !ok {
        let got = match v {
            Value::Object(_) => "object",
            Value::Array(_) => "array",
            Value::String(_) => "string",
            Value::Number(n) if n.is_f64() => "number",
            Value::Number(_) => "integer",
            Value::Bool(_) => "boolean",
            Value::Null => "null",
        };
        out.push(invalid(path, v, format!("{path} in body must be of type {}: \"{got}\"", ty.as_str())));
        return;
    }
    if !s.enumeration.is_empty() && !s.enumeration.contains(v) {
        let allowed: Vec<String> = s.enumeration.iter().map(text).collect();
        out.push(Cause {
            reason: "FieldValueNotSupported",
            field: path.into(),
            message: format!("Unsupported value: {}: supported values: {}", text(v), allowed.join(", ")),
        });
    }
    match v {
        Value::Object(map) => object(s, map, path, s.embedded, out),
        Value::Array(items) => array(s, items, path, out),
        Value::String(st) => string(s, st, path, out),
        Value::Number(n) => number(s, n.as_f64().unwrap_or_default(), v.clone(), path, out),
        _ => {}
    }
}

fn object(s: &Schema, map: &mut Map<String, Value>, path: &str, keep_meta: bool, out: &mut Vec<Cause>) {
    for (name, prop) in &s.properties {
        if let (false, Some(default)) = (map.contains_key(name), &prop.default) {
            map.insert(name.clone(), default.clone());
        }
    }
    for name in &s.required {
        if !map.contains_key(name) {
            out.push(Cause::required(join(path, name)));
        }
    }
    let root_meta = |k: &str| keep_meta && matches!(k, "apiVersion" | "kind" | "metadata");
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let Some(value) = map.get_mut(&key) else { continue };
        if let Some(prop) = s.properties.get(&key) {
            node(prop, value, &join(path, &key), out);
            continue;
        }
        match &s.additional {
            Additional::Schema(sub) => node(sub, value, &format!("{path}[{key}]"), out),
            Additional::Any => {}
            Additional::None if s.preserve_unknown || root_meta(&key) => {}
            Additional::None => {
                map.remove(&key);
            }
        }
    }
}

fn array(s: &Schema, items: &mut [Value], path: &str, out: &mut Vec<Cause>) {
    let n = items.len() as u64;
    if let Some(max) = s.max_items.filter(|m| n > *m) {
        out.push(Cause {
            reason: "FieldValueTooMany",
            field: path.into(),
            message: format!("Too many: {n}: must have at most {max} items"),
        });
    }
    if let Some(min) = s.min_items.filter(|m| n < *m) {
        out.push(invalid(path, &Value::from(n), format!("{path} in body should have at least {min} items")));
    }
    if let Some(item) = &s.items {
        for (i, v) in items.iter_mut().enumerate() {
            node(item, v, &format!("{path}[{i}]"), out);
        }
    }
}

fn string(s: &Schema, st: &str, path: &str, out: &mut Vec<Cause>) {
    let chars = st.chars().count() as u64;
    if let Some(max) = s.max_length.filter(|m| chars > *m) {
        out.push(Cause {
            reason: "FieldValueTooLong",
            field: path.into(),
            message: format!("Too long: may not be more than {max} bytes"),
        });
    }
    if let Some(min) = s.min_length.filter(|m| chars < *m) {
        out.push(invalid(path, &Value::from(st), format!("{path} in body should be at least {min} chars long")));
    }
    if let Some(re) = s.pattern.as_ref().filter(|re| !re.is_match(st)) {
        out.push(invalid(path, &Value::from(st), format!("{path} in body should match '{}'", re.as_str())));
    }
}

fn number(s: &Schema, x: f64, v: Value, path: &str, out: &mut Vec<Cause>) {
    let fmt = |b: f64| Value::from(b).to_string().trim_end_matches(".0").to_string();
    if let Some((min, exclusive)) = s.minimum {
        if exclusive && x <= min {
            out.push(invalid(path, &v, format!("{path} in body should be greater than {}", fmt(min))));
        } else if x < min {
            out.push(invalid(path, &v, format!("{path} in body should be greater than or equal to {}", fmt(min))));
        }
    }
    if let Some((max, exclusive)) = s.maximum {
        if exclusive && x >= max {
            out.push(invalid(path, &v, format!("{path} in body should be less than {}", fmt(max))));
        } else if x > max {
            out.push(invalid(path, &v, format!("{path} in body should be less than or equal to {}", fmt(max))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::crd::schema::parse;
    use serde_json::json;

    fn schema() -> Schema {
        parse(
            &json!({"type": "object", "properties": {
                "spec": {"type": "object", "required": ["image"], "properties": {
                    "image": {"type": "string", "minLength": 1, "maxLength": 10, "pattern": "^[a-z]+$"},
                    "replicas": {"type": "integer", "minimum": 0, "maximum": 5, "default": 1},
                    "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "nullable": true},
                    "mode": {"type": "string", "enum": ["a", "b"]},
                    "port": {"x-kubernetes-int-or-string": true},
                    "tags": {"type": "array", "maxItems": 2, "minItems": 1, "items": {"type": "string"}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                        "x-kubernetes-preserve-unknown-fields": true},
                    "on": {"type": "boolean"}}},
                "status": {"type": "object", "properties": {"ready": {"type": "integer"}}}}}),
            "s",
        )
        .expect("schema")
    }

    fn causes(obj: Value) -> Vec<String> {
        let mut obj = obj;
        check(&schema(), &mut obj).iter().map(Cause::display).collect()
    }

    #[test]
    fn valid_objects_are_defaulted_and_pruned() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "a"}, "junk": 1,
            "spec": {"image": "nginx", "extra": true, "port": "http", "ratio": null, "labels": {"a": "b"},
                "raw": {"any": {"thing": 1}}, "template": {"apiVersion": "v1", "kind": "Pod", "spec": {}}}});
        assert_eq!(check(&schema(), &mut obj), vec![]);
        assert_eq!(obj["spec"]["replicas"], 1);
        assert!(obj.get("junk").is_none() && obj["spec"].get("extra").is_none());
        assert_eq!(obj["metadata"]["name"], "a");
        assert_eq!(obj["spec"]["raw"]["any"]["thing"], 1);
        assert_eq!(obj["spec"]["template"]["kind"], "Pod");
    }

    #[test]
    fn violations_carry_field_paths_and_upstream_wording() {
        let cases = [
            (
                json!({"spec": {"image": "a", "replicas": "3"}}),
                "spec.replicas: Invalid value: \"3\": spec.replicas in body must be of type integer: \"string\"",
            ),
            (
                json!({"spec": {"image": "a", "replicas": -1}}),
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
            ),
            (
                json!({"spec": {"image": "a", "replicas": 6}}),
                "spec.replicas: Invalid value: 6: spec.replicas in body should be less than or equal to 5",
            ),
            (
                json!({"spec": {"image": "a", "ratio": 0}}),
                "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0",
            ),
            (json!({"spec": {}}), "spec.image: Required value"),
            (
                json!({"spec": {"image": ""}}),
                "spec.image: Invalid value: \"\": spec.image in body should be at least 1 chars long",
            ),
            (json!({"spec": {"image": "abcdefghijk"}}), "spec.image: Too long: may not be more than 10 bytes"),
            (
                json!({"spec": {"image": "A1"}}),
                "spec.image: Invalid value: \"A1\": spec.image in body should match '^[a-z]+$'",
            ),
            (
                json!({"spec": {"image": "a", "mode": "c"}}),
                "spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\"",
            ),
            (
                json!({"spec": {"image": "a", "port": 1.5}}),
                "spec.port: Invalid value: 1.5: spec.port in body must be of type integer-or-string",
            ),
            (
                json!({"spec": {"image": "a", "tags": ["a", "b", "c"]}}),
                "spec.tags: Too many: 3: must have at most 2 items",
            ),
            (
                json!({"spec": {"image": "a", "tags": []}}),
                "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items",
            ),
            (
                json!({"spec": {"image": "a", "tags": [1]}}),
                "spec.tags[0]: Invalid value: 1: spec.tags[0] in body must be of type string: \"integer\"",
            ),
            (
                json!({"spec": {"image": "a", "labels": {"k": 2}}}),
                "spec.labels[k]: Invalid value: 2: spec.labels[k] in body must be of type string: \"integer\"",
            ),
            (
                json!({"spec": {"image": "a", "on": null}}),
                "spec.on: Invalid value: null: spec.on in body must be of type boolean: \"null\"",
            ),
            (json!({"spec": "x"}), "spec: Invalid value: \"x\": spec in body must be of type object: \"string\""),
        ];
        for (obj, want) in cases {
            let got = causes(obj.clone());
            assert!(got.iter().any(|c| c == want), "{obj}: {got:?} lacks {want}");
        }
    }

    #[test]
    fn reports_are_bounded() {
        let tags: Vec<Value> = (0..1000).map(Value::from).collect();
        let s =
            parse(&json!({"type": "object", "properties": {"t": {"type": "array", "items": {"type": "string"}}}}), "s")
                .expect("schema");
        let mut obj = json!({"t": tags, "long": "x".repeat(1000)});
        assert_eq!(check(&s, &mut obj).len(), MAX_CAUSES);
        let mut big = json!({"t": "y".repeat(1000)});
        let c = check(&s, &mut big);
        assert!(c[0].message.len() < 300, "{}", c[0].message);
    }
}
