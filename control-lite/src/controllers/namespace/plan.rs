//! Pure decisions of the namespace controller: what to do with a namespace
//! given what is left in it.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};

/// The finalizer this controller owns (as upstream).
pub const FINALIZER: &str = "kubernetes";

/// Check again this soon while objects other than pods remain (a deletion
/// that raced, or objects held by their own finalizers).
pub const RECHECK_CONTENT: Duration = Duration::from_secs(1);
/// Check again this soon while only pods remain: their kubelets are
/// finishing them (graceful deletion); a pod on a node without a kubelet
/// waits as upstream does.
pub const RECHECK_PODS: Duration = Duration::from_secs(2);

/// How many objects of one resource are left in the namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Remaining {
    /// API group ("" for core).
    pub group: String,
    /// Plural resource name.
    pub plural: String,
    /// Objects still stored (marked for deletion or not).
    pub count: usize,
    /// Finalizers those objects still carry, with how many objects carry each.
    pub finalizers: BTreeMap<String, usize>,
}

impl Remaining {
    /// `plural.group` as upstream prints it (`pods.` for the core group).
    pub fn name(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }

    fn is_pods(&self) -> bool {
        self.group.is_empty() && self.plural == "pods"
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Not terminating, or our finalizer is gone already.
    Skip,
    /// Delete every object of every namespaced resource, then count again.
    DeleteContent,
    /// Nothing is left: write these `spec.finalizers` (ours removed).
    Finalize(Vec<String>),
    /// Objects remain: check again after the delay.
    Wait { after: Duration, remaining: Vec<Remaining> },
}

/// Decides for `ns`; `left` is None before this pass deleted anything, and
/// the per-resource counts afterwards.
pub fn plan(ns: &Namespace, left: Option<&[Remaining]>) -> Action {
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.clone()).unwrap_or_default();
    if ns.metadata.deletion_timestamp.is_none() || !finalizers.iter().any(|f| f == FINALIZER) {
        return Action::Skip;
    }
    let Some(left) = left else {
        return Action::DeleteContent;
    };
    let remaining: Vec<Remaining> = left.iter().filter(|r| r.count > 0).cloned().collect();
    if remaining.is_empty() {
        return Action::Finalize(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
    }
    let only_pods = remaining.iter().all(Remaining::is_pods);
    Action::Wait { after: if only_pods { RECHECK_PODS } else { RECHECK_CONTENT }, remaining }
}

/// What one pass saw, for the namespace's status conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Discovery failed (the message), so content may have been missed.
    pub discovery_error: Option<String>,
    /// Resources whose deletion failed, with the error.
    pub delete_errors: Vec<(String, String)>,
    /// What is left.
    pub left: Vec<Remaining>,
}

fn condition(type_: &str, status: bool, reason: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: None,
    }
}

/// Upstream's deletion conditions for what a pass observed. Transition
/// times are kept from `current` when a condition's status did not change
/// and set to `now` otherwise.
pub fn conditions(
    observed: &Observed,
    current: &[NamespaceCondition],
    now: jiff::Timestamp,
) -> Vec<NamespaceCondition> {
    let discovery = match &observed.discovery_error {
        Some(e) => {
            condition("NamespaceDeletionDiscoveryFailure", true, "DiscoveryFailed", format!("Discovery failed: {e}"))
        }
        None => condition(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
    };
    let parsing = condition(
        "NamespaceDeletionGroupVersionParsingFailure",
        false,
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed".into(),
    );
    let content = if observed.delete_errors.is_empty() {
        condition(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        )
    } else {
        let errors: Vec<String> = observed.delete_errors.iter().map(|(r, e)| format!("{r}: {e}")).collect();
        let message = format!("Failed to delete all resource types, {} remaining: {}", errors.len(), errors.join(", "));
        condition("NamespaceDeletionContentFailure", true, "ContentDeletionFailed", message)
    };
    let left: Vec<String> = observed
        .left
        .iter()
        .filter(|r| r.count > 0)
        .map(|r| format!("{} has {} resource instances", r.name(), r.count))
        .collect();
    let remaining = if left.is_empty() {
        condition("NamespaceContentRemaining", false, "ContentRemoved", "All content successfully removed".into())
    } else {
        let message = format!("Some resources are remaining: {}", left.join(", "));
        condition("NamespaceContentRemaining", true, "SomeResourcesRemain", message)
    };
    let mut held: BTreeMap<&str, usize> = BTreeMap::new();
    for (finalizer, n) in observed.left.iter().flat_map(|r| r.finalizers.iter()) {
        let slot = held.entry(finalizer.as_str()).or_insert(0);
        *slot = slot.saturating_add(*n);
    }
    let finalizers = if held.is_empty() {
        condition(
            "NamespaceFinalizersRemaining",
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
        )
    } else {
        let list: Vec<String> = held.iter().map(|(f, n)| format!("{f} in {n} resource instances")).collect();
        let message = format!("Some content in the namespace has finalizers remaining: {}", list.join(", "));
        condition("NamespaceFinalizersRemaining", true, "SomeFinalizersRemain", message)
    };
    let mut out = vec![discovery, parsing, content, remaining, finalizers];
    for c in &mut out {
        let previous = current.iter().find(|p| p.type_ == c.type_ && p.status == c.status);
        let since = previous.and_then(|p| p.last_transition_time.clone());
        c.last_transition_time = Some(since.unwrap_or(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn ns(terminating: bool, finalizers: &[&str]) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("team".into()),
                deletion_timestamp: terminating.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            spec: Some(NamespaceSpec { finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()) }),
            ..Default::default()
        }
    }

    fn left(counts: &[(&str, usize)]) -> Vec<Remaining> {
        counts
            .iter()
            .map(|(r, c)| {
                let (plural, group) = r.split_once('.').unwrap_or((r, ""));
                Remaining { group: group.into(), plural: plural.into(), count: *c, ..Default::default() }
            })
            .collect()
    }

    #[test]
    fn plans_for_every_namespace_state() {
        let empty = left(&[("configmaps", 0), ("pods", 0), ("deployments.apps", 0)]);
        let pods = left(&[("configmaps", 0), ("pods", 2)]);
        let mixed = left(&[("configmaps", 3), ("pods", 1)]);
        let cases: Vec<(&str, Namespace, Option<&[Remaining]>, Action)> = vec![
            ("active namespace", ns(false, &["kubernetes"]), None, Action::Skip),
            ("active, counted", ns(false, &["kubernetes"]), Some(&empty), Action::Skip),
            ("already finalized", ns(true, &["other"]), None, Action::Skip),
            ("terminating, first pass", ns(true, &["kubernetes"]), None, Action::DeleteContent),
            ("terminating, empty", ns(true, &["kubernetes"]), Some(&empty), Action::Finalize(vec![])),
            (
                "other finalizers are kept",
                ns(true, &["a", "kubernetes", "b"]),
                Some(&empty),
                Action::Finalize(vec!["a".into(), "b".into()]),
            ),
            (
                "pods finishing",
                ns(true, &["kubernetes"]),
                Some(&pods),
                Action::Wait { after: RECHECK_PODS, remaining: left(&[("pods", 2)]) },
            ),
            (
                "content left",
                ns(true, &["kubernetes"]),
                Some(&mixed),
                Action::Wait { after: RECHECK_CONTENT, remaining: left(&[("configmaps", 3), ("pods", 1)]) },
            ),
        ];
        for (name, namespace, counts, want) in cases {
            assert_eq!(plan(&namespace, counts), want, "{name}");
        }
    }

    #[test]
    fn a_namespace_without_spec_is_not_ours() {
        let mut bare = ns(true, &[]);
        bare.spec = None;
        assert_eq!(plan(&bare, None), Action::Skip);
    }

    #[test]
    fn conditions_say_what_is_left_and_what_holds_it() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let mut left = left(&[("configmaps", 2), ("pods", 0), ("deployments.apps", 1)]);
        left[0].finalizers.insert("bosun.test/hold".into(), 1);
        let observed = Observed { left, ..Default::default() };
        let got = conditions(&observed, &[], now);
        let view: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.message.as_deref().unwrap_or_default()))
            .collect();
        assert_eq!(
            view,
            vec![
                ("NamespaceDeletionDiscoveryFailure", "False", "All resources successfully discovered"),
                ("NamespaceDeletionGroupVersionParsingFailure", "False", "All legacy kube types successfully parsed"),
                (
                    "NamespaceDeletionContentFailure",
                    "False",
                    "All content successfully deleted, may be waiting on finalization"
                ),
                (
                    "NamespaceContentRemaining",
                    "True",
                    "Some resources are remaining: configmaps. has 2 resource instances, deployments.apps has 1 resource instances"
                ),
                (
                    "NamespaceFinalizersRemaining",
                    "True",
                    "Some content in the namespace has finalizers remaining: bosun.test/hold in 1 resource instances"
                ),
            ]
        );
        // Unchanged statuses keep their transition time; changed ones move.
        let later = now + jiff::SignedDuration::from_secs(60);
        let failed = Observed {
            discovery_error: Some("apps/v1: timeout".into()),
            delete_errors: vec![("pods.".into(), "boom".into())],
            ..Default::default()
        };
        let next = conditions(&failed, &got, later);
        let time = |cs: &[NamespaceCondition], t: &str| {
            cs.iter().find(|c| c.type_ == t).and_then(|c| c.last_transition_time.clone()).map(|t| t.0)
        };
        assert_eq!(time(&next, "NamespaceDeletionGroupVersionParsingFailure"), Some(now));
        assert_eq!(time(&next, "NamespaceDeletionDiscoveryFailure"), Some(later));
        let content = next.iter().find(|c| c.type_ == "NamespaceDeletionContentFailure").cloned().unwrap_or_default();
        assert_eq!(content.status, "True");
        assert_eq!(content.message.as_deref(), Some("Failed to delete all resource types, 1 remaining: pods.: boom"));
        assert_eq!(
            next.iter().find(|c| c.type_ == "NamespaceContentRemaining").map(|c| c.status.as_str()),
            Some("False")
        );
    }
}
