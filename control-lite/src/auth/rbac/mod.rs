//! The RBAC authorizer over a snapshot of Roles, ClusterRoles, RoleBindings
//! and ClusterRoleBindings.
//!
//! [`RbacSnapshot::build`] indexes bindings by subject (users, groups, and
//! ServiceAccounts as their user names) and resolves ClusterRole
//! aggregation once, so a decision costs only the rules of the bindings
//! that name the user or one of its groups. The snapshot is rebuilt when an
//! RBAC object changes (rare), never per request.

pub mod covers;
pub mod rule;
mod selector;

use std::collections::HashMap;

use serde_json::Value;

pub use rule::PolicyRule;

use super::attributes::Request;
use super::user::UserInfo;

/// The store's group segment of the RBAC kinds (`/registry/<group>/<plural>/...`).
pub const STORE_PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

/// What a binding grants: a Role of its namespace or a ClusterRole.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RoleRef {
    Role(String),
    ClusterRole(String),
}

#[derive(Debug, Clone)]
struct Binding {
    /// `RoleBinding` or `ClusterRoleBinding` (for reasons).
    kind: &'static str,
    name: String,
    /// The RoleBinding's namespace; `None` for a ClusterRoleBinding.
    namespace: Option<String>,
    role: RoleRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    User(String),
    Group(String),
}

/// An indexed, immutable view of the RBAC objects.
#[derive(Debug, Default)]
pub struct RbacSnapshot {
    roles: HashMap<(String, String), Vec<PolicyRule>>,
    cluster_roles: HashMap<String, Vec<PolicyRule>>,
    bindings: Vec<Binding>,
    by_subject: HashMap<Subject, Vec<usize>>,
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn rules_of(v: &Value) -> Vec<PolicyRule> {
    v.get("rules").and_then(Value::as_array).into_iter().flatten().map(PolicyRule::from_json).collect()
}

impl RbacSnapshot {
    /// Indexes the stored RBAC objects (store key and JSON value).
    pub fn build<'a>(objects: impl IntoIterator<Item = (&'a str, &'a Value)>) -> RbacSnapshot {
        let mut snap = RbacSnapshot::default();
        let mut aggregated: Vec<(String, Value)> = Vec::new();
        let mut labels: Vec<(String, Value)> = Vec::new();
        for (key, obj) in objects {
            let plural = key.strip_prefix(STORE_PREFIX).and_then(|rest| rest.split('/').next()).unwrap_or_default();
            let (ns, name) =
                (str_at(obj, "/metadata/namespace").to_string(), str_at(obj, "/metadata/name").to_string());
            match plural {
                "roles" => {
                    snap.roles.insert((ns, name), rules_of(obj));
                }
                "clusterroles" => {
                    if let Some(rule) = obj.get("aggregationRule").filter(|r| !r.is_null()) {
                        aggregated.push((name.clone(), rule.clone()));
                    }
                    labels.push((name.clone(), obj.pointer("/metadata/labels").cloned().unwrap_or(Value::Null)));
                    snap.cluster_roles.insert(name, rules_of(obj));
                }
                "rolebindings" | "clusterrolebindings" => snap.add_binding(plural == "rolebindings", ns, name, obj),
                _ => {}
            }
        }
        // Aggregation: a ClusterRole with `aggregationRule` also holds the
        // rules of every ClusterRole its selectors match.
        for (name, rule) in aggregated {
            let selectors = rule.get("clusterRoleSelectors").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut extra = Vec::new();
            for (other, other_labels) in &labels {
                if *other != name && selectors.iter().any(|s| selector::matches(s, other_labels)) {
                    extra.extend(snap.cluster_roles.get(other).cloned().unwrap_or_default());
                }
            }
            if let Some(rules) = snap.cluster_roles.get_mut(&name) {
                rules.extend(extra);
            }
        }
        snap
    }

    fn add_binding(&mut self, namespaced: bool, ns: String, name: String, obj: &Value) {
        let role_name = str_at(obj, "/roleRef/name").to_string();
        let role = match str_at(obj, "/roleRef/kind") {
            "Role" if namespaced => RoleRef::Role(role_name),
            "ClusterRole" => RoleRef::ClusterRole(role_name),
            _ => return,
        };
        let index = self.bindings.len();
        let kind = if namespaced { "RoleBinding" } else { "ClusterRoleBinding" };
        self.bindings.push(Binding { kind, name, namespace: namespaced.then(|| ns.clone()), role });
        for subject in obj.get("subjects").and_then(Value::as_array).into_iter().flatten() {
            let subject_name = str_at(subject, "/name").to_string();
            let key = match str_at(subject, "/kind") {
                "User" => Subject::User(subject_name),
                "Group" => Subject::Group(subject_name),
                "ServiceAccount" => {
                    let sa_ns = match str_at(subject, "/namespace") {
                        "" => ns.as_str(),
                        other => other,
                    };
                    Subject::User(format!("system:serviceaccount:{sa_ns}:{subject_name}"))
                }
                _ => continue,
            };
            self.by_subject.entry(key).or_default().push(index);
        }
    }

    /// The bindings naming `user` or one of its groups, that apply in `namespace` (`""`: cluster scope).
    fn bindings_of<'a>(&'a self, user: &'a UserInfo, namespace: &'a str) -> impl Iterator<Item = &'a Binding> + 'a {
        let subjects = std::iter::once(Subject::User(user.name.clone()))
            .chain(user.groups.iter().map(|g| Subject::Group(g.clone())));
        subjects
            .filter_map(|s| self.by_subject.get(&s))
            .flatten()
            .filter_map(|&i| self.bindings.get(i))
            .filter(move |b| b.namespace.as_deref().is_none_or(|ns| ns == namespace))
    }

    fn rules(&self, binding: &Binding) -> &[PolicyRule] {
        let rules = match (&binding.role, &binding.namespace) {
            (RoleRef::Role(name), Some(ns)) => self.roles.get(&(ns.clone(), name.clone())),
            (RoleRef::ClusterRole(name), _) => self.cluster_roles.get(name),
            (RoleRef::Role(_), None) => None,
        };
        rules.map(Vec::as_slice).unwrap_or_default()
    }

    /// `Some(reason)` if a binding of `user` allows `request`.
    pub fn allows(&self, user: &UserInfo, request: &Request) -> Option<String> {
        let namespace = match request {
            Request::Resource(r) => r.namespace.as_str(),
            Request::NonResource { .. } => "",
        };
        self.bindings_of(user, namespace).find(|b| self.rules(b).iter().any(|r| r.allows(request))).map(|b| {
            let (role_kind, role) = match &b.role {
                RoleRef::Role(n) => ("Role", n),
                RoleRef::ClusterRole(n) => ("ClusterRole", n),
            };
            format!("RBAC: allowed by {} {:?} of {role_kind} {role:?} to {:?}", b.kind, b.name, user.name)
        })
    }

    /// The rules of Role `name` in `namespace` (`cluster_role`: of ClusterRole
    /// `name`, aggregation included); `None` if there is no such role.
    pub fn role_rules(&self, cluster_role: bool, namespace: &str, name: &str) -> Option<Vec<PolicyRule>> {
        if cluster_role {
            self.cluster_roles.get(name).cloned()
        } else {
            self.roles.get(&(namespace.to_string(), name.to_string())).cloned()
        }
    }

    /// Every rule granted to `user` in `namespace` (cluster-wide grants included).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        self.bindings_of(user, namespace).flat_map(|b| self.rules(b).iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests;
