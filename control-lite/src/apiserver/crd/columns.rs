//! `additionalPrinterColumns` (pure): the column definitions a CRD version
//! declares and their cells, read with the simple JSONPath subset upstream
//! CRDs use: `.a.b`, `.a[0]`, `.a[*]`-free paths and one equality filter
//! such as `.status.conditions[?(@.type=="Ready")].status`. A column of
//! type `date` prints as an age, as upstream's Table convertor does.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::apiserver::duration::human_duration;

/// Longest JSONPath accepted in a column.
pub const MAX_PATH_LEN: usize = 512;
/// Most columns accepted per version.
pub const MAX_COLUMNS: usize = 64;

/// Why a column's JSONPath is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Not in the supported subset.
    #[error("{path:?}: unsupported JSONPath ({reason})")]
    Unsupported { path: String, reason: &'static str },
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
    /// `[?(@.key=="value")]`: the first list element whose `key` is `value`.
    Filter(String, Value),
}

/// One printer column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Header.
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub ty: String,
    /// `format`, as declared.
    pub format: String,
    /// Description.
    pub description: String,
    /// 0: shown by default; more: with `-o wide`.
    pub priority: i64,
    steps: Vec<Step>,
}

/// Parses a simple JSONPath (`.spec.replicas`, optionally in `{}`).
fn parse_path(path: &str) -> Result<Vec<Step>, Error> {
    let bad = |reason| Error::Unsupported { path: path.into(), reason };
    if path.len() > MAX_PATH_LEN {
        return Err(bad("too long"));
    }
    let p = path.trim();
    let p = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')).unwrap_or(p);
    let mut rest = p.strip_prefix('.').ok_or_else(|| bad("must start with ."))?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or_else(|| bad("unclosed ["))?;
            let inner = &after[..end];
            if let Ok(i) = inner.parse::<usize>() {
                steps.push(Step::Index(i));
            } else {
                let cond = inner.strip_prefix("?(@.").and_then(|c| c.strip_suffix(')')).ok_or_else(|| bad("index"))?;
                let (key, value) = cond.split_once("==").ok_or_else(|| bad("filter must be =="))?;
                let value = value.trim();
                let quoted = value.len() >= 2 && (value.starts_with('"') || value.starts_with('\''));
                let want = if quoted {
                    Value::from(&value[1..value.len() - 1])
                } else {
                    serde_json::from_str(value).unwrap_or_else(|_| Value::from(value))
                };
                steps.push(Step::Filter(key.trim().to_string(), want));
            }
            rest = &after[end + 1..];
        } else {
            let rest_field = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest_field.find(['.', '[']).unwrap_or(rest_field.len());
            let field = &rest_field[..end];
            if field.is_empty() || field.contains(['*', '(', ' ']) {
                return Err(bad("field"));
            }
            steps.push(Step::Field(field.to_string()));
            rest = &rest_field[end..];
        }
    }
    Ok(steps)
}

/// Parses a version's `additionalPrinterColumns`; `path` names it in errors.
pub fn parse(columns: &[Value]) -> Result<Vec<Column>, Error> {
    if columns.len() > MAX_COLUMNS {
        return Err(Error::Unsupported { path: String::new(), reason: "too many columns" });
    }
    columns
        .iter()
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            Ok(Column {
                name: s("name"),
                ty: s("type"),
                format: s("format"),
                description: s("description"),
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                steps: parse_path(&s("jsonPath"))?,
            })
        })
        .collect()
}

fn find<'a>(obj: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    let mut cur = obj;
    for step in steps {
        cur = match step {
            Step::Field(f) => cur.get(f)?,
            Step::Index(i) => cur.get(i)?,
            Step::Filter(k, v) => cur.as_array()?.iter().find(|e| e.get(k) == Some(v))?,
        };
    }
    Some(cur)
}

/// The cell of `column` for `obj` at `now`.
pub fn cell(column: &Column, obj: &Value, now: Timestamp) -> Value {
    let Some(v) = find(obj, &column.steps) else { return Value::Null };
    match (column.ty.as_str(), v) {
        ("date", Value::String(t)) => match t.parse::<Timestamp>() {
            Ok(t) => json!(human_duration(now.as_second().saturating_sub(t.as_second()))),
            Err(_) => json!(t),
        },
        (_, Value::Object(_) | Value::Array(_)) => json!(v.to_string()),
        _ => v.clone(),
    }
}

/// A Table column definition.
pub fn definition(column: &Column) -> Value {
    json!({"name": column.name, "type": column.ty, "format": column.format,
        "description": column.description, "priority": column.priority})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(path: &str, ty: &str) -> Column {
        parse(&[json!({"name": "C", "type": ty, "jsonPath": path})]).expect("column").remove(0)
    }

    #[test]
    fn cells_follow_simple_jsonpaths() {
        let obj = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"replicas": 3, "ports": [{"port": 80}], "sel": {"a": "b"}},
            "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        let now: Timestamp = "2026-01-01T00:05:00Z".parse().expect("time");
        let cases = [
            (".spec.replicas", "integer", json!(3)),
            ("{.spec.ports[0].port}", "integer", json!(80)),
            (".status.conditions[?(@.type==\"Ready\")].status", "string", json!("True")),
            (".metadata.creationTimestamp", "date", json!("5m")),
            (".spec.sel", "string", json!("{\"a\":\"b\"}")),
            (".spec.missing", "string", Value::Null),
        ];
        for (path, ty, want) in cases {
            assert_eq!(cell(&col(path, ty), &obj, now), want, "{path}");
        }
    }

    #[test]
    fn unsupported_paths_are_refused() {
        for path in ["spec.x", ".spec[*].x", ".a[", ".a[?(@.x>1)]", ".a..b"] {
            assert!(parse(&[json!({"name": "C", "type": "string", "jsonPath": path})]).is_err(), "{path}");
        }
    }
}
