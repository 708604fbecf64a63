//! Role, ClusterRole, RoleBinding and ClusterRoleBinding: every rule names
//! verbs, and resource rules name API groups; bindings name a role of a
//! supported kind and subjects of a known kind.

use serde_json::Value;

use super::Causes;
use crate::apiserver::registry::Kind;
use crate::apiserver::status::Cause;

fn strings<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    v.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect()
}

/// Validates one RBAC object (`kind` is one of the four RBAC kinds).
pub fn validate_rbac(kind: Kind, obj: &Value, out: &mut Causes) {
    match kind {
        Kind::Role | Kind::ClusterRole => {
            let rules = obj.get("rules").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            for (i, rule) in rules.iter().enumerate() {
                if strings(rule, "verbs").is_empty() {
                    out.push(Cause::required(format!("rules[{i}].verbs")));
                }
                let non_resource = !strings(rule, "nonResourceURLs").is_empty();
                if non_resource && kind == Kind::Role {
                    out.push(Cause::invalid(
                        format!("rules[{i}].nonResourceURLs"),
                        "",
                        "namespaced rules cannot apply to non-resource URLs",
                    ));
                }
                let resources = !strings(rule, "resources").is_empty();
                if non_resource && resources {
                    out.push(Cause::invalid(
                        format!("rules[{i}].nonResourceURLs"),
                        "",
                        "rules cannot apply to both regular resources and non-resource URLs",
                    ));
                }
                if !non_resource && !resources {
                    out.push(Cause::required(format!("rules[{i}].resources")));
                }
                if resources && rule.get("apiGroups").and_then(Value::as_array).is_none() {
                    out.push(Cause::required(format!("rules[{i}].apiGroups")));
                }
            }
        }
        Kind::RoleBinding | Kind::ClusterRoleBinding => {
            let role_kind = obj.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or_default();
            let allowed: &[&str] = if kind == Kind::RoleBinding { &["Role", "ClusterRole"] } else { &["ClusterRole"] };
            if !allowed.contains(&role_kind) {
                out.push(Cause::invalid("roleRef.kind", role_kind, &format!("supported values: {allowed:?}")));
            }
            if obj.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or_default().is_empty() {
                out.push(Cause::required("roleRef.name"));
            }
            let subjects = obj.get("subjects").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            for (i, subject) in subjects.iter().enumerate() {
                let sk = subject.get("kind").and_then(Value::as_str).unwrap_or_default();
                if !["User", "Group", "ServiceAccount"].contains(&sk) {
                    out.push(Cause::invalid(
                        format!("subjects[{i}].kind"),
                        sk,
                        "supported values: \"ServiceAccount\", \"User\", \"Group\"",
                    ));
                }
                if subject.get("name").and_then(Value::as_str).unwrap_or_default().is_empty() {
                    out.push(Cause::required(format!("subjects[{i}].name")));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn causes(kind: Kind, obj: Value) -> Vec<String> {
        let mut out = Vec::new();
        validate_rbac(kind, &obj, &mut out);
        out.into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn rules_and_bindings_are_checked() {
        let ok = json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
        assert!(causes(Kind::Role, ok).is_empty());
        let bad = json!({"rules": [{"resources": ["pods"]}, {"nonResourceURLs": ["/x"], "verbs": ["get"]}]});
        assert_eq!(causes(Kind::Role, bad), vec!["rules[0].verbs", "rules[0].apiGroups", "rules[1].nonResourceURLs"]);
        let crb = json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "Robot", "name": "x"}]});
        assert_eq!(causes(Kind::ClusterRoleBinding, crb), vec!["roleRef.kind", "subjects[0].kind"]);
        let rb = json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "u"}]});
        assert!(causes(Kind::RoleBinding, rb).is_empty());
    }
}
