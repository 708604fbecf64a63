//! Rendering of responses: objects, lists, Tables, `Status` and streams.
//!
//! A leaf module: it depends only on the pure modules below it (`table`,
//! `registry`, `objects`), never on handlers.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::list_read::PageMeta;
use super::objects::meta_str;
use super::registry::ResourceInfo;
use super::table::{self, IncludeObject};

/// Content type of a server-side Table.
const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// A JSON response with optional `Warning` headers.
pub fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    json_text_response(code, body.to_string(), warnings)
}

/// A JSON response from already rendered text, with optional `Warning` headers.
fn json_text_response(code: StatusCode, body: String, warnings: &[String]) -> Response {
    let mut resp = (code, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for w in warnings {
        let text = format!("299 - {}", Value::from(w.as_str()));
        if let Ok(v) = HeaderValue::from_str(&text) {
            h.append(header::WARNING, v);
        }
    }
    resp
}

/// A `meta.k8s.io/v1` Table response.
pub fn table_response(body: &Value) -> Response {
    let mut resp = (StatusCode::OK, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(TABLE_CONTENT_TYPE));
    resp
}

/// One object, as JSON or (with `mode`) as a one-row Table.
pub fn object_response(
    code: StatusCode,
    info: &ResourceInfo,
    obj: &Value,
    mode: Option<IncludeObject>,
    warnings: &[String],
) -> Response {
    match mode {
        Some(m) => {
            let rv = meta_str(obj, "resourceVersion").unwrap_or_default().to_string();
            table_response(&table::table(info, std::slice::from_ref(obj), m, &rv, true))
        }
        None => json_response(code, obj, warnings),
    }
}

/// The `<Kind>List` of `items` at revision `rev`.
pub fn list_object(info: &ResourceInfo, items: Vec<Value>, rev: i64) -> Value {
    json!({
        "kind": format!("{}List", info.kind_name),
        "apiVersion": info.api_version(),
        "metadata": {"resourceVersion": rev.to_string()},
        "items": items,
    })
}

/// The JSON text of the `<Kind>List` of `items` at revision `rev` (what
/// [`list_object`] renders), written one item at a time: a large list is
/// never held as one tree of values.
pub fn list_text<E>(
    info: &ResourceInfo,
    items: impl Iterator<Item = Result<Value, E>>,
    meta: &PageMeta,
) -> Result<String, E> {
    let mut out = format!(
        r#"{{"kind":{},"apiVersion":{},"metadata":{},"items":["#,
        Value::from(format!("{}List", info.kind_name)),
        Value::from(info.api_version()),
        list_meta(meta),
    );
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item?.to_string());
    }
    out.push_str("]}");
    Ok(out)
}

/// A list, as JSON or (with `mode`) as a Table. Only a Table needs all the
/// items at once; JSON is written one item at a time.
pub fn list_response<E>(
    info: &ResourceInfo,
    items: impl Iterator<Item = Result<Value, E>>,
    meta: &PageMeta,
    mode: Option<IncludeObject>,
) -> Result<Response, E> {
    Ok(match mode {
        Some(m) => {
            let items = items.collect::<Result<Vec<_>, E>>()?;
            let mut table = table::table(info, &items, m, &meta.revision.to_string(), true);
            table["metadata"] = list_meta(meta);
            table_response(&table)
        }
        None => json_text_response(StatusCode::OK, list_text(info, items, meta)?, &[]),
    })
}

/// A list's `ListMeta`: its revision, and the next page's token and the
/// count of items after this page when there is a next page.
fn list_meta(meta: &PageMeta) -> Value {
    let mut out = json!({"resourceVersion": meta.revision.to_string()});
    if let Some(token) = &meta.continue_token {
        out["continue"] = json!(token);
    }
    if let Some(remaining) = meta.remaining {
        out["remainingItemCount"] = json!(remaining);
    }
    out
}

/// A success `Status` response.
pub fn success_response(code: StatusCode) -> Response {
    let body =
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code.as_u16()});
    json_response(code, &body, &[])
}

/// A streamed body response (watch, logs).
pub fn stream_response(body: Body, content_type: &'static str) -> Response {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::{by_kind, Kind};

    fn page(revision: i64) -> PageMeta {
        PageMeta { revision, ..Default::default() }
    }

    #[test]
    fn pages_carry_their_token_and_remaining_count() {
        let meta = PageMeta { revision: 4, continue_token: Some("abc".into()), remaining: Some(7) };
        let text = list_text::<()>(by_kind(Kind::Pod), std::iter::empty(), &meta).unwrap();
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["metadata"], json!({"resourceVersion": "4", "continue": "abc", "remainingItemCount": 7}));
        let resp = list_response::<()>(by_kind(Kind::Pod), std::iter::empty(), &meta, Some(IncludeObject::None));
        assert_eq!(resp.unwrap().status(), StatusCode::OK);
    }

    #[test]
    fn lists_and_warnings_render_like_upstream() {
        let list = list_object(by_kind(Kind::Deployment), vec![json!({"metadata": {"name": "a"}})], 7);
        assert_eq!(list["kind"], "DeploymentList");
        assert_eq!(list["apiVersion"], "apps/v1");
        assert_eq!(list["metadata"]["resourceVersion"], "7");
        for items in [vec![], vec![json!({"metadata": {"name": "a"}}), json!({"metadata": {"name": "b\"c"}, "x": [1]})]]
        {
            let text = list_text::<()>(by_kind(Kind::Service), items.clone().into_iter().map(Ok), &page(9)).unwrap();
            let parsed: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed, list_object(by_kind(Kind::Service), items, 9));
        }
        assert_eq!(list_text(by_kind(Kind::Pod), [Ok(json!({})), Err("bad")].into_iter(), &page(1)), Err("bad"));
        let resp = json_response(StatusCode::CREATED, &json!({}), &["duplicate field \"a\"".into()]);
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(
            resp.headers().get(header::WARNING).and_then(|v| v.to_str().ok()),
            Some("299 - \"duplicate field \\\"a\\\"\"")
        );
        let table =
            list_response::<()>(by_kind(Kind::Pod), std::iter::empty(), &page(3), Some(IncludeObject::None)).unwrap();
        assert_eq!(table.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some(TABLE_CONTENT_TYPE));
    }
}
