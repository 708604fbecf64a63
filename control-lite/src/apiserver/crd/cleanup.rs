//! Deleting a CRD's objects before the CRD (upstream's CRD finalizer
//! controller, which also runs inside the apiserver).
//!
//! Every CRD is created with the finalizer [`FINALIZER`], so a DELETE only
//! marks it (`deletionTimestamp`, condition `Terminating`). While it is
//! marked its objects are still served for reads, updates and deletes, and
//! creates are refused (405, as upstream). [`run`] finds marked CRDs after
//! every CRD reload (a write here, a write seen through the store from
//! another apiserver, a restart) and every [`RESYNC`]: it deletes their
//! objects through the normal deletion path, at most [`MAX_PER_PASS`] per
//! pass, so objects with finalizers of their own are marked and waited for;
//! once none is left it drops the finalizer, which removes the CRD.
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
use crate::store::{ListPage, ListRange};

/// The finalizer that holds a CRD until its objects are deleted.
pub const FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
/// How often marked CRDs are looked at again (objects held by their own
/// finalizers are waited for at this pace).
pub const RESYNC: Duration = Duration::from_secs(5);
/// Most objects deleted per CRD in one pass.
const MAX_PER_PASS: usize = 1_000;

/// Adds [`FINALIZER`] to a CRD being created.
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
            tracing::warn!(%error, "deleting the objects of deleted custom resource definitions");
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = state.crds.cleanup_wanted() => {}
            () = tokio::time::sleep(RESYNC) => {}
        }
    }
}

/// One look at every marked CRD.
async fn pass(state: &ApiState) -> Result<()> {
    if !state.crds.any_terminating() {
        return Ok(());
    }
    let info = by_kind(Kind::CustomResourceDefinition);
    let prefix = info.prefix(None);
    let (kvs, _) = state.store.list(&prefix).await.map_err(|e| ApiError::from_store(info, "", "list", &prefix, e))?;
    for kv in &kvs {
        let crd = decode(kv)?;
        if !needs_cleanup(&crd) {
            continue;
        }
        let name = meta_str(&crd, "name").unwrap_or_default().to_string();
        if delete_objects(state, &crd, &name).await? {
            deletion::drop_finalizer(state, info, None, &name, FINALIZER).await?;
            tracing::info!(crd = %name, "custom resource definition deleted after its objects");
        }
    }
    Ok(())
}

/// Deletes (or marks) up to [`MAX_PER_PASS`] objects of `crd`; whether
/// none is left.
async fn delete_objects(state: &ApiState, crd: &Value, name: &str) -> Result<bool> {
    let text = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    let prefix = format!("/registry/{}/{}/", text("/spec/group"), text("/spec/names/plural"));
    let page = objects(state, &prefix, MAX_PER_PASS).await?;
    if page.kvs.is_empty() {
        return Ok(true);
    }
    let row: Option<&'static ResourceInfo> =
        state.crds.rows().iter().copied().find(|r| r.custom.is_some_and(|c| c.crd_name == name));
    for kv in &page.kvs {
        let Some(row) = row else {
            // Not served (never established): nothing can hold its objects.
            match state.store.delete(&kv.key, None).await {
                Ok(_) | Err(crate::store::Error::NotFound { .. }) => continue,
                Err(e) => {
                    return Err(ApiError::from_store(
                        by_kind(Kind::CustomResourceDefinition),
                        name,
                        "delete",
                        &kv.key,
                        e,
                    ))
                }
            }
        };
        let obj = decode(kv)?;
        let ns = meta_str(&obj, "namespace").filter(|_| row.namespaced);
        let object = meta_str(&obj, "name").unwrap_or_default();
        match deletion::delete(state, row, ns, object, &DeleteOptions::default()).await {
            Ok(_) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(objects(state, &prefix, 1).await?.kvs.is_empty())
}

async fn objects(state: &ApiState, prefix: &str, limit: usize) -> Result<ListPage> {
    let range = ListRange { prefix: prefix.to_owned(), start: None, limit: Some(limit), revision: None };
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
