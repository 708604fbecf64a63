//! Garbage-collection decisions from a snapshot of owners and dependents.
//! Pure; table-tested.
//!
//! Background propagation: a dependent whose owner references all point to
//! owners that are gone (by uid) is deleted. Minimal foreground/orphan
//! support: an owner being deleted with the `foregroundDeletion` finalizer
//! has its dependents deleted and loses the finalizer once none is left;
//! with `orphan`, dependents drop their reference and then the finalizer goes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::{HashMap, HashSet};

/// Finalizer asking to delete dependents before the owner.
pub const FOREGROUND: &str = "foregroundDeletion";
/// Finalizer asking to orphan dependents.
pub const ORPHAN: &str = "orphan";

/// An object as the collector sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Kind ("Pod", "ReplicaSet", ...).
    pub kind: String,
    /// Namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Owner references.
    pub owners: Vec<OwnerReference>,
    /// `deletionTimestamp` is set.
    pub deleting: bool,
    /// Finalizers.
    pub finalizers: Vec<String>,
}

impl Node {
    /// Collector view of an object of `kind` with `meta`.
    pub fn of(kind: &str, meta: &ObjectMeta) -> Self {
        Node {
            kind: kind.to_string(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            owners: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        }
    }

    fn has_finalizer(&self, name: &str) -> bool {
        self.finalizers.iter().any(|f| f == name)
    }
}

/// One thing the collector does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Delete the dependent. `verify` lists owner references that looked
    /// absent in the caches and must be confirmed gone first.
    Delete {
        /// The dependent.
        object: Node,
        /// Owners to confirm absent.
        verify: Vec<OwnerReference>,
    },
    /// Remove the owner references with these uids from the dependent.
    RemoveOwners {
        /// The dependent.
        object: Node,
        /// UIDs to drop.
        uids: Vec<String>,
        /// Owner references that looked absent and must be confirmed gone.
        verify: Vec<OwnerReference>,
    },
    /// Remove `finalizer` from the owner.
    RemoveFinalizer {
        /// The owner.
        object: Node,
        /// Finalizer to remove.
        finalizer: &'static str,
    },
}

/// A kind with its API group, as upstream prints a GroupKind: `Pod`,
/// `ReplicaSet.apps`. A custom resource may reuse a built-in kind's name in
/// its own group, so owners are told apart by both.
pub fn group_kind(api_version: &str, kind: &str) -> String {
    match api_version.split_once('/') {
        Some((group, _)) if !group.is_empty() => format!("{kind}.{group}"),
        _ => kind.to_string(),
    }
}

/// Decides what to collect. `owner_kinds` are the [`group_kind`]s whose
/// complete list is in `objects` (a reference to another kind is never
/// dangling).
pub fn plan(objects: &[Node], owner_kinds: &HashSet<&str>) -> Vec<Action> {
    let by_uid: HashMap<&str, &Node> = objects.iter().map(|o| (o.uid.as_str(), o)).collect();
    let mut referenced: HashSet<&str> = HashSet::new();
    let mut actions = Vec::new();
    for object in objects.iter().filter(|o| !o.owners.is_empty()) {
        let mut dangling = Vec::new();
        let mut doomed = 0;
        let mut orphaned = Vec::new();
        for reference in &object.owners {
            referenced.insert(reference.uid.as_str());
            match by_uid.get(reference.uid.as_str()) {
                None if owner_kinds.contains(group_kind(&reference.api_version, &reference.kind).as_str()) => {
                    dangling.push(reference.clone());
                }
                None => {}
                Some(owner) if owner.deleting && owner.has_finalizer(FOREGROUND) => doomed += 1,
                Some(owner) if owner.deleting && owner.has_finalizer(ORPHAN) => {
                    orphaned.push(reference.uid.clone());
                }
                Some(_) => {}
            }
        }
        if dangling.len() + doomed == object.owners.len() {
            if !object.deleting {
                actions.push(Action::Delete { object: object.clone(), verify: dangling });
            }
        } else if !dangling.is_empty() || !orphaned.is_empty() {
            let mut uids = orphaned;
            uids.extend(dangling.iter().map(|r| r.uid.clone()));
            actions.push(Action::RemoveOwners { object: object.clone(), uids, verify: dangling });
        }
    }
    for owner in objects.iter().filter(|o| o.deleting) {
        if referenced.contains(owner.uid.as_str()) {
            continue;
        }
        for finalizer in [FOREGROUND, ORPHAN] {
            if owner.has_finalizer(finalizer) {
                actions.push(Action::RemoveFinalizer { object: owner.clone(), finalizer });
            }
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: &str, name: &str, owners: &[(&str, &str)]) -> Node {
        Node {
            kind: kind.to_string(),
            namespace: "default".to_string(),
            name: name.to_string(),
            uid: format!("{name}-uid"),
            owners: owners
                .iter()
                .map(|(kind, name)| OwnerReference {
                    api_version: "v1".to_string(),
                    kind: kind.to_string(),
                    name: name.to_string(),
                    uid: format!("{name}-uid"),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                })
                .collect(),
            deleting: false,
            finalizers: Vec::new(),
        }
    }

    fn deleting(mut node: Node, finalizer: &str) -> Node {
        node.deleting = true;
        node.finalizers = vec![finalizer.to_string()];
        node
    }

    /// Compact rendering: "delete pod-a", "unown pod-a [x-uid]", "finalize d".
    fn render(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Delete { object, .. } => format!("delete {}", object.name),
                Action::RemoveOwners { object, uids, .. } => {
                    format!("unown {} {uids:?}", object.name)
                }
                Action::RemoveFinalizer { object, finalizer } => {
                    format!("finalize {} {finalizer}", object.name)
                }
            })
            .collect()
    }

    #[test]
    fn collects_dependents_of_deleted_owners() {
        let kinds: HashSet<&str> = ["Deployment", "ReplicaSet", "Service"].into_iter().collect();
        let cases: Vec<(&str, Vec<Node>, Vec<&str>)> = vec![
            (
                "owner alive: nothing to do",
                vec![obj("ReplicaSet", "rs", &[("Deployment", "d")]), obj("Deployment", "d", &[])],
                vec![],
            ),
            (
                "owner gone: delete, and only the first level",
                vec![obj("ReplicaSet", "rs", &[("Deployment", "d")]), obj("Pod", "p", &[("ReplicaSet", "rs")])],
                vec!["delete rs"],
            ),
            (
                "one of two owners gone: drop that reference",
                vec![obj("Pod", "p", &[("ReplicaSet", "rs"), ("Service", "s")]), obj("Service", "s", &[])],
                vec!["unown p [\"rs-uid\"]"],
            ),
            ("unknown owner kinds are never dangling", vec![obj("Pod", "p", &[("StatefulSet", "ss")])], vec![]),
            (
                "already deleting dependents are left alone",
                vec![deleting(obj("Pod", "p", &[("ReplicaSet", "rs")]), "x")],
                vec![],
            ),
            (
                "foreground: delete dependents first",
                vec![deleting(obj("ReplicaSet", "rs", &[]), FOREGROUND), obj("Pod", "p", &[("ReplicaSet", "rs")])],
                vec!["delete p"],
            ),
            (
                "foreground: finalizer removed once dependents are gone",
                vec![deleting(obj("ReplicaSet", "rs", &[]), FOREGROUND)],
                vec!["finalize rs foregroundDeletion"],
            ),
            (
                "orphan: dependents drop the reference",
                vec![deleting(obj("ReplicaSet", "rs", &[]), ORPHAN), obj("Pod", "p", &[("ReplicaSet", "rs")])],
                vec!["unown p [\"rs-uid\"]"],
            ),
        ];
        for (name, objects, want) in cases {
            assert_eq!(render(&plan(&objects, &kinds)), want, "{name}");
        }
    }

    #[test]
    fn an_owner_of_another_group_with_a_built_in_kind_name_is_never_dangling() {
        let kinds: HashSet<&str> = ["Job.batch", "ReplicaSet.apps"].into_iter().collect();
        let mut pod = obj("Pod", "p", &[("Job", "j")]);
        pod.owners[0].api_version = "batch.volcano.sh/v1alpha1".into();
        assert_eq!(render(&plan(std::slice::from_ref(&pod), &kinds)), Vec::<String>::new());
        pod.owners[0].api_version = "batch/v1".into();
        assert_eq!(render(&plan(&[pod], &kinds)), ["delete p"]);
        assert_eq!(group_kind("v1", "Pod"), "Pod");
        assert_eq!(group_kind("apps/v1", "ReplicaSet"), "ReplicaSet.apps");
    }

    #[test]
    fn deletes_carry_the_owners_to_verify() {
        let kinds: HashSet<&str> = ["ReplicaSet"].into_iter().collect();
        let actions = plan(&[obj("Pod", "p", &[("ReplicaSet", "rs")])], &kinds);
        let Some(Action::Delete { verify, .. }) = actions.first() else {
            panic!("expected a delete, got {actions:?}");
        };
        assert_eq!(verify.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["rs"]);
    }
}
