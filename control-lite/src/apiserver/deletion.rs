//! Deletion: graceful pod deletion, finalizers, namespaces (marked
//! Terminating; their contents are the namespace controller's job, see
//! `namespaces`) and `propagationPolicy=Orphan`. Every write here is one
//! store transaction on one key, so an interrupted DELETE (or
//! deletecollection) leaves each object either untouched, marked, or gone,
//! and repeating the request finishes it.

use serde_json::{json, Value};

use super::crud::{get, list, remove, update, UpdateScope, RETRIES};
use super::namespaces::{self, DeletePlan};
use super::objects::{
    encode, is_bound_active_pod, meta_mut, meta_str, now_rfc3339, ready_to_remove, set_rv, WriteOptions,
};
use super::registry::{Kind, ResourceInfo};
use super::selectors::Selectors;
use super::status::{conflict, conflict_with, ApiError, Result};
use super::ApiState;

/// DeleteOptions that matter here.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `propagationPolicy=Orphan`: dependents lose their ownerReference instead of being collected.
    pub orphan: bool,
}

impl DeleteOptions {
    /// Reads a DeleteOptions body (query values, given as `base`, are overridden by it).
    pub fn merge_body(mut self, body: &Value) -> DeleteOptions {
        if let Some(g) = body.get("gracePeriodSeconds").and_then(Value::as_i64) {
            self.grace_period = Some(g);
        }
        if let Some(uid) = body.pointer("/preconditions/uid").and_then(Value::as_str) {
            self.uid = Some(uid.to_string());
        }
        if let Some(rv) = body.pointer("/preconditions/resourceVersion").and_then(Value::as_str) {
            self.resource_version = Some(rv.to_string());
        }
        if let Some(policy) = body.get("propagationPolicy").and_then(Value::as_str) {
            self.orphan = policy == "Orphan";
        }
        if body.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            self.orphan = true;
        }
        if body.get("dryRun").and_then(Value::as_array).is_some_and(|d| !d.is_empty()) {
            self.dry_run = true;
        }
        self
    }
}

const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// Deletes (or marks for deletion) one object. Returns the object as it was
/// left: marked objects carry `deletionTimestamp`.
pub async fn delete(
    state: &ApiState,
    info: &'static ResourceInfo,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Value> {
    if info.kind == Kind::Namespace && PROTECTED_NAMESPACES.contains(&name) {
        return Err(ApiError::Forbidden(format!(
            "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
        )));
    }
    // Dependents are orphaned once, not again on every conflict retry.
    let mut orphaned = false;
    for _ in 0..RETRIES {
        let (current, rev) = get(state, info, ns, name).await?;
        let uid = meta_str(&current, "uid").unwrap_or_default();
        if let Some(want) = opts.uid.as_deref().filter(|u| *u != uid) {
            let detail = format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}");
            return Err(conflict_with(info, name, &detail));
        }
        if let Some(want) = opts.resource_version.as_deref().filter(|r| *r != rev.to_string()) {
            let detail = format!(
                "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"
            );
            return Err(conflict_with(info, name, &detail));
        }
        if opts.orphan && !opts.dry_run && !orphaned {
            orphan_dependents(state, ns, uid).await?;
            orphaned = true;
        }
        if info.kind == Kind::Namespace {
            match namespaces::plan_delete(&current, &now_rfc3339()) {
                DeletePlan::Refuse => return Err(conflict_with(info, name, namespaces::STILL_TERMINATING)),
                DeletePlan::Mark(next) => match write_marked(state, info, ns, name, rev, next, opts.dry_run).await? {
                    Some(obj) => return Ok(obj),
                    None => continue,
                },
                DeletePlan::Proceed => {}
            }
        }
        // A CRD waits for its objects to be deleted (`crd::cleanup`): the
        // first DELETE adds the cleanup finalizer, as upstream.
        let crd_cleanup =
            info.kind == Kind::CustomResourceDefinition && current.pointer("/metadata/deletionTimestamp").is_none();
        let has_finalizers = crd_cleanup
            || current.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
        let pod_grace = opts
            .grace_period
            .or_else(|| current.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
            .unwrap_or(30)
            .max(0);
        let graceful = is_bound_active_pod(info.kind, &current) && pod_grace > 0;
        if has_finalizers || graceful {
            let mut next = current.clone();
            let grace = if info.kind == Kind::Pod { pod_grace } else { 0 };
            let existing = current.pointer("/metadata/deletionTimestamp").and_then(Value::as_str).map(|ts| {
                (ts, current.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0))
            });
            let Some((deadline, grace)) = super::grace::mark(existing, grace, jiff::Timestamp::now()) else {
                return Ok(current);
            };
            if let Some(meta) = meta_mut(&mut next) {
                meta.insert("deletionTimestamp".into(), json!(deadline));
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
                if tracks(info.kind) {
                    let g = meta.get("generation").and_then(Value::as_i64).unwrap_or(1);
                    meta.insert("generation".into(), json!(g.saturating_add(1)));
                }
            }
            if crd_cleanup {
                super::crd::cleanup::add_finalizer(&mut next);
                super::crd::definition::mark_terminating(&mut next, &now_rfc3339());
            }
            match write_marked(state, info, ns, name, rev, next, opts.dry_run).await? {
                Some(obj) => {
                    if crd_cleanup && !opts.dry_run {
                        super::crd::reload(state).await?;
                    }
                    return Ok(obj);
                }
                None => continue,
            }
        }
        if opts.dry_run {
            return Ok(current);
        }
        match remove(state, info, ns, name, rev, current).await {
            Err(ApiError::Conflict { .. }) => continue,
            other => return other,
        }
    }
    Err(conflict(info, name))
}

/// Removes `finalizer` from the object marked for deletion whose uid is
/// `uid` (a controller's work on it is done); if nothing else holds it, it
/// is then removed. `Ok(false)` if that object is gone, was replaced, is not
/// marked or does not carry the finalizer.
pub async fn drop_finalizer(
    state: &ApiState,
    info: &'static ResourceInfo,
    ns: Option<&str>,
    name: &str,
    uid: &str,
    finalizer: &str,
) -> Result<bool> {
    for _ in 0..RETRIES {
        let (current, rev) = match get(state, info, ns, name).await {
            Ok(found) => found,
            Err(ApiError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if meta_str(&current, "uid") != Some(uid) || current.pointer("/metadata/deletionTimestamp").is_none() {
            return Ok(false);
        }
        let mut next = current.clone();
        let Some(list) = next.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) else {
            return Ok(false);
        };
        let before = list.len();
        list.retain(|f| f.as_str() != Some(finalizer));
        if list.len() == before {
            return Ok(false);
        }
        if write_marked(state, info, ns, name, rev, next, false).await?.is_some() {
            return Ok(true);
        }
    }
    Err(conflict(info, name))
}

/// Stores an object marked for deletion (or removes it if nothing holds it
/// any more). None: a concurrent write won; the caller retries.
async fn write_marked(
    state: &ApiState,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    rev: i64,
    mut next: Value,
    dry_run: bool,
) -> Result<Option<Value>> {
    if dry_run {
        return Ok(Some(next));
    }
    if ready_to_remove(info.kind, &next) {
        return match remove(state, info, ns, name, rev, next).await {
            Err(ApiError::Conflict { .. }) => Ok(None),
            other => other.map(Some),
        };
    }
    let key = info.key(ns, name);
    let mut stored = next.clone();
    super::crd::to_storage(info, &mut stored);
    match state.store.update(&key, encode(&stored), Some(rev)).await {
        Ok(new_rev) => {
            set_rv(&mut next, new_rev);
            Ok(Some(next))
        }
        Err(crate::store::Error::Conflict { .. }) => Ok(None),
        Err(e) => Err(ApiError::from_store(info, name, "update", &key, e)),
    }
}

fn tracks(kind: Kind) -> bool {
    super::objects::tracks_generation(kind) && kind != Kind::Pod
}

/// Strips the ownerReference to `owner_uid` from every object in `ns` (all
/// namespaces for cluster-scoped owners) so the garbage collector keeps them.
async fn orphan_dependents(state: &ApiState, ns: Option<&str>, owner_uid: &str) -> Result<()> {
    let refs_owner = |obj: &Value| {
        obj.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| refs.iter().any(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid)))
    };
    let custom = state.crds.rows();
    for info in super::registry::all_with(&custom).into_iter().filter(|r| r.namespaced) {
        let (items, _) = list(state, info, ns, &Selectors::default()).await?;
        for item in items.iter().filter(|i| refs_owner(i)) {
            let name = meta_str(item, "name").unwrap_or_default().to_string();
            let item_ns = meta_str(item, "namespace").map(str::to_string);
            let strip = |current: &Value| {
                let mut next = current.clone();
                if let Some(refs) = next.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
                }
                Ok(next)
            };
            match update(state, info, item_ns.as_deref(), &name, UpdateScope::Main, WriteOptions::default(), strip)
                .await
            {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
