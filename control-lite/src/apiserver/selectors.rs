//! Label and field selectors: parsing query strings and matching objects.

use std::collections::BTreeMap;

use serde_json::Value;

/// A selector parse error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The label selector is malformed.
    #[error("unable to parse requirement: {selector:?}: {reason}")]
    Label { selector: String, reason: String },
    /// The field selector is malformed or names an unsupported field.
    #[error("invalid field selector {selector:?}: {reason}")]
    Field { selector: String, reason: String },
}

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `k=v`, `k==v`.
    Equals(String, String),
    /// `k!=v`.
    NotEquals(String, String),
    /// `k in (a,b)`.
    In(String, Vec<String>),
    /// `k notin (a,b)`.
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    DoesNotExist(String),
}

/// A parsed label selector (AND of requirements; empty matches everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_set(rest: &str) -> Option<Vec<String>> {
    let rest = rest.trim();
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),!h`.
    pub fn parse(selector: &str) -> Result<LabelSelector, Error> {
        let err = |reason: &str| Error::Label { selector: selector.to_string(), reason: reason.to_string() };
        let mut reqs = Vec::new();
        if selector.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for part in split_top_level(selector) {
            let part = part.trim();
            if part.is_empty() {
                return Err(err("empty requirement"));
            }
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(key.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Equals(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Equals(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                Requirement::NotIn(k.trim().to_string(), parse_set(rest).ok_or_else(|| err("bad set"))?)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                Requirement::In(k.trim().to_string(), parse_set(rest).ok_or_else(|| err("bad set"))?)
            } else if part.contains(|c: char| c.is_whitespace() || "()<>".contains(c)) {
                return Err(err("unknown operator"));
            } else {
                Requirement::Exists(part.to_string())
            };
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// From an API `LabelSelector` JSON (`matchLabels`, `matchExpressions`).
    pub fn from_api(selector: &Value) -> LabelSelector {
        let mut reqs = Vec::new();
        if let Some(m) = selector.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Requirement::Equals(k.clone(), v.as_str().unwrap_or_default().to_string()));
            }
        }
        for e in selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            match e.get("operator").and_then(Value::as_str) {
                Some("In") => reqs.push(Requirement::In(key, values)),
                Some("NotIn") => reqs.push(Requirement::NotIn(key, values)),
                Some("Exists") => reqs.push(Requirement::Exists(key)),
                Some("DoesNotExist") => reqs.push(Requirement::DoesNotExist(key)),
                _ => {}
            }
        }
        LabelSelector(reqs)
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// `a=b,c=d` rendering (for Scale status and table columns).
    pub fn render(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        parts.join(",")
    }
}

/// Labels of an object as a map.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

/// A parsed field selector: AND of `(path, equal?, value)`. Any dotted field
/// path is accepted (upstream allows a per-resource list: `metadata.name`,
/// `metadata.namespace`, `spec.nodeName`, `status.phase`, `involvedObject.*`,
/// `reason`, `type`, ...); missing fields read as "".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `metadata.name=x,spec.nodeName!=`.
    pub fn parse(selector: &str) -> Result<FieldSelector, Error> {
        let err = |reason: String| Error::Field { selector: selector.to_string(), reason };
        let mut out = Vec::new();
        if selector.trim().is_empty() {
            return Ok(FieldSelector(out));
        }
        for part in selector.split(',') {
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(err(format!("{part:?} has no operator")));
            };
            let field = field.trim();
            let well_formed = !field.is_empty()
                && field.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()));
            if !well_formed {
                return Err(err(format!("field label not supported: {field}")));
            }
            out.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    /// Whether the object satisfies the selector (missing fields read as "").
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, value)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let actual = match obj.pointer(&pointer) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            (actual == *value) == *eq
        })
    }
}

/// Label and field selector together.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    /// Label part.
    pub labels: LabelSelector,
    /// Field part.
    pub fields: FieldSelector,
}

impl Selectors {
    /// Whether it selects everything.
    pub fn is_empty(&self) -> bool {
        self.labels.0.is_empty() && self.fields.0.is_empty()
    }

    /// Whether `obj` matches both.
    pub fn matches(&self, obj: &Value) -> bool {
        self.fields.matches(obj) && self.labels.matches(&labels_of(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn label_selector_operators_match_as_upstream() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app notin (web,db)", false),
            ("missing notin (a)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier in (front, back)", true),
            ("app=web,tier=back", false),
        ];
        for (sel, want) in cases {
            let parsed = LabelSelector::parse(sel).expect(sel);
            assert_eq!(parsed.matches(&l), want, "selector {sel:?}");
        }
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        for sel in ["app=web,", "app in web", "a b"] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel:?}");
        }
    }

    #[test]
    fn api_selector_converts_to_requirements() {
        let sel = LabelSelector::from_api(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]
        }));
        assert!(sel.matches(&labels(&[("app", "web"), ("env", "a")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("env", "c")])));
        assert_eq!(sel.render(), "app=web,env in (a,b)");
    }

    #[test]
    fn field_selectors_match_known_fields() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let cases = [
            ("metadata.name=p", true),
            ("metadata.name==q", false),
            ("spec.nodeName=n1,status.phase!=Failed", true),
            ("spec.nodeName=", false),
            ("metadata.namespace!=ns", false),
        ];
        for (sel, want) in cases {
            assert_eq!(FieldSelector::parse(sel).expect(sel).matches(&pod), want, "{sel}");
        }
        let unbound = json!({"metadata": {"name": "p"}, "spec": {}});
        assert!(FieldSelector::parse("spec.nodeName=").expect("parse").matches(&unbound));
        assert!(FieldSelector::parse("spec foo=x").is_err());
        let ev = json!({"involvedObject": {"kind": "Pod", "name": "p"}, "count": 2});
        assert!(FieldSelector::parse("involvedObject.kind=Pod,involvedObject.name=p,count=2")
            .expect("parse")
            .matches(&ev));
    }
}
