//! Deleting a CRD's objects before the CRD (upstream's CRD finalizer
//! controller, which also runs inside the apiserver).
//!
//! A CRD's first DELETE adds the finalizer [`FINALIZER`] and marks it
//! (`deletionTimestamp`, condition `Terminating`), as upstream. While it is
//! marked its objects are still served for reads, updates and deletes, and
//! creates are refused (405, as upstream). [`run`] finds marked CRDs after
//! every CRD reload (a write here, a write seen through the store from
//! another apiserver, a restart) and every [`RESYNC`]: it deletes their
//! objects through the normal deletion path, page by page, so objects with
//! finalizers of their own are marked and waited for; once none is left it
//! drops the finalizer (only from the same CRD, by uid, still marked), which
//! removes the CRD. The CRD is read again before each page, so a CRD that
//! another apiserver finished, or a new one of the same name, is left
//! alone. A CRD whose group and plural are a built-in resource's (refused
//! at admission now) never has objects deleted: they would be built-ins.
//!
//! Level-triggered and idempotent: a crash at any point leaves the CRD
//! marked, and the next start finishes the job; several apiservers may do
//! it at once (a delete of a gone object and a drop of a dropped finalizer
//! are no-ops).

use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::super::deletion::{self, DeleteOptions};
use super::super::objects::{decode, meta_str};
use super::super::registry::{by_kind, Kind, ResourceInfo};
use super::super::status::{ApiError, Result};
use super::super::ApiState;
use super::definition;
use crate::store::{KeyValue, ListPage, ListRange};

/// The finalizer that holds a CRD until its objects are deleted.
pub const FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
/// How often marked CRDs are looked at again (objects held by their own
/// finalizers are waited for at this pace).
pub const RESYNC: Duration = Duration::from_secs(5);
/// Objects read per store call while deleting a CRD's objects.
const PAGE: usize = 1_000;

/// Adds [`FINALIZER`] to a CRD being marked for deletion.
pub fn add_finalizer(crd: &mut Value) {
    let Some(meta) = crd.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut() {
        if !list.iter().any(|f| f == FINALIZER) {
            list.push(json!(FINALIZER));
        }
    }
}

/// Whether a stored CRD is marked for deletion and waits for its objects.
pub fn needs_cleanup(crd: &Value) -> bool {
    crd.pointer("/metadata/deletionTimestamp").is_some()
        && crd
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// Cleans up marked CRDs until `token` is cancelled.
pub async fn run(state: &ApiState, token: CancellationToken) {
    loop {
        if let Err(error) = pass(state).await {
            tracing::warn!(%error, "listing custom resource definitions to clean up");
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = state.crds.cleanup_wanted() => {}
            () = tokio::time::sleep(RESYNC) => {}
        }
    }
}

/// One look at every marked CRD; a failure on one does not stop the others.
async fn pass(state: &ApiState) -> Result<()> {
    if !state.crds.any_terminating() {
        return Ok(());
    }
    let info = by_kind(Kind::CustomResourceDefinition);
    let prefix = info.prefix(None);
    let (kvs, _) = state.store.list(&prefix).await.map_err(|e| ApiError::from_store(info, "", "list", &prefix, e))?;
    for kv in &kvs {
        let Ok(crd) = decode(kv) else { continue };
        if !needs_cleanup(&crd) {
            continue;
        }
        let name = meta_str(&crd, "name").unwrap_or_default().to_string();
        let uid = meta_str(&crd, "uid").unwrap_or_default().to_string();
        match clean(state, &crd, &name, &uid).await {
            Ok(true) => tracing::info!(crd = %name, "custom resource definition deleted after its objects"),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(crd = %name, %error, "deleting the objects of a deleted custom resource definition")
            }
        }
    }
    Ok(())
}

/// Deletes (or marks) every object of the CRD `name` with `uid`, in pages
/// of [`PAGE`]; once none is left, drops the finalizer. Whether the CRD was
/// released. Before each page the CRD is read again: if it was removed or
/// replaced (another apiserver finished, the name was reused), nothing more
/// is done for it.
async fn clean(state: &ApiState, crd: &Value, name: &str, uid: &str) -> Result<bool> {
    let text = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    let (group, plural) = (text("/spec/group"), text("/spec/names/plural"));
    let info = by_kind(Kind::CustomResourceDefinition);
    // Built-in objects share the key space: never touch them (admission
    // refuses such CRDs; one stored earlier just loses its finalizer).
    if definition::builtin_owning(&group, &plural).is_none() {
        let prefix = format!("/registry/{group}/{plural}/");
        let mut start = None;
        loop {
            if !still_marked(state, name, uid).await? {
                return Ok(false);
            }
            let page = objects(state, &prefix, start.take(), PAGE).await?;
            let row = state.crds.rows().iter().copied().find(|r| r.custom.is_some_and(|c| c.crd_name == name));
            for kv in &page.kvs {
                if let Err(error) = delete_object(state, row, &prefix, kv).await {
                    tracing::warn!(crd = %name, key = %kv.key, %error, "deleting a custom resource");
                }
            }
            match page.kvs.last() {
                Some(last) if page.remaining > 0 => start = Some(format!("{}\u{0}", last.key)),
                _ => break,
            }
        }
        if !objects(state, &prefix, None, 1).await?.kvs.is_empty() {
            return Ok(false);
        }
    }
    deletion::drop_finalizer(state, info, None, name, uid, FINALIZER).await
}

/// Whether the CRD `name` is still the one with `uid`, marked for deletion.
async fn still_marked(state: &ApiState, name: &str, uid: &str) -> Result<bool> {
    let info = by_kind(Kind::CustomResourceDefinition);
    let key = info.key(None, name);
    let Some(kv) = state.store.get(&key).await.map_err(|e| ApiError::from_store(info, name, "get", &key, e))? else {
        return Ok(false);
    };
    let crd = decode(&kv)?;
    Ok(meta_str(&crd, "uid") == Some(uid) && needs_cleanup(&crd))
}

/// Deletes one object through the normal path (its own finalizers are
/// honoured), named by its key; an object of a CRD that is not served, or
/// one that cannot be decoded, is removed from the store directly (nothing
/// can hold it).
async fn delete_object(
    state: &ApiState,
    row: Option<&'static ResourceInfo>,
    prefix: &str,
    kv: &KeyValue,
) -> Result<()> {
    let rest = kv.key.strip_prefix(prefix).unwrap_or_default();
    let named = match row {
        Some(row) if row.namespaced => rest.split_once('/').map(|(ns, n)| (Some(ns), n)),
        Some(_) => Some((None, rest)),
        None => None,
    };
    let decodes = decode(kv).is_ok();
    if let (Some(row), Some((ns, object)), true) = (row, named, decodes) {
        return match deletion::delete(state, row, ns, object, &DeleteOptions::default()).await {
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        };
    }
    let info = by_kind(Kind::CustomResourceDefinition);
    match state.store.delete(&kv.key, Some(kv.mod_revision)).await {
        Ok(_) | Err(crate::store::Error::NotFound { .. } | crate::store::Error::Conflict { .. }) => Ok(()),
        Err(e) => Err(ApiError::from_store(info, rest, "delete", &kv.key, e)),
    }
}

async fn objects(state: &ApiState, prefix: &str, start: Option<String>, limit: usize) -> Result<ListPage> {
    let range = ListRange { prefix: prefix.to_owned(), start, limit: Some(limit), revision: None };
    let info = by_kind(Kind::CustomResourceDefinition);
    state.store.list_page(range).await.map_err(|e| ApiError::from_store(info, "", "list", prefix, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_finalizer_is_added_once_and_holds_a_marked_crd() {
        let mut crd = json!({"metadata": {"name": "widgets.example.com", "finalizers": ["x"]}});
        add_finalizer(&mut crd);
        add_finalizer(&mut crd);
        assert_eq!(crd["metadata"]["finalizers"], json!(["x", FINALIZER]));
        assert!(!needs_cleanup(&crd), "not marked");
        crd["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(needs_cleanup(&crd));
        crd["metadata"]["finalizers"] = json!(["x"]);
        assert!(!needs_cleanup(&crd), "cleaned up already");
        let mut bare = json!({"metadata": {"name": "a"}});
        add_finalizer(&mut bare);
        assert_eq!(bare["metadata"]["finalizers"], json!([FINALIZER]));
    }
}
