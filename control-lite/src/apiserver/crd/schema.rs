//! A CRD version's `openAPIV3Schema`, parsed once into a typed, bounded
//! tree ([`Schema`]) when the CRD is admitted: depth, node count, pattern
//! length and compiled regex size are capped here, so checking a custom
//! resource ([`super::check`]) does bounded work per value.
//!
//! Only the structural subset is read: `type`, `properties`, `required`,
//! `additionalProperties`, `items`, `enum`, numeric and length bounds,
//! `pattern`, `nullable`, `default` and the `x-kubernetes-*` markers that
//! change validation or pruning. Everything else (descriptions, formats,
//! `allOf`/`oneOf`...) is accepted and ignored.

use std::collections::BTreeMap;

use serde_json::Value;

/// Deepest schema nesting accepted.
pub const MAX_DEPTH: usize = 64;
/// Most schema nodes in one version's schema.
pub const MAX_NODES: usize = 10_000;
/// Longest `pattern` accepted (bytes).
pub const MAX_PATTERN_LEN: usize = 1024;
/// Largest compiled regex (bytes), passed to the `regex` crate.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why a schema cannot be served; `path` is the field path under the CRD.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("{path}: schema nested deeper than {MAX_DEPTH} levels")]
    TooDeep { path: String },
    /// More than [`MAX_NODES`] nodes.
    #[error("{path}: schema has more than {MAX_NODES} nodes")]
    TooLarge { path: String },
    /// `type` is not one of the structural types.
    #[error("{path}.type: Unsupported value: {ty:?}")]
    BadType { path: String, ty: String },
    /// `pattern` does not compile within the limits.
    #[error("{path}.pattern: Invalid value: {pattern:?}: {reason}")]
    BadPattern { path: String, pattern: String, reason: String },
    /// A keyword has the wrong JSON type.
    #[error("{path}.{keyword}: Invalid value: must be {want}")]
    BadKeyword { path: String, keyword: &'static str, want: &'static str },
}

/// The structural types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// `object`.
    Object,
    /// `array`.
    Array,
    /// `string`.
    String,
    /// `integer`.
    Integer,
    /// `number`.
    Number,
    /// `boolean`.
    Boolean,
}

impl Type {
    fn parse(s: &str) -> Option<Type> {
        Some(match s {
            "object" => Type::Object,
            "array" => Type::Array,
            "string" => Type::String,
            "integer" => Type::Integer,
            "number" => Type::Number,
            "boolean" => Type::Boolean,
            _ => return None,
        })
    }

    /// The keyword as written in a schema.
    pub fn as_str(self) -> &'static str {
        match self {
            Type::Object => "object",
            Type::Array => "array",
            Type::String => "string",
            Type::Integer => "integer",
            Type::Number => "number",
            Type::Boolean => "boolean",
        }
    }
}

/// `additionalProperties`.
#[derive(Debug, Default)]
pub enum Additional {
    /// Absent (unknown fields are pruned) or `false`.
    #[default]
    None,
    /// `true`: any field, kept as is.
    Any,
    /// A schema every other field's value must meet (a map).
    Schema(Box<Schema>),
}

/// One node of a structural schema.
#[derive(Debug, Default)]
pub struct Schema {
    /// `type` (absent only with int-or-string or preserve-unknown-fields).
    pub ty: Option<Type>,
    /// `nullable`.
    pub nullable: bool,
    /// `properties`.
    pub properties: BTreeMap<String, Schema>,
    /// `required`.
    pub required: Vec<String>,
    /// `additionalProperties`.
    pub additional: Additional,
    /// `items`.
    pub items: Option<Box<Schema>>,
    /// `enum`.
    pub enumeration: Vec<Value>,
    /// `minimum` and whether it is exclusive.
    pub minimum: Option<(f64, bool)>,
    /// `maximum` and whether it is exclusive.
    pub maximum: Option<(f64, bool)>,
    /// `minLength`, `maxLength` (characters).
    pub min_length: Option<u64>,
    /// See `min_length`.
    pub max_length: Option<u64>,
    /// `minItems`, `maxItems`.
    pub min_items: Option<u64>,
    /// See `min_items`.
    pub max_items: Option<u64>,
    /// `pattern`, compiled.
    pub pattern: Option<regex::Regex>,
    /// `default`, filled in for absent properties.
    pub default: Option<Value>,
    /// `x-kubernetes-preserve-unknown-fields`.
    pub preserve_unknown: bool,
    /// `x-kubernetes-int-or-string`.
    pub int_or_string: bool,
    /// `x-kubernetes-embedded-resource`: keeps `apiVersion`, `kind`, `metadata`.
    pub embedded: bool,
}

/// Parses `v` (a version's `openAPIV3Schema`); `path` names it in errors.
pub fn parse(v: &Value, path: &str) -> Result<Schema, Error> {
    let mut nodes = 0usize;
    parse_node(v, path, 0, &mut nodes)
}

fn parse_node(v: &Value, path: &str, depth: usize, nodes: &mut usize) -> Result<Schema, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep { path: path.into() });
    }
    *nodes = nodes.saturating_add(1);
    if *nodes > MAX_NODES {
        return Err(Error::TooLarge { path: path.into() });
    }
    let Some(map) = v.as_object() else {
        return Err(Error::BadKeyword { path: path.into(), keyword: "schema", want: "an object" });
    };
    let bool_of = |k: &'static str| match map.get(k) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Error::BadKeyword { path: path.into(), keyword: k, want: "a boolean" }),
    };
    let uint_of = |k: &'static str| match map.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(Error::BadKeyword { path: path.into(), keyword: k, want: "an integer" }),
    };
    let num_of = |k: &'static str| match map.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or(Error::BadKeyword { path: path.into(), keyword: k, want: "a number" }),
    };
    let mut s = Schema {
        nullable: bool_of("nullable")?,
        preserve_unknown: bool_of("x-kubernetes-preserve-unknown-fields")?,
        int_or_string: bool_of("x-kubernetes-int-or-string")?,
        embedded: bool_of("x-kubernetes-embedded-resource")?,
        minimum: num_of("minimum")?.map(|m| (m, bool_of("exclusiveMinimum").unwrap_or(false))),
        maximum: num_of("maximum")?.map(|m| (m, bool_of("exclusiveMaximum").unwrap_or(false))),
        min_length: uint_of("minLength")?,
        max_length: uint_of("maxLength")?,
        min_items: uint_of("minItems")?,
        max_items: uint_of("maxItems")?,
        default: map.get("default").cloned(),
        ..Schema::default()
    };
    match map.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t.is_empty() => {}
        Some(Value::String(t)) => {
            s.ty = Some(Type::parse(t).ok_or_else(|| Error::BadType { path: path.into(), ty: t.clone() })?)
        }
        Some(_) => return Err(Error::BadKeyword { path: path.into(), keyword: "type", want: "a string" }),
    }
    if let Some(props) = map.get("properties") {
        let props = props.as_object().ok_or(Error::BadKeyword {
            path: path.into(),
            keyword: "properties",
            want: "an object",
        })?;
        for (name, sub) in props {
            let child = parse_node(sub, &format!("{path}.properties[{name}]"), depth + 1, nodes)?;
            s.properties.insert(name.clone(), child);
        }
    }
    if let Some(req) = map.get("required").filter(|r| !r.is_null()) {
        let req = req.as_array().ok_or(Error::BadKeyword { path: path.into(), keyword: "required", want: "a list" })?;
        s.required = req.iter().filter_map(Value::as_str).map(str::to_string).collect();
    }
    s.additional = match map.get("additionalProperties") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Additional::None,
        Some(Value::Bool(true)) => Additional::Any,
        Some(sub) => {
            Additional::Schema(Box::new(parse_node(sub, &format!("{path}.additionalProperties"), depth + 1, nodes)?))
        }
    };
    if let Some(items) = map.get("items").filter(|i| !i.is_null()) {
        s.items = Some(Box::new(parse_node(items, &format!("{path}.items"), depth + 1, nodes)?));
    }
    if let Some(e) = map.get("enum").filter(|e| !e.is_null()) {
        s.enumeration =
            e.as_array().ok_or(Error::BadKeyword { path: path.into(), keyword: "enum", want: "a list" })?.clone();
    }
    if let Some(p) = map.get("pattern").filter(|p| !p.is_null()) {
        let p = p.as_str().ok_or(Error::BadKeyword { path: path.into(), keyword: "pattern", want: "a string" })?;
        s.pattern = Some(compile(p, path)?);
    }
    Ok(s)
}

fn compile(pattern: &str, path: &str) -> Result<regex::Regex, Error> {
    let bad = |reason: String| Error::BadPattern { path: path.into(), pattern: pattern.into(), reason };
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(bad(format!("longer than {MAX_PATTERN_LEN} bytes")));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_structural_keywords() {
        let s = parse(
            &json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object",
                "properties": {"replicas": {"type": "integer", "minimum": 0, "exclusiveMaximum": true, "maximum": 10},
                    "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5}},
                "additionalProperties": false}}}),
            "schema",
        )
        .expect("valid");
        let spec = &s.properties["spec"];
        assert_eq!(s.required, vec!["spec"]);
        assert_eq!(spec.properties["replicas"].minimum, Some((0.0, false)));
        assert_eq!(spec.properties["replicas"].maximum, Some((10.0, true)));
        assert!(spec.properties["name"].pattern.as_ref().is_some_and(|p| p.is_match("abc")));
    }

    #[test]
    fn refuses_bad_and_unbounded_schemas() {
        let cases = [
            (json!({"type": "thing"}), "s.type: Unsupported value: \"thing\""),
            (json!({"type": "string", "pattern": "("}), "s.pattern: Invalid value"),
            (json!({"type": "string", "pattern": "a".repeat(2000)}), "longer than 1024 bytes"),
            (json!({"type": "string", "pattern": "\\w{1000}{1000}"}), "s.pattern"),
            (json!({"type": "object", "properties": {"a": {"type": 3}}}), "s.properties[a].type"),
            (json!({"type": "integer", "minimum": "x"}), "s.minimum: Invalid value: must be a number"),
        ];
        for (schema, want) in cases {
            let err = parse(&schema, "s").expect_err("refused").to_string();
            assert!(err.contains(want), "{err} lacks {want}");
        }
        let mut deep = json!({"type": "string"});
        for _ in 0..70 {
            deep = json!({"type": "object", "properties": {"a": deep}});
        }
        assert!(matches!(parse(&deep, "s"), Err(Error::TooDeep { .. })));
        let wide: serde_json::Map<String, Value> =
            (0..MAX_NODES + 1).map(|i| (format!("f{i}"), json!({"type": "string"}))).collect();
        assert!(matches!(parse(&json!({"type": "object", "properties": wide}), "s"), Err(Error::TooLarge { .. })));
    }
}
