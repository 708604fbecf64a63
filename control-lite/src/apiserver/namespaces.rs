//! Namespace lifecycle, as upstream's namespace strategy and
//! NamespaceLifecycle admission: a new Namespace carries the `kubernetes`
//! finalizer in `spec.finalizers`; DELETE only marks it (deletionTimestamp,
//! phase `Terminating`); creating anything in a Terminating namespace is
//! refused with 403; `namespaces/{name}/finalize` is the only way to change
//! `spec.finalizers`; once both finalizer lists are empty the namespace is
//! removed. The namespace controller empties the namespace in between, so a
//! crash at any point leaves either the namespace (still Terminating, and the
//! controller resumes) or nothing; never contents without their namespace.
//!
//! Owns: these rules as pure functions, the `finalize` write and the check
//! that closes the race between a create and a namespace deletion. Must not:
//! delete a namespace's contents (the controller does, through the API).

use serde_json::{json, Value};

use super::crud::{get, remove, RETRIES};
use super::objects::{differs, encode, meta_mut, meta_str, ready_to_remove, requested_rv, set_rv, WriteOptions};
use super::registry::{by_kind, Kind, ResourceInfo};
use super::status::{conflict, conflict_with, not_found, ApiError, Result};
use super::ApiState;

/// The finalizer the namespace controller owns.
pub const FINALIZER: &str = "kubernetes";

/// Upstream's answer to a DELETE of a namespace that is already Terminating.
pub const STILL_TERMINATING: &str = "The system is ensuring all content is removed from this namespace.  \
Upon completion, this namespace will automatically be purged by the system.";

/// `spec.finalizers` of a namespace (None if the field is absent).
pub fn spec_finalizers(ns: &Value) -> Option<Vec<String>> {
    let list = ns.pointer("/spec/finalizers")?.as_array()?;
    Some(list.iter().filter_map(Value::as_str).map(str::to_string).collect())
}

/// Whether the namespace is being deleted.
pub fn is_terminating(ns: &Value) -> bool {
    ns.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
        || ns.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
}

fn set_spec_finalizers(ns: &mut Value, finalizers: Vec<String>) {
    if let Some(map) = ns.as_object_mut() {
        let spec = map.entry("spec").or_insert_with(|| json!({}));
        if !spec.is_object() {
            *spec = json!({});
        }
        spec["finalizers"] = json!(finalizers);
    }
}

/// Create rules: `kubernetes` is added to `spec.finalizers`, the phase is Active.
pub fn prepare_create(ns: &mut Value) {
    let mut finalizers = spec_finalizers(ns).unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        finalizers.push(FINALIZER.to_string());
    }
    set_spec_finalizers(ns, finalizers);
    if let Some(map) = ns.as_object_mut() {
        map.insert("status".into(), json!({"phase": "Active"}));
    }
}

/// Update rules: writes of the main resource keep `spec.finalizers`.
pub fn keep_finalizers(current: &Value, next: &mut Value) {
    match spec_finalizers(current) {
        Some(finalizers) => set_spec_finalizers(next, finalizers),
        None => {
            if let Some(spec) = next.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("finalizers");
            }
        }
    }
}

/// What a DELETE does to a namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum DeletePlan {
    /// First DELETE: store this (marked Terminating) object.
    Mark(Value),
    /// Already Terminating with `spec.finalizers` left: 409, as upstream.
    Refuse,
    /// Already Terminating, no spec finalizers: the ordinary deletion rules apply.
    Proceed,
}

/// Decides a DELETE of namespace `current` at time `now`. A namespace that
/// never had a `spec.finalizers` field (stored by an older bosun) gets the
/// `kubernetes` finalizer now, so its contents are still deleted first; an
/// explicitly emptied list is respected.
pub fn plan_delete(current: &Value, now: &str) -> DeletePlan {
    let marked = current.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null());
    if marked {
        return match spec_finalizers(current) {
            Some(f) if !f.is_empty() => DeletePlan::Refuse,
            _ => DeletePlan::Proceed,
        };
    }
    let mut next = current.clone();
    if spec_finalizers(current).is_none() {
        set_spec_finalizers(&mut next, vec![FINALIZER.to_string()]);
    }
    if let Some(meta) = meta_mut(&mut next) {
        meta.insert("deletionTimestamp".into(), json!(now));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    if let Some(map) = next.as_object_mut() {
        let status = map.entry("status").or_insert_with(|| json!({}));
        if !status.is_object() {
            *status = json!({});
        }
        status["phase"] = json!("Terminating");
    }
    DeletePlan::Mark(next)
}

/// NamespaceLifecycle admission of a create of `info`'s object `name` in
/// namespace `ns`, whose stored object is `namespace`.
pub fn admit_create(info: &ResourceInfo, name: &str, ns: &str, namespace: &Value) -> Result<()> {
    if is_terminating(namespace) {
        return Err(terminating(info, name, ns));
    }
    Ok(())
}

fn terminating(info: &ResourceInfo, name: &str, ns: &str) -> ApiError {
    ApiError::NamespaceTerminating {
        resource: info.qualified_plural(),
        group: info.group.into(),
        kind: info.plural.into(),
        name: name.into(),
        namespace: ns.into(),
    }
}

/// The namespace a `finalize` request asks for: `current` with the body's
/// `spec.finalizers` (duplicates dropped), everything else unchanged.
pub fn apply_finalize(info: &ResourceInfo, name: &str, current: &Value, body: &Value) -> Result<Value> {
    let mut finalizers: Vec<String> = Vec::new();
    for f in body.pointer("/spec/finalizers").and_then(Value::as_array).into_iter().flatten() {
        let Some(f) = f.as_str().filter(|f| !f.is_empty()) else {
            let cause = super::status::Cause::invalid("spec.finalizers", &f.to_string(), "must be a non-empty string");
            return Err(super::status::invalid(info, name, vec![cause]));
        };
        if !finalizers.iter().any(|have| have == f) {
            finalizers.push(f.to_string());
        }
    }
    let mut next = current.clone();
    set_spec_finalizers(&mut next, finalizers);
    Ok(next)
}

/// PUT `namespaces/{name}/finalize`: writes `spec.finalizers`, removing the
/// namespace if it is Terminating and no finalizer is left.
pub async fn finalize(state: &ApiState, name: &str, body: &Value, opts: WriteOptions) -> Result<Value> {
    let info = by_kind(Kind::Namespace);
    let precondition = requested_rv(body)?;
    let key = info.key(None, name);
    for _ in 0..RETRIES {
        let (current, rev) = get(state, info, None, name).await?;
        if precondition.is_some_and(|p| p != rev) {
            return Err(conflict(info, name));
        }
        if let Some(uid) = meta_str(body, "uid").filter(|u| !u.is_empty()) {
            let stored = meta_str(&current, "uid").unwrap_or_default();
            if uid != stored {
                let detail = format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {stored}");
                return Err(conflict_with(info, name, &detail));
            }
        }
        let mut next = apply_finalize(info, name, &current, body)?;
        if !differs(&current, &next) || opts.dry_run {
            return Ok(next);
        }
        if ready_to_remove(Kind::Namespace, &next) {
            match remove(state, info, None, name, rev, next).await {
                Err(ApiError::Conflict { .. }) if precondition.is_none() => continue,
                other => return other,
            }
        }
        match state.store.update(&key, encode(&next), Some(rev)).await {
            Ok(new_rev) => {
                set_rv(&mut next, new_rev);
                return Ok(next);
            }
            Err(crate::store::Error::Conflict { .. }) if precondition.is_none() => continue,
            Err(e) => return Err(ApiError::from_store(info, name, "update", &key, e)),
        }
    }
    Err(conflict(info, name))
}

/// Closes the race between a create and a namespace deletion: the create
/// was admitted, but if the namespace started terminating (or vanished)
/// before the object was stored, the namespace controller may already have
/// counted the namespace empty. Such an object is removed again and the
/// create refused, so no object outlives its namespace.
pub async fn recheck_after_create(
    state: &ApiState,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    created: &Value,
) -> Result<()> {
    let ns_info = by_kind(Kind::Namespace);
    let refusal = match state.store.get(&ns_info.key(None, ns)).await {
        Ok(None) => not_found(ns_info, ns),
        Ok(Some(kv)) => match super::objects::decode(&kv) {
            Ok(namespace) if !is_terminating(&namespace) => return Ok(()),
            _ => terminating(info, name, ns),
        },
        Err(e) => return Err(ApiError::from_store(ns_info, ns, "get", &ns_info.key(None, ns), e)),
    };
    let created_uid = meta_str(created, "uid").unwrap_or_default();
    for _ in 0..RETRIES {
        let (current, rev) = match get(state, info, Some(ns), name).await {
            Ok(found) => found,
            Err(ApiError::NotFound { .. }) => return Err(refusal),
            Err(e) => return Err(e),
        };
        if meta_str(&current, "uid").unwrap_or_default() != created_uid {
            return Err(refusal);
        }
        match remove(state, info, Some(ns), name, rev, current).await {
            Ok(_) | Err(ApiError::NotFound { .. }) => return Err(refusal),
            Err(ApiError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(refusal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(meta: Value, spec: Value, status: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta, "spec": spec, "status": status})
    }

    #[test]
    fn create_adds_the_kubernetes_finalizer_once_and_activates() {
        let cases = [
            (json!({}), vec!["kubernetes"]),
            (json!({"finalizers": ["x"]}), vec!["x", "kubernetes"]),
            (json!({"finalizers": ["kubernetes", "x"]}), vec!["kubernetes", "x"]),
        ];
        for (spec, want) in cases {
            let mut obj = ns(json!({"name": "a"}), spec.clone(), json!({"phase": "Terminating"}));
            prepare_create(&mut obj);
            assert_eq!(spec_finalizers(&obj), Some(want.iter().map(|s| s.to_string()).collect()), "{spec}");
            assert_eq!(obj["status"], json!({"phase": "Active"}));
        }
    }

    #[test]
    fn main_updates_cannot_change_spec_finalizers() {
        let current = ns(json!({"name": "a"}), json!({"finalizers": ["kubernetes"]}), json!({}));
        let mut dropped = ns(json!({"name": "a"}), json!({}), json!({}));
        keep_finalizers(&current, &mut dropped);
        assert_eq!(spec_finalizers(&dropped), Some(vec!["kubernetes".to_string()]));
        let legacy = ns(json!({"name": "a"}), json!({}), json!({}));
        let mut added = ns(json!({"name": "a"}), json!({"finalizers": ["x"]}), json!({}));
        keep_finalizers(&legacy, &mut added);
        assert_eq!(spec_finalizers(&added), None);
    }

    #[test]
    fn delete_marks_first_then_refuses_while_finalizers_remain() {
        let t = "2026-01-01T00:00:00Z";
        let active = ns(json!({"name": "a"}), json!({"finalizers": ["kubernetes"]}), json!({"phase": "Active"}));
        let DeletePlan::Mark(marked) = plan_delete(&active, t) else { panic!("first delete marks") };
        assert_eq!(marked["metadata"]["deletionTimestamp"], t);
        assert_eq!(marked["status"]["phase"], "Terminating");
        assert_eq!(spec_finalizers(&marked), Some(vec!["kubernetes".to_string()]));
        assert!(!ready_to_remove(Kind::Namespace, &marked));
        assert_eq!(plan_delete(&marked, t), DeletePlan::Refuse);

        let emptied = ns(json!({"name": "a", "deletionTimestamp": t}), json!({"finalizers": []}), json!({}));
        assert_eq!(plan_delete(&emptied, t), DeletePlan::Proceed);
        assert!(ready_to_remove(Kind::Namespace, &emptied));

        // Stored by an older bosun (no spec.finalizers): still emptied first.
        let legacy = ns(json!({"name": "a"}), json!({}), json!({"phase": "Active"}));
        let DeletePlan::Mark(marked) = plan_delete(&legacy, t) else { panic!("legacy delete marks") };
        assert_eq!(spec_finalizers(&marked), Some(vec!["kubernetes".to_string()]));
        // Explicitly emptied by the user: removable at once.
        let chosen = ns(json!({"name": "a"}), json!({"finalizers": []}), json!({"phase": "Active"}));
        let DeletePlan::Mark(marked) = plan_delete(&chosen, t) else { panic!("delete marks") };
        assert!(ready_to_remove(Kind::Namespace, &marked));
    }

    #[test]
    fn creates_in_terminating_namespaces_are_forbidden_with_upstream_wording() {
        let cm = by_kind(Kind::ConfigMap);
        let deploy = by_kind(Kind::Deployment);
        let active = ns(json!({"name": "team"}), json!({}), json!({"phase": "Active"}));
        let marked = ns(json!({"name": "team", "deletionTimestamp": "t"}), json!({}), json!({"phase": "Active"}));
        let phase = ns(json!({"name": "team"}), json!({}), json!({"phase": "Terminating"}));
        assert!(admit_create(cm, "c", "team", &active).is_ok());
        for namespace in [&marked, &phase] {
            let err = admit_create(cm, "c", "team", namespace).expect_err("terminating");
            assert_eq!(
                err.to_string(),
                "configmaps \"c\" is forbidden: unable to create new content in namespace team because it is being terminated"
            );
            let (code, status) = err.to_status();
            assert_eq!((code.as_u16(), status["reason"].as_str()), (403, Some("Forbidden")));
            assert_eq!(status["details"]["causes"][0]["reason"], "NamespaceTerminating");
        }
        let err = admit_create(deploy, "", "team", &marked).expect_err("terminating");
        assert_eq!(
            err.to_string(),
            "deployments.apps is forbidden: unable to create new content in namespace team because it is being terminated"
        );
    }

    #[test]
    fn finalize_replaces_only_spec_finalizers() {
        let info = by_kind(Kind::Namespace);
        let current = ns(
            json!({"name": "a", "labels": {"k": "v"}}),
            json!({"finalizers": ["kubernetes", "x"]}),
            json!({"phase": "Terminating"}),
        );
        let body = json!({"metadata": {"name": "a", "labels": {}}, "spec": {"finalizers": ["x", "x"]}, "status": {"phase": "Active"}});
        let next = apply_finalize(info, "a", &current, &body).expect("finalize");
        assert_eq!(spec_finalizers(&next), Some(vec!["x".to_string()]));
        assert_eq!(next["metadata"]["labels"]["k"], "v");
        assert_eq!(next["status"]["phase"], "Terminating");
        let none = apply_finalize(info, "a", &current, &json!({"spec": {}})).expect("finalize");
        assert_eq!(spec_finalizers(&none), Some(vec![]));
        assert!(apply_finalize(info, "a", &current, &json!({"spec": {"finalizers": [1]}})).is_err());
    }

    /// A create admitted while the namespace was Active but stored after it
    /// started terminating (or vanished) is undone and refused.
    #[tokio::test]
    async fn a_create_that_lost_the_race_with_a_namespace_deletion_is_undone() -> anyhow::Result<()> {
        let store = crate::store::Store::open_in_memory()?;
        let token = tokio_util::sync::CancellationToken::new();
        let state = ApiState::new(store, "10.96.0.0/16".parse()?, "127.0.0.1:0".into(), token);
        let (ns_info, cm) = (by_kind(Kind::Namespace), by_kind(Kind::ConfigMap));
        let store_cm = |ns: &'static str| {
            let state = &state;
            async move {
                let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "namespace": ns, "uid": format!("uid-{ns}")}});
                state.store.create(&cm.key(Some(ns), "c"), encode(&obj)).await?;
                anyhow::Ok(obj)
            }
        };
        let namespace = |name: &str, terminating: bool| {
            let mut obj = json!({"metadata": {"name": name}, "spec": {"finalizers": ["kubernetes"]}});
            if terminating {
                obj["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            encode(&obj)
        };
        state.store.create(&ns_info.key(None, "live"), namespace("live", false)).await?;
        state.store.create(&ns_info.key(None, "dying"), namespace("dying", true)).await?;

        let created = store_cm("live").await?;
        recheck_after_create(&state, cm, "live", "c", &created).await?;
        assert!(state.store.get(&cm.key(Some("live"), "c")).await?.is_some(), "kept in an active namespace");

        let created = store_cm("dying").await?;
        let err = recheck_after_create(&state, cm, "dying", "c", &created).await.expect_err("terminating");
        assert_eq!(err.to_status().0.as_u16(), 403, "{err}");
        assert!(state.store.get(&cm.key(Some("dying"), "c")).await?.is_none(), "undone in a terminating namespace");

        let created = store_cm("gone").await?;
        let err = recheck_after_create(&state, cm, "gone", "c", &created).await.expect_err("missing");
        assert_eq!(err.to_status().0.as_u16(), 404, "{err}");
        assert!(state.store.get(&cm.key(Some("gone"), "c")).await?.is_none(), "undone in a missing namespace");
        Ok(())
    }
}
