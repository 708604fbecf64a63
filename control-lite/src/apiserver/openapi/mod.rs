//! OpenAPI documents, computed from the resource table and the k8s-openapi
//! types, never kept by hand.
//!
//! `/openapi/v3` lists one document per served group/version, at
//! `/openapi/v3/<gv>?hash=<content hash>`. Each holds:
//! - `paths` ([`paths`]): a PATCH operation per resource, enough for kubectl
//!   to detect server-side field validation and for explain to find a
//!   resource's kind, with no request body (see [`paths`] for why: kubectl's
//!   client-side apply must keep using its compiled-in patch strategies);
//! - `components.schemas` ([`schemas`]): the kinds' schemas with their field
//!   descriptions, generated from the k8s-openapi types, which is what
//!   `kubectl explain` prints.
//!
//! The documents are built once, on first use, and served from memory with
//! an `ETag` of their content; a request that names the current hash may be
//! cached for good (`Cache-Control: public, immutable`), as upstream does.
//!
//! `/openapi/v2` stays an empty document. kubectl 1.32 reads it only: for
//! `explain` when `/openapi/v3` does not answer, or with
//! `--output plaintext-openapiv2`; for client-side validation, of kinds whose
//! v3 PATCH operation lacks `fieldValidation` (kinds not served here); and in
//! client-side apply, to pick a patch type when v3 offers none (an empty
//! document makes it use its compiled-in types, as wanted).

mod paths;
mod schemas;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::discovery::negotiate::if_none_match;
use super::registry::{group_versions, group_versions_of, ResourceInfo, RESOURCES};

/// `api/v1` or `apis/<group>/<version>`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// FNV-1a over the rendered document: stable across restarts.
fn hash(body: &[u8]) -> String {
    let h = body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    format!("{h:016X}")
}

/// Content type of `/openapi/v2` (gnostic's protobuf `Document`; kubectl asks
/// for the `@v1.0` spelling, which Go's MIME parser rejects in a response).
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2`: an empty protobuf `openapi_v2.Document` (zero bytes is a
/// valid encoding of any message: every field unset).
///
/// An empty document holds no schema, so for kinds not served here kubectl
/// skips client-side validation and reports the real problem ("no matches
/// for kind ...") instead of failing to download OpenAPI. Known kinds are
/// validated by the server (Strict).
pub fn v2_response() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, OPENAPI_V2_PROTOBUF)
        .body(Body::empty())
        .unwrap_or_default()
}

/// `/openapi/v3/<gv path>` of the built-in resources (None if not served).
fn group_version(group: &str, version: &str) -> Option<Value> {
    let rows: Vec<_> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    group_version_of(group, version, &rows)
}

/// The document of `rows` (one group/version; None if empty).
fn group_version_of(group: &str, version: &str, rows: &[&ResourceInfo]) -> Option<Value> {
    if rows.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::discovery::GIT_VERSION},
        "paths": paths::paths(group, version, rows),
        "components": {"schemas": schemas::components(rows)},
    }))
}

/// One rendered document.
struct Rendered {
    body: Bytes,
    hash: String,
}

impl Rendered {
    fn of(doc: &Value) -> Rendered {
        let body = doc.to_string();
        Rendered { hash: hash(body.as_bytes()), body: Bytes::from(body) }
    }
}

/// Every v3 document, rendered once.
struct Documents {
    root: Rendered,
    /// By gv path (`api/v1`, `apis/apps/v1`).
    group_versions: HashMap<String, Rendered>,
}

fn build() -> Documents {
    let started = Instant::now();
    let mut paths = Map::new();
    let mut docs = HashMap::new();
    for (g, v) in group_versions() {
        let Some(doc) = group_version(g, v) else {
            continue;
        };
        let rendered = Rendered::of(&doc);
        let p = gv_path(g, v);
        let url = format!("/openapi/v3/{p}?hash={}", rendered.hash);
        paths.insert(p.clone(), json!({"serverRelativeURL": url}));
        docs.insert(p, rendered);
    }
    let bytes: usize = docs.values().map(|d| d.body.len()).sum();
    tracing::info!(documents = docs.len(), bytes, ms = started.elapsed().as_millis(), "OpenAPI v3 documents built");
    Documents { root: Rendered::of(&json!({"paths": paths})), group_versions: docs }
}

fn documents() -> &'static Documents {
    static DOCUMENTS: OnceLock<Documents> = OnceLock::new();
    DOCUMENTS.get_or_init(build)
}

/// `/openapi/v3` and below (`rest` is the path after it, `""` for the root),
/// None if there is no such document. `query` may name the hash the root
/// listed; `headers` may carry `If-None-Match`.
pub fn v3_response(rest: &str, query: Option<&str>, headers: &HeaderMap) -> Option<Response> {
    v3_response_with(rest, query, headers, &[], &CustomCache::default())
}

/// The documents of one set of custom rows: the root listing them with the
/// built-in ones, and their group/versions' documents by gv path.
struct CustomDocuments {
    root: Rendered,
    group_versions: HashMap<String, Rendered>,
}

/// The custom documents of the rows served last, rendered once per set of
/// rows (they change only with the CRDs; rows are interned, so the same
/// rows are the same pointers).
#[derive(Default)]
pub struct CustomCache {
    last: Mutex<Option<(Vec<&'static ResourceInfo>, Arc<CustomDocuments>)>>,
}

impl std::fmt::Debug for CustomCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomCache").finish_non_exhaustive()
    }
}

impl CustomCache {
    /// The documents of `custom`: the cached ones if the rows are the same,
    /// else rendered now (outside the lock) and cached.
    fn get(&self, custom: &[&'static ResourceInfo]) -> Arc<CustomDocuments> {
        let same = |rows: &[&'static ResourceInfo]| {
            rows.len() == custom.len() && rows.iter().zip(custom).all(|(a, b)| std::ptr::eq(*a, *b))
        };
        if let Some((rows, docs)) = &*self.last.lock().unwrap_or_else(PoisonError::into_inner) {
            if same(rows) {
                return docs.clone();
            }
        }
        let docs = Arc::new(custom_documents(custom));
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((custom.to_vec(), docs.clone()));
        docs
    }
}

/// The documents of the `custom` rows' group/versions and the root listing
/// them with the built-in ones.
fn custom_documents(custom: &[&'static ResourceInfo]) -> CustomDocuments {
    let mut docs = HashMap::new();
    for (g, v) in group_versions_of(custom) {
        // A CRD may add kinds to a built-in group/version: one document for both.
        let rows: Vec<&ResourceInfo> =
            RESOURCES.iter().chain(custom.iter().copied()).filter(|r| r.group == g && r.version == v).collect();
        if let Some(doc) = group_version_of(g, v, &rows) {
            docs.insert(gv_path(g, v), Rendered::of(&doc));
        }
    }
    let mut root: Value = serde_json::from_slice(&documents().root.body).unwrap_or_else(|_| json!({"paths": {}}));
    if let Some(paths) = root["paths"].as_object_mut() {
        for (p, d) in &docs {
            paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", d.hash)}));
        }
    }
    CustomDocuments { root: Rendered::of(&root), group_versions: docs }
}

/// [`v3_response`] with the `custom` resources' documents too (from `cache`).
pub fn v3_response_with(
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    custom: &[&'static ResourceInfo],
    cache: &CustomCache,
) -> Option<Response> {
    let docs = documents();
    let extra = (!custom.is_empty()).then(|| cache.get(custom));
    let doc = match (&extra, rest.is_empty()) {
        (Some(extra), true) => &extra.root,
        (None, true) => &docs.root,
        (Some(extra), false) => extra.group_versions.get(rest).or_else(|| docs.group_versions.get(rest))?,
        (None, false) => docs.group_versions.get(rest)?,
    };
    let asked = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "hash")
        .map(|(_, v)| v.into_owned());
    let etag = format!("\"{}\"", doc.hash);
    let if_none = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    let mut resp = if if_none_match(if_none, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, doc.body.clone()).into_response()
    };
    let cache = if asked.as_deref() == Some(doc.hash.as_str()) {
        "public, immutable, max-age=31536000"
    } else {
        "no-cache, private"
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Some(resp)
}
