//! ControllerRevisions: the template history of DaemonSets and
//! StatefulSets, as upstream keeps it, so `kubectl rollout history` and
//! `kubectl rollout undo` work.
//!
//! A revision is named `<owner>-<hash>`, labelled with the template's labels
//! (kubectl finds revisions with the owner's selector) and
//! `controller-revision-hash`, controlled by its owner, and holds
//! `{"spec": {"template": {..., "$patch": "replace"}}}`: the strategic merge
//! patch `kubectl rollout undo` sends back. The current template's revision
//! has the highest number (an older one that becomes current again, after an
//! undo, is renumbered); beyond `revisionHistoryLimit` the oldest revisions
//! no pod uses are deleted. Pure; table-tested.

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;

use super::queue::ObjectKey;
use super::{is_conflict, is_not_found, selector};

/// Label with the template hash.
pub const HASH_LABEL: &str = "controller-revision-hash";

/// Who the history belongs to.
pub struct Owner<'a> {
    /// `DaemonSet` or `StatefulSet`.
    pub kind: &'static str,
    /// The owner's metadata (name, namespace, uid, annotations).
    pub meta: &'a ObjectMeta,
    /// The owner's current template.
    pub template: &'a PodTemplateSpec,
    /// `revisionHistoryLimit`.
    pub limit: i32,
}

/// The writes that bring the history up to date.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// A revision for the current template, if none exists.
    pub create: Option<ControllerRevision>,
    /// An existing revision of the current template to renumber: (name, revision).
    pub renumber: Option<(String, i64)>,
    /// Revisions to delete (beyond the limit, unused).
    pub delete: Vec<String>,
}

/// The revision data: the template as a replacing strategic merge patch.
pub fn data(template: &PodTemplateSpec) -> Value {
    let mut template = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(m) = template.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// The template a revision holds (its data without the patch directive).
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision.data.as_ref()?.0.pointer("/spec/template")?.clone();
    template.as_object_mut()?.remove("$patch");
    serde_json::from_value(template).ok()
}

/// Computes the history plan. `name` is the current template's revision
/// name, `hash` its hash; `in_use` names revisions that pods or the status
/// still refer to.
pub fn plan(
    owner: &Owner<'_>,
    name: &str,
    hash: &str,
    existing: &[Arc<ControllerRevision>],
    in_use: &HashSet<String>,
) -> Plan {
    let mut plan = Plan::default();
    let highest = existing.iter().map(|r| r.revision).max().unwrap_or(0);
    let next = highest.saturating_add(1);
    match existing.iter().find(|r| r.metadata.name.as_deref() == Some(name)) {
        Some(current) if current.revision < highest => plan.renumber = Some((name.to_string(), next)),
        Some(_) => {}
        None => plan.create = Some(revision(owner, name, hash, next)),
    }
    let mut old: Vec<&Arc<ControllerRevision>> = existing
        .iter()
        .filter(|r| r.metadata.name.as_deref().is_some_and(|n| n != name && !in_use.contains(n)))
        .collect();
    old.sort_by_key(|r| r.revision);
    let keep = usize::try_from(owner.limit.max(0)).unwrap_or(0);
    let surplus = old.len().saturating_sub(keep);
    plan.delete = old.into_iter().take(surplus).filter_map(|r| r.metadata.name.clone()).collect();
    plan
}

fn revision(owner: &Owner<'_>, name: &str, hash: &str, number: i64) -> ControllerRevision {
    let mut labels = owner.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.into());
    let mut annotations = owner.meta.annotations.clone().unwrap_or_default();
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: owner.meta.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations).filter(|a| !a.is_empty()),
            owner_references: Some(vec![selector::controller_ref(
                "apps/v1",
                owner.kind,
                owner.meta.name.as_deref().unwrap_or_default(),
                owner.meta.uid.as_deref().unwrap_or_default(),
            )]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(data(owner.template))),
        revision: number,
    }
}

/// Index key function: the owner of `kind` controlling an object, if any.
pub fn owner_key<K: Resource>(kind: &'static str) -> impl Fn(&K) -> Vec<ObjectKey> + Send + Sync + 'static {
    move |object: &K| {
        let meta = object.meta();
        match selector::controller_of(meta) {
            Some(owner) if owner.kind == kind => {
                vec![ObjectKey { namespace: meta.namespace.clone().unwrap_or_default(), name: owner.name.clone() }]
            }
            _ => Vec::new(),
        }
    }
}

/// Applies `plan` (an existing revision or a vanished one is not an error).
pub async fn apply(api: &Api<ControllerRevision>, plan: Plan) -> Result<(), kube::Error> {
    if let Some(revision) = &plan.create {
        match api.create(&PostParams::default(), revision).await {
            Err(e) if !is_conflict(&e) => return Err(e),
            _ => {}
        }
    }
    if let Some((name, number)) = &plan.renumber {
        let patch = json!({"revision": number});
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Err(e) if !is_not_found(&e) => return Err(e),
            _ => {}
        }
    }
    for name in &plan.delete {
        match api.delete(name, &DeleteParams::default()).await {
            Err(e) if !is_not_found(&e) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn existing(name: &str, number: i64) -> Arc<ControllerRevision> {
        Arc::new(ControllerRevision {
            metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
            data: None,
            revision: number,
        })
    }

    fn names(plan: &Plan) -> (Option<(String, i64)>, Option<i64>, Vec<String>) {
        (plan.renumber.clone(), plan.create.as_ref().map(|r| r.revision), plan.delete.clone())
    }

    #[test]
    fn history_cases() {
        let meta = ObjectMeta { name: Some("agent".into()), uid: Some("u".into()), ..ObjectMeta::default() };
        let template: PodTemplateSpec =
            serde_json::from_value(json!({"metadata": {"labels": {"app": "agent"}}})).expect("template");
        let owner = |limit| Owner { kind: "DaemonSet", meta: &meta, template: &template, limit };
        let none = HashSet::new();
        let used: HashSet<String> = ["agent-a".to_string()].into();
        // (limit, existing, in use, renumber, create, delete)
        type Case<'a> =
            (i32, Vec<Arc<ControllerRevision>>, &'a HashSet<String>, Option<(String, i64)>, Option<i64>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (10, vec![], &none, None, Some(1), vec![]),
            (10, vec![existing("agent-cur", 2), existing("agent-a", 1)], &none, None, None, vec![]),
            // Undo to an older template: it becomes the newest.
            (
                10,
                vec![existing("agent-cur", 1), existing("agent-a", 2)],
                &none,
                Some(("agent-cur".into(), 3)),
                None,
                vec![],
            ),
            (
                1,
                vec![existing("agent-a", 1), existing("agent-b", 2), existing("agent-c", 3)],
                &none,
                None,
                Some(4),
                vec!["agent-a", "agent-b"],
            ),
            (0, vec![existing("agent-a", 1), existing("agent-b", 2)], &used, None, Some(3), vec!["agent-b"]),
        ];
        for (i, (limit, revisions, in_use, renumber, create, delete)) in cases.into_iter().enumerate() {
            let plan = plan(&owner(limit), "agent-cur", "cur", &revisions, in_use);
            let delete: Vec<String> = delete.into_iter().map(String::from).collect();
            assert_eq!(names(&plan), (renumber, create, delete), "case {i}");
        }
    }

    #[test]
    fn revision_is_a_replacing_patch_found_by_the_selector() {
        let meta = ObjectMeta { name: Some("agent".into()), uid: Some("u".into()), ..ObjectMeta::default() };
        let template: PodTemplateSpec =
            serde_json::from_value(json!({"metadata": {"labels": {"app": "agent"}}})).expect("template");
        let owner = Owner { kind: "DaemonSet", meta: &meta, template: &template, limit: 10 };
        let created = plan(&owner, "agent-h", "h", &[], &HashSet::new()).create.expect("created");
        let labels = created.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("app").map(String::as_str), Some("agent"));
        assert_eq!(labels.get(HASH_LABEL).map(String::as_str), Some("h"));
        let data = created.data.expect("data").0;
        assert_eq!(data.pointer("/spec/template/$patch"), Some(&json!("replace")));
        assert_eq!(data.pointer("/spec/template/metadata/labels/app"), Some(&json!("agent")));
        let revision = ControllerRevision { data: Some(RawExtension(data)), ..created };
        assert_eq!(template_of(&revision), Some(template));
    }
}
