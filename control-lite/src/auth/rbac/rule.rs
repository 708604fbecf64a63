//! One RBAC `PolicyRule` and whether it covers a request (upstream's
//! `RuleAllows`): `*` matches any verb, group, resource or URL; `pods/log`
//! names a subresource and `*/status` a subresource of any resource;
//! `resourceNames` limits a rule to named objects; a non-resource URL ending
//! in `*` is a prefix.

use serde_json::Value;

use crate::auth::attributes::{Request, ResourceAttrs};

const ALL: &str = "*";

/// An RBAC rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyRule {
    /// Verbs, `*` for all.
    pub verbs: Vec<String>,
    /// API groups, `*` for all.
    pub api_groups: Vec<String>,
    /// Resources (`pods`, `pods/log`, `*/status`, `*`).
    pub resources: Vec<String>,
    /// Object names (empty: any).
    pub resource_names: Vec<String>,
    /// Non-resource URLs (`/healthz`, `/api/*`, `*`).
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(String::from).collect()
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == ALL || x == want)
}

impl PolicyRule {
    /// A rule from its JSON form.
    pub fn from_json(v: &Value) -> PolicyRule {
        PolicyRule {
            verbs: strings(v, "verbs"),
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    /// The rule's JSON form (as `SelfSubjectRulesReview` reports it).
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::json!({"verbs": self.verbs});
        for (key, list) in [
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !list.is_empty() {
                out[key] = serde_json::json!(list);
            }
        }
        out
    }

    /// Whether the rule covers `request`.
    pub fn allows(&self, request: &Request) -> bool {
        match request {
            Request::Resource(r) => self.allows_resource(r),
            Request::NonResource { verb, path } => {
                has(&self.verbs, verb)
                    && self.non_resource_urls.iter().any(|url| {
                        url == ALL
                            || url == path
                            || url.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix))
                    })
            }
        }
    }

    fn allows_resource(&self, r: &ResourceAttrs) -> bool {
        has(&self.verbs, &r.verb)
            && has(&self.api_groups, &r.group)
            && self.resources.iter().any(|res| resource_matches(res, r))
            && (self.resource_names.is_empty() || (!r.name.is_empty() && self.resource_names.contains(&r.name)))
    }
}

fn resource_matches(rule: &str, r: &ResourceAttrs) -> bool {
    if rule == ALL || rule == r.resource_path() {
        return true;
    }
    !r.subresource.is_empty() && rule.strip_prefix("*/").is_some_and(|sub| sub == r.subresource)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(v: Value) -> PolicyRule {
        PolicyRule::from_json(&v)
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Request {
        Request::Resource(ResourceAttrs::new(verb, group, resource, "ns", name).on_subresource(sub))
    }

    #[test]
    fn rules_match_verbs_groups_resources_names_and_urls() {
        let pods = rule(json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}));
        let logs = rule(json!({"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}));
        let status = rule(json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]}));
        let named =
            rule(json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"], "verbs": ["get"]}));
        let all = rule(json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}));
        let health = rule(json!({"nonResourceURLs": ["/healthz", "/api/*"], "verbs": ["get"]}));
        let cases = [
            (&pods, res("get", "", "pods", "", "p"), true),
            (&pods, res("list", "", "pods", "", ""), true),
            (&pods, res("create", "", "pods", "", ""), false),
            (&pods, res("get", "apps", "pods", "", "p"), false),
            (&pods, res("get", "", "pods", "log", "p"), false),
            (&logs, res("get", "", "pods", "log", "p"), true),
            (&logs, res("get", "", "pods", "", "p"), false),
            (&status, res("patch", "apps", "deployments", "status", "d"), true),
            (&status, res("patch", "apps", "deployments", "", "d"), false),
            (&named, res("get", "", "configmaps", "", "a"), true),
            (&named, res("get", "", "configmaps", "", "b"), false),
            (&named, res("get", "", "configmaps", "", ""), false),
            (&all, res("delete", "rbac.authorization.k8s.io", "roles", "", "r"), true),
            (&all, res("get", "", "pods", "exec", "p"), true),
            (&all, Request::get_path("/healthz"), false),
            (&health, Request::get_path("/healthz"), true),
            (&health, Request::get_path("/api/v1"), true),
            (&health, Request::get_path("/apis"), false),
            (&health, Request::NonResource { verb: "post".into(), path: "/healthz".into() }, false),
        ];
        for (rule, request, want) in cases {
            assert_eq!(rule.allows(&request), want, "{rule:?} {request:?}");
        }
    }
}
