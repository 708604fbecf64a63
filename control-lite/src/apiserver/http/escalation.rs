//! RBAC escalation prevention on writes of Roles, ClusterRoles and their
//! bindings (upstream's RBAC registry): a user may only grant what it holds.
//!
//! - A Role or ClusterRole is written only if the writer holds every
//!   permission of its rules (in the Role's namespace; cluster-wide for a
//!   ClusterRole), or may `escalate` it. An `aggregationRule` can gather
//!   anything, so it needs full authority (`*` on everything), as upstream.
//! - A binding is written only if the writer holds every permission of the
//!   role it references (in the RoleBinding's namespace), or may `bind` that
//!   role.
//! - `system:masters` (admins, the apiserver's own loopback clients)
//!   bypass both; bootstrap roles never pass this pipeline.
//!
//! An update that changes only what the garbage collector changes
//! (owner references, finalizers) is not checked.

use serde_json::Value;

use crate::apiserver::registry::{Kind, ResourceInfo};
use crate::apiserver::status::{ApiError, Result};
use crate::apiserver::ApiState;
use crate::auth::attributes::{Request, ResourceAttrs};
use crate::auth::authorize::masters;
use crate::auth::rbac::covers::{covers, escalation_message};
use crate::auth::rbac::PolicyRule;
use crate::auth::user::UserInfo;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Metadata that carries no grant and is ignored when deciding whether an update needs the check.
const UNCHECKED_METADATA: [&str; 7] =
    ["ownerReferences", "finalizers", "resourceVersion", "managedFields", "generation", "uid", "creationTimestamp"];

/// Whether `next` differs from `current` only in what the garbage collector
/// changes (or what the server sets): such an update grants nothing new (pure).
pub fn only_gc_fields(current: &Value, next: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for key in UNCHECKED_METADATA {
                meta.remove(key);
            }
        }
        v
    };
    strip(current) == strip(next)
}

fn forbidden(info: &ResourceInfo, name: &str, reason: &str) -> ApiError {
    ApiError::Forbidden(format!("{}.{} {name:?} is forbidden: {reason}", info.plural, info.group))
}

fn may(state: &ApiState, user: &UserInfo, verb: &str, resource: &str, namespace: &str, name: &str) -> bool {
    let request = Request::Resource(ResourceAttrs::new(verb, RBAC_GROUP, resource, namespace, name));
    state.authz.authorize(user, &request).allowed()
}

fn full_authority() -> Vec<PolicyRule> {
    let all = || vec!["*".to_string()];
    vec![
        PolicyRule { verbs: all(), api_groups: all(), resources: all(), ..Default::default() },
        PolicyRule { verbs: all(), non_resource_urls: all(), ..Default::default() },
    ]
}

/// Checks a write by `user` of `obj` (the object as it will be stored) of
/// kind `info` in `namespace` (`""` for cluster scope); other kinds pass.
pub fn admit(state: &ApiState, user: &UserInfo, info: &ResourceInfo, namespace: &str, obj: &Value) -> Result<()> {
    if !matches!(info.kind, Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding)
        || masters(user).is_some()
    {
        return Ok(());
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let held_in = |ns: &str| state.authz.rules_for(user, ns);
    let refuse = |missing| forbidden(info, name, &escalation_message(&user.name, &user.groups, &missing));
    match info.kind {
        Kind::Role | Kind::ClusterRole => {
            if may(state, user, "escalate", info.plural, namespace, name) {
                return Ok(());
            }
            let held = held_in(namespace);
            if obj.get("aggregationRule").is_some_and(|r| !r.is_null()) && covers(&held, &full_authority()).is_err() {
                return Err(forbidden(info, name, "must have cluster-admin privileges to use the aggregationRule"));
            }
            let rules: Vec<PolicyRule> =
                obj.get("rules").and_then(Value::as_array).into_iter().flatten().map(PolicyRule::from_json).collect();
            covers(&held, &rules).map_err(refuse)
        }
        _ => {
            let role = obj.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or_default();
            let cluster_role = obj.pointer("/roleRef/kind").and_then(Value::as_str) == Some("ClusterRole");
            let plural = if cluster_role { "clusterroles" } else { "roles" };
            if may(state, user, "bind", plural, namespace, role) {
                return Ok(());
            }
            let rules = state.authz.role_rules(cluster_role, namespace, role).ok_or_else(|| ApiError::NotFound {
                resource: format!("{plural}.{RBAC_GROUP}"),
                group: RBAC_GROUP.into(),
                kind: plural.into(),
                name: role.into(),
            })?;
            covers(&held_in(namespace), &rules).map_err(refuse)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn garbage_collector_updates_are_not_checked() {
        let role = json!({"metadata": {"name": "r", "resourceVersion": "1"}, "rules": []});
        let owned = json!({"metadata": {"name": "r", "resourceVersion": "2", "finalizers": ["f"],
            "ownerReferences": [{"uid": "u"}]}, "rules": []});
        let labelled = json!({"metadata": {"name": "r", "labels": {"a": "b"}}, "rules": []});
        let granting = json!({"metadata": {"name": "r"}, "rules": [{"verbs": ["get"]}]});
        assert!(only_gc_fields(&role, &owned));
        assert!(!only_gc_fields(&role, &labelled));
        assert!(!only_gc_fields(&role, &granting));
    }
}
