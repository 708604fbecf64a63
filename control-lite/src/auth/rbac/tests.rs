use serde_json::{json, Value};

use super::*;
use crate::auth::attributes::ResourceAttrs;

fn key(plural: &str, ns: &str, name: &str) -> String {
    if ns.is_empty() {
        format!("{STORE_PREFIX}{plural}/{name}")
    } else {
        format!("{STORE_PREFIX}{plural}/{ns}/{name}")
    }
}

fn objects() -> Vec<(String, Value)> {
    vec![
        (
            key("roles", "team", "pod-reader"),
            json!({"metadata": {"name": "pod-reader", "namespace": "team"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
        ),
        (
            key("rolebindings", "team", "read-pods"),
            json!({"metadata": {"name": "read-pods", "namespace": "team"},
                "roleRef": {"kind": "Role", "name": "pod-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "bot"}, {"kind": "User", "name": "alice"}]}),
        ),
        (
            key("clusterroles", "", "view"),
            json!({"metadata": {"name": "view"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "view"}}]},
                "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}]}),
        ),
        (
            key("clusterroles", "", "view-extra"),
            json!({"metadata": {"name": "view-extra", "labels": {"agg": "view"}},
                "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}]}),
        ),
        (
            key("clusterrolebindings", "", "viewers"),
            json!({"metadata": {"name": "viewers"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "Group", "name": "viewers"}]}),
        ),
        (
            key("rolebindings", "other", "view-in-other"),
            json!({"metadata": {"name": "view-in-other", "namespace": "other"},
                "roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [{"kind": "User", "name": "bob"}]}),
        ),
    ]
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo { name: name.into(), uid: String::new(), groups: groups.iter().map(|g| g.to_string()).collect() }
}

fn req(verb: &str, group: &str, resource: &str, ns: &str) -> Request {
    Request::Resource(ResourceAttrs::new(verb, group, resource, ns, ""))
}

#[test]
fn bindings_grant_their_roles_rules_in_their_scope() {
    let objs = objects();
    let snap = RbacSnapshot::build(objs.iter().map(|(k, v)| (k.as_str(), v)));
    let cases = [
        (user("alice", &[]), req("list", "", "pods", "team"), true),
        (user("alice", &[]), req("list", "", "pods", "other"), false),
        (user("alice", &[]), req("list", "", "pods", ""), false),
        (user("alice", &[]), req("create", "", "pods", "team"), false),
        (user("system:serviceaccount:team:bot", &[]), req("get", "", "pods", "team"), true),
        (user("system:serviceaccount:other:bot", &[]), req("get", "", "pods", "team"), false),
        (user("carol", &["viewers"]), req("get", "", "services", ""), true),
        (user("carol", &["viewers"]), req("list", "apps", "deployments", "x"), true),
        (user("carol", &[]), req("get", "", "services", ""), false),
        (user("bob", &[]), req("list", "apps", "deployments", "other"), true),
        (user("bob", &[]), req("list", "apps", "deployments", "team"), false),
    ];
    for (u, r, want) in cases {
        assert_eq!(snap.allows(&u, &r).is_some(), want, "{u:?} {r:?}");
    }
    let reason = snap.allows(&user("alice", &[]), &req("get", "", "pods", "team")).unwrap_or_default();
    assert_eq!(reason, r#"RBAC: allowed by RoleBinding "read-pods" of Role "pod-reader" to "alice""#);
    assert_eq!(snap.rules_for(&user("carol", &["viewers"]), "x").len(), 2);
}

#[test]
fn aggregation_selectors_need_labels() {
    let s = json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]});
    assert!(selector::matches(&s, &json!({"a": "1"})));
    assert!(!selector::matches(&s, &json!({"a": "2"})));
    assert!(!selector::matches(&json!({}), &json!({"a": "1"})));
}
