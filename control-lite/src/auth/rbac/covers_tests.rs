use serde_json::{json, Value};

use super::*;

fn rule(v: Value) -> PolicyRule {
    PolicyRule::from_json(&v)
}

fn rules(v: Value) -> Vec<PolicyRule> {
    v.as_array().into_iter().flatten().map(PolicyRule::from_json).collect()
}

#[test]
fn coverage_follows_upstream_rule_by_rule() {
    let cases = [
        // (held, requested, covered)
        (
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]),
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            true,
        ),
        (
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete"]}]),
            false,
        ),
        (
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]),
            false,
        ),
        (
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
            json!([{"apiGroups": ["apps", ""], "resources": ["*", "pods/log"], "verbs": ["*"], "resourceNames": ["a"]}]),
            true,
        ),
        (
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            json!([{"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["get"]}]),
            false,
        ),
        // Split across two held rules: each broken-down rule needs one.
        (
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]),
            json!([{"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get"]}]),
            true,
        ),
        // Subresources: exact, `*/sub`, and not the parent.
        (
            json!([{"apiGroups": [""], "resources": ["*/status"], "verbs": ["get"]}]),
            json!([{"apiGroups": [""], "resources": ["pods/status"], "verbs": ["get"]}]),
            true,
        ),
        (
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            json!([{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]),
            false,
        ),
        (
            json!([{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]),
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            false,
        ),
        (
            json!([{"apiGroups": [""], "resources": ["*/status"], "verbs": ["get"]}]),
            json!([{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}]),
            false,
        ),
        // Resource names: unnamed held covers named; named held only its names.
        (
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]),
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a", "b"]}]),
            true,
        ),
        (
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a"]}]),
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a"]}]),
            true,
        ),
        (
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a"]}]),
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a", "b"]}]),
            false,
        ),
        (
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a"]}]),
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]),
            false,
        ),
        // Non-resource URLs: exact, `*`, trailing-`*` prefix.
        (
            json!([{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]),
            json!([{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]),
            true,
        ),
        (
            json!([{"nonResourceURLs": ["/api*"], "verbs": ["get"]}]),
            json!([{"nonResourceURLs": ["/api/v1", "/apis/*"], "verbs": ["get"]}]),
            true,
        ),
        (
            json!([{"nonResourceURLs": ["/api/*"], "verbs": ["get"]}]),
            json!([{"nonResourceURLs": ["/apis"], "verbs": ["get"]}]),
            false,
        ),
        (
            json!([{"nonResourceURLs": ["*"], "verbs": ["*"]}]),
            json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get", "post"]}]),
            true,
        ),
        (
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
            json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]),
            false,
        ),
        (
            json!([{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]),
            json!([{"nonResourceURLs": ["/healthz"], "verbs": ["post"]}]),
            false,
        ),
        // Nothing requested is always covered; nothing held covers nothing.
        (json!([]), json!([]), true),
        (json!([]), json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]), false),
    ];
    for (held, requested, want) in cases {
        assert_eq!(covers(&rules(held.clone()), &rules(requested.clone())).is_ok(), want, "{held} covers {requested}");
    }
}

#[test]
fn missing_permissions_are_compacted_per_group_and_resource() {
    let held = rules(json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]));
    let requested = rules(json!([
        {"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a"]},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]));
    let want = vec![
        rule(json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]})),
        rule(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]})),
        rule(json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["a"]})),
        rule(json!({"nonResourceURLs": ["/metrics"], "verbs": ["get"]})),
    ];
    assert_eq!(covers(&held, &requested), Err(NotCovered::Missing(want)));
}

#[test]
fn the_refusal_reads_as_upstream() {
    let missing = NotCovered::Missing(rules(json!([
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"], "resourceNames": ["a"]},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])));
    let groups = vec!["dev".to_string(), "system:authenticated".to_string()];
    assert_eq!(
        escalation_message("u", &groups, &missing),
        "user \"u\" (groups=[\"dev\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n\
         {APIGroups:[\"\"], Resources:[\"configmaps\"], ResourceNames:[\"a\"], Verbs:[\"get\" \"list\"]}\n\
         {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}\n\
         {NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}"
    );
}

#[test]
fn huge_grants_are_refused_unchecked() {
    let many = |n: usize| (0..n).map(|i| format!("x{i}")).collect::<Vec<_>>();
    let big = PolicyRule { verbs: many(100), api_groups: many(100), resources: many(100), ..Default::default() };
    let all = rule(json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}));
    assert_eq!(covers(&[all], &[big]), Err(NotCovered::TooLarge));
}
