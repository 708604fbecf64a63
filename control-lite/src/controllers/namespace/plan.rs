//! Pure decisions of the namespace controller: what to do with a namespace
//! given what is left in it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remaining {
    /// `plural` or `plural.group`.
    pub resource: String,
    /// Objects still stored (marked for deletion or not).
    pub count: usize,
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
    let only_pods = remaining.iter().all(|r| r.resource == "pods");
    Action::Wait { after: if only_pods { RECHECK_PODS } else { RECHECK_CONTENT }, remaining }
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
        counts.iter().map(|(r, c)| Remaining { resource: r.to_string(), count: *c }).collect()
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
}
