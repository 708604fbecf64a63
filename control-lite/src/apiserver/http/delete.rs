//! DELETE of one object and of a collection.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::path::Target;
use super::{name, Req};
use crate::apiserver::crud;
use crate::apiserver::deletion::{self, DeleteOptions};
use crate::apiserver::objects::meta_str;
use crate::apiserver::options::{DeleteQuery, ListOptions, Query};
use crate::apiserver::response::{json_response, list_object};
use crate::apiserver::status::{ApiError, Result};

/// DeleteOptions from the query, overridden by a JSON body if any.
fn delete_options(headers: &HeaderMap, query: &Query, body: &[u8]) -> Result<DeleteOptions> {
    let q = DeleteQuery::parse(query)?;
    let opts = DeleteOptions {
        grace_period: q.grace_period,
        dry_run: q.dry_run,
        orphan: q.orphan,
        ..DeleteOptions::default()
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(opts);
    }
    let ct = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        return Err(ApiError::UnsupportedMediaType("protobuf DeleteOptions are not supported; send JSON".into()));
    }
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("couldn't decode DeleteOptions: {e}")))?;
    Ok(opts.merge_body(&parsed))
}

/// DELETE one object.
pub async fn one(r: &Req<'_>, t: &Target) -> Result<Response> {
    let opts = delete_options(r.headers, r.query, &r.body)?;
    let obj = deletion::delete(r.state, t.info, t.namespace.as_deref(), name(t), &opts).await?;
    Ok(json_response(StatusCode::OK, &obj, &[]))
}

/// DELETE a collection (selectors apply).
pub async fn collection(r: &Req<'_>, t: &Target) -> Result<Response> {
    let opts = delete_options(r.headers, r.query, &r.body)?;
    let list = ListOptions::parse(r.query)?;
    let (items, rev) = crud::list(r.state, t.info, t.namespace.as_deref(), &list.selectors).await?;
    let mut out = Vec::new();
    for item in items {
        let name = meta_str(&item, "name").unwrap_or_default().to_string();
        let item_ns = meta_str(&item, "namespace").map(str::to_string);
        match deletion::delete(r.state, t.info, item_ns.as_deref(), &name, &opts).await {
            Ok(obj) => out.push(obj),
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(StatusCode::OK, &list_object(t.info, out, rev), &[]))
}
