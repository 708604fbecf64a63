//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`) and the custom
//! resources they define.
//!
//! Design: a CRD is an ordinary built-in kind (typed by k8s-openapi,
//! validated by [`definition`]); each served version of an accepted CRD
//! becomes one more [`ResourceInfo`] row of kind `Kind::Custom`, so custom
//! resources take the same generic paths as built-ins (routing, storage
//! keys, list, watch, patch, apply, Tables, discovery). The rows are built
//! from the stored CRDs ([`reload`], at startup, after every CRD write
//! through this apiserver and, for writes through other apiservers on the
//! same store, after every CRD event of a watch: [`sync`]) and carry their version's parsed [`schema`], printer
//! [`columns`] and scale paths in [`Custom`]. Rows are interned
//! (`intern`): the same definition always yields the same `&'static` row,
//! and at most [`intern::MAX_ROWS`] distinct rows are ever made.
//!
//! Storage: every version of a resource shares one key space
//! (`/registry/<group>/<plural>/...`); objects are stored with the storage
//! version's `apiVersion` and returned with the requested one (upstream's
//! `None` conversion). Deleting a CRD deletes its objects.

pub mod check;
pub mod cleanup;
pub mod columns;
pub mod definition;
mod intern;
pub mod schema;
pub mod sync;

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::objects::{decode, meta_str};
use super::registry::{by_kind, Kind, ResourceInfo, Subresource};
use super::status::{ApiError, Cause};
use super::ApiState;
use crate::store::Revision;

/// Errors of serving CRDs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The row table is full ([`intern::MAX_ROWS`]).
    #[error("more than {} distinct custom resource versions served since start", intern::MAX_ROWS)]
    TooManyRows,
    /// A stored CRD's schema could not be parsed.
    #[error("CRD {crd}: {source}")]
    Schema { crd: String, source: schema::Error },
    /// A stored CRD's printer columns could not be parsed.
    #[error("CRD {crd}: {source}")]
    Columns { crd: String, source: columns::Error },
}

/// The `/scale` paths of a custom resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// `.spec.replicas`-like path.
    pub spec_replicas: String,
    /// `.status.replicas`-like path.
    pub status_replicas: String,
    /// `.status.selector`-like path of the label selector (string form).
    pub label_selector: Option<String>,
}

/// What a custom resource's row carries beyond the built-in fields.
#[derive(Debug)]
pub struct Custom {
    /// What makes two rows the same (the CRD's spec and the version).
    identity: String,
    /// The CRD's name (`<plural>.<group>`).
    pub crd_name: String,
    /// `spec.names.listKind`.
    pub list_kind: String,
    /// The storage version's name.
    pub storage_version: String,
    /// The version's schema.
    pub schema: schema::Schema,
    /// The version's schema as written (served as OpenAPI).
    pub openapi: Value,
    /// The version's printer columns (empty: Name and Age).
    pub columns: Vec<columns::Column>,
    /// `subresources.scale`.
    pub scale: Option<ScalePaths>,
}

impl PartialEq for Custom {
    fn eq(&self, other: &Custom) -> bool {
        self.identity == other.identity
    }
}

impl Eq for Custom {}

impl Hash for Custom {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity.hash(state)
    }
}

/// The custom resource rows served now (one per served version of each
/// established CRD), preferred versions first.
/// The store revision the rows were listed at comes with them: a list
/// older than the one served is not applied (a reload after a write and
/// one from the watch may finish in either order).
#[derive(Debug, Default)]
pub struct Served {
    rows: RwLock<(Revision, Arc<Vec<&'static ResourceInfo>>)>,
    /// Names of the served CRDs being deleted: their objects may be read,
    /// changed and deleted, not created ([`cleanup`] removes them).
    terminating: RwLock<HashSet<String>>,
    /// Woken when a reload finds a CRD being deleted.
    cleanup: tokio::sync::Notify,
}

impl Served {
    /// The rows served now.
    pub fn rows(&self) -> Arc<Vec<&'static ResourceInfo>> {
        self.rows.read().map(|r| r.1.clone()).unwrap_or_default()
    }

    /// Whether any served CRD is being deleted.
    pub fn any_terminating(&self) -> bool {
        self.terminating.read().is_ok_and(|t| !t.is_empty())
    }

    /// Resolves once a reload found a CRD being deleted (at once if one
    /// did since the last call).
    pub async fn cleanup_wanted(&self) {
        self.cleanup.notified().await;
    }

    /// Whether `info` is a custom resource whose CRD is being deleted.
    pub fn is_terminating(&self, info: &ResourceInfo) -> bool {
        let Some(custom) = info.custom else { return false };
        self.terminating.read().is_ok_and(|t| t.contains(&custom.crd_name))
    }

    /// Serves the rows of `crds` (stored objects, listed at `revision`;
    /// ignored if older than the rows served): established CRDs, those
    /// being deleted included (their objects are read and deleted while
    /// [`cleanup`] runs). A CRD that cannot be served is logged and skipped
    /// (admission refuses such CRDs, so only a foreign writer makes one).
    pub fn set(&self, crds: &[Value], revision: Revision) {
        let mut rows = Vec::new();
        let mut terminating = HashSet::new();
        for crd in crds {
            let established = crd
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Established" && c["status"] == "True");
            if crd.pointer("/metadata/deletionTimestamp").is_some() {
                terminating.insert(meta_str(crd, "name").unwrap_or_default().to_string());
            }
            if !established {
                continue;
            }
            match rows_of(crd) {
                Ok(r) => rows.extend(r),
                Err(e) => tracing::warn!(error = %e, "custom resource not served"),
            }
        }
        if let Ok(mut slot) = self.rows.write() {
            if revision >= slot.0 {
                *slot = (revision, Arc::new(rows));
                let any = !terminating.is_empty();
                if let Ok(mut t) = self.terminating.write() {
                    *t = terminating;
                }
                if any {
                    self.cleanup.notify_one();
                }
            }
        }
    }
}

/// The rows of one CRD's served versions.
fn rows_of(crd: &Value) -> Result<Vec<&'static ResourceInfo>, Error> {
    let spec = crd.get("spec").cloned().unwrap_or_default();
    let crd_name = meta_str(crd, "name").unwrap_or_default().to_string();
    let names = |k: &str| crd.pointer(&format!("/spec/names/{k}")).and_then(Value::as_str).unwrap_or_default();
    let list = |k: &str| -> Vec<String> {
        let v = crd.pointer(&format!("/spec/names/{k}")).and_then(Value::as_array);
        v.into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
    };
    let mut out = Vec::new();
    for version in definition::served_versions(crd) {
        let name = version.get("name").and_then(Value::as_str).unwrap_or_default();
        let identity = format!("{name}\n{spec}");
        if let Some(row) = intern::find(&identity) {
            out.push(row);
            continue;
        }
        let at = format!("{crd_name} version {name}");
        let empty = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        let raw = version.pointer("/schema/openAPIV3Schema").unwrap_or(&empty);
        let schema = schema::parse(raw, &at).map_err(|source| Error::Schema { crd: crd_name.clone(), source })?;
        let cols = version.get("additionalPrinterColumns").and_then(Value::as_array).map(Vec::as_slice);
        let columns = columns::parse(cols.unwrap_or_default())
            .map_err(|source| Error::Columns { crd: crd_name.clone(), source })?;
        let sub = |k: &str| version.pointer(&format!("/subresources/{k}")).is_some_and(|v| !v.is_null());
        let scale = version.pointer("/subresources/scale").filter(|v| !v.is_null()).map(|s| ScalePaths {
            spec_replicas: s["specReplicasPath"].as_str().unwrap_or_default().into(),
            status_replicas: s["statusReplicasPath"].as_str().unwrap_or_default().into(),
            label_selector: s["labelSelectorPath"].as_str().map(str::to_string),
        });
        let mut subresources = Vec::new();
        if sub("status") {
            subresources.push(Subresource::Status);
        }
        if scale.is_some() {
            subresources.push(Subresource::Scale);
        }
        let custom = Custom {
            identity: identity.clone(),
            crd_name: crd_name.clone(),
            list_kind: names("listKind").to_string(),
            storage_version: definition::storage_version(crd).to_string(),
            schema,
            openapi: raw.clone(),
            columns,
            scale,
        };
        let row = intern::Row {
            group: text(crd, "/spec/group"),
            version: name.to_string(),
            kind_name: names("kind").to_string(),
            plural: names("plural").to_string(),
            singular: names("singular").to_string(),
            namespaced: text(crd, "/spec/scope") == "Namespaced",
            short_names: list("shortNames"),
            categories: list("categories"),
            subresources,
            custom,
        };
        out.push(intern::intern(row).ok_or(Error::TooManyRows)?);
    }
    Ok(out)
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Why `crd`'s names clash with a served resource of another CRD or a
/// built-in one (None: they are accepted).
pub fn conflict(served: &[&'static ResourceInfo], crd: &Value) -> Option<String> {
    let (group, name) = (text(crd, "/spec/group"), meta_str(crd, "name").unwrap_or_default());
    let plural = text(crd, "/spec/names/plural");
    let kind = text(crd, "/spec/names/kind");
    let builtin = super::registry::RESOURCES.iter().filter(|r| r.group == group);
    let others = served.iter().copied().filter(|r| r.group == group && r.custom.is_some_and(|c| c.crd_name != name));
    for r in builtin.chain(others) {
        if r.plural == plural {
            return Some(format!("\"{plural}\" is already in use"));
        }
        if r.kind_name == kind {
            return Some(format!("\"{kind}\" is already in use"));
        }
    }
    None
}

/// Admission of a CRD write: the server-owned status (see
/// [`definition::set_status`]).
pub fn admit(state: &ApiState, crd: &mut Value, previous: Option<&Value>) {
    let why = conflict(&state.crds.rows(), crd);
    definition::set_status(crd, previous, why, &super::objects::now_rfc3339());
}

/// Re-reads the stored CRDs and serves their rows.
pub async fn reload(state: &ApiState) -> Result<(), ApiError> {
    load(state).await.map(|_| ())
}

/// [`reload`], returning the revision of the list it served.
async fn load(state: &ApiState) -> Result<Revision, ApiError> {
    let info = by_kind(Kind::CustomResourceDefinition);
    let prefix = store_prefix();
    let (kvs, rev) = state.store.list(&prefix).await.map_err(|e| ApiError::from_store(info, "", "list", &prefix, e))?;
    let crds = kvs.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    state.crds.set(&crds, rev);
    Ok(rev)
}

/// Where the CRDs are stored.
fn store_prefix() -> String {
    by_kind(Kind::CustomResourceDefinition).prefix(None)
}

/// Reloads the CRDs, then keeps them in step with the store in a task
/// ([`sync::follow`]) until `token` is cancelled.
pub async fn start_sync(state: &Arc<ApiState>, token: &CancellationToken) -> Result<(), ApiError> {
    let rev = load(state).await?;
    let (state2, token2) = (state.clone(), token.clone());
    tokio::spawn(async move { cleanup::run(&state2, token2).await });
    let (state, token) = (state.clone(), token.clone());
    tokio::spawn(async move { sync::follow(&state, Some(rev), token).await });
    Ok(())
}

/// Checks (defaults, prunes, validates) a custom resource against its
/// version's schema; the causes of a 422.
pub fn check_object(info: &ResourceInfo, obj: &mut Value) -> Vec<Cause> {
    match info.custom {
        Some(c) => check::check(&c.schema, obj),
        None => Vec::new(),
    }
}

/// `obj` with `info`'s `apiVersion` (upstream's `None` conversion: versions
/// differ in name only).
pub fn to_version(info: &ResourceInfo, obj: &mut Value) {
    if info.custom.is_some() {
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), json!(info.api_version()));
        }
    }
}

/// `obj` as stored: with the storage version's `apiVersion`.
pub fn to_storage(info: &ResourceInfo, obj: &mut Value) {
    if let (Some(c), Some(map)) = (info.custom, obj.as_object_mut()) {
        map.insert("apiVersion".into(), json!(format!("{}/{}", info.group, c.storage_version)));
    }
}

/// The JSON pointer of a simple `.a.b` path (scale paths).
pub fn pointer_of(path: &str) -> String {
    path.split('.').filter(|s| !s.is_empty()).fold(String::new(), |mut out, seg| {
        out.push('/');
        out.push_str(&seg.replace('~', "~0").replace('/', "~1"));
        out
    })
}

/// Sets the value at `pointer`, creating the objects on the way (a
/// non-object on the way is replaced).
pub fn set_pointer(obj: &mut Value, pointer: &str, value: Value) {
    let mut cur = obj;
    let segs: Vec<String> = pointer.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
    let Some((last, path)) = segs.split_last() else { return };
    for seg in path {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Value::Object(m) = cur else { return };
        cur = m.entry(seg.clone()).or_insert_with(|| json!({}));
    }
    if !cur.is_object() {
        *cur = json!({});
    }
    if let Some(m) = cur.as_object_mut() {
        m.insert(last.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_rows_stored_at_the_storage_version() {
        let crd = json!({"metadata": {"name": "things.a.io"}, "spec": {"group": "a.io", "scope": "Cluster",
            "names": {"plural": "things", "singular": "thing", "kind": "Thing", "listKind": "ThingList"},
            "versions": [
                {"name": "v1alpha1", "served": true, "storage": false},
                {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object"}}},
                {"name": "v0", "served": false, "storage": false}]},
            "status": {"conditions": [{"type": "Established", "status": "True"}]}});
        let rows = rows_of(&crd).expect("rows");
        let versions: Vec<&str> = rows.iter().map(|r| r.version).collect();
        assert_eq!(versions, ["v1", "v1alpha1"]);
        assert!(rows[0].has_status() && !rows[1].has_status() && !rows[0].namespaced);
        assert!(std::ptr::eq(rows[0], rows_of(&crd).expect("again")[0]), "interned");
        let mut obj = json!({"apiVersion": "a.io/v1alpha1", "kind": "Thing"});
        to_storage(rows[1], &mut obj);
        assert_eq!(obj["apiVersion"], "a.io/v1");
        to_version(rows[1], &mut obj);
        assert_eq!(obj["apiVersion"], "a.io/v1alpha1");
        assert_eq!(rows[1].key(None, "x"), rows[0].key(None, "x"));
        let served = Served::default();
        served.set(std::slice::from_ref(&crd), 5);
        assert_eq!(served.rows().len(), 2);
        assert_eq!(
            conflict(
                &served.rows(),
                &json!({"metadata": {"name": "other.a.io"},
            "spec": {"group": "a.io", "names": {"plural": "others", "kind": "Thing"}}})
            ),
            Some("\"Thing\" is already in use".into())
        );
        let mut gone = crd.clone();
        gone["metadata"]["deletionTimestamp"] = json!("t");
        served.set(&[gone.clone()], 4);
        assert!(!served.is_terminating(rows[0]), "an older list is not applied");
        served.set(&[gone], 5);
        assert_eq!(served.rows().len(), 2, "served while its objects are deleted");
        assert!(served.is_terminating(rows[0]) && served.is_terminating(rows[1]));
        served.set(&[], 6);
        assert!(served.rows().is_empty() && !served.is_terminating(rows[0]));
    }

    #[test]
    fn scale_paths_become_pointers_and_are_set() {
        assert_eq!(pointer_of(".spec.replicas"), "/spec/replicas");
        let mut obj = json!({"spec": {"other": 1}});
        set_pointer(&mut obj, "/spec/size/count", json!(3));
        set_pointer(&mut obj, "/status", json!(1));
        assert_eq!(obj, json!({"spec": {"other": 1, "size": {"count": 3}}, "status": 1}));
    }
}
