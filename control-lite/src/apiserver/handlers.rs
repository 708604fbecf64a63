//! HTTP glue for resource paths: parses `/api/...` and `/apis/...` into a
//! [`Target`], reads query options and bodies, dispatches to `crud`, and
//! renders objects, lists and Tables.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::crud::{self, DeleteOptions, UpdateScope};
use super::objects::{meta_str, FieldValidation, WriteOptions};
use super::patch::{self, PatchType};
use super::registry::{lookup, ResourceInfo, Subresource};
use super::selectors::{FieldSelector, LabelSelector, Selectors};
use super::status::{success, ApiError, Result};
use super::table::{self, IncludeObject};
use super::{discovery, logs, openapi, subresources, watch, ApiState};

/// A parsed resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The resource.
    pub info: &'static ResourceInfo,
    /// Namespace segment, if any.
    pub namespace: Option<String>,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource, if any.
    pub sub: Option<Subresource>,
}

/// What a path under `/api` or `/apis` addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1`, `/apis/<g>/<v>`.
    Resources(String, String),
    /// An object or collection.
    Resource(Target),
}

/// Parses a request path into a route (None: not served).
pub fn parse_path(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api"] => return Some(Route::CoreVersions),
        ["apis"] => return Some(Route::Groups),
        ["apis", g] => return Some(Route::Group(g.to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    if rest.is_empty() {
        return Some(Route::Resources(group.into(), version.into()));
    }
    let namespaced =
        rest.len() >= 3 && rest[0] == "namespaces" && lookup(group, version, rest[2]).is_some_and(|r| r.namespaced);
    let (namespace, rest) = if namespaced { (Some(rest[1].to_string()), &rest[2..]) } else { (None, rest) };
    let info = lookup(group, version, rest[0])?;
    let name = rest.get(1).map(|s| s.to_string());
    let sub = match rest.get(2) {
        Some(s) => Some(Subresource::parse(s).filter(|sub| info.has_subresource(*sub))?),
        None => None,
    };
    if rest.len() > 3 {
        return None;
    }
    Some(Route::Resource(Target { info, namespace, name, sub }))
}

/// Query parameters as a map.
pub type Params = HashMap<String, String>;

fn flag(params: &Params, key: &str) -> bool {
    matches!(params.get(key).map(String::as_str), Some("true" | "1"))
}

fn write_options(params: &Params) -> Result<WriteOptions> {
    Ok(WriteOptions {
        dry_run: params.get("dryRun").is_some_and(|d| d == "All"),
        field_validation: FieldValidation::parse(params.get("fieldValidation").map(String::as_str))?,
    })
}

/// Label and field selectors from the query.
pub fn selectors(params: &Params) -> Result<Selectors> {
    let bad = |e: super::selectors::Error| ApiError::BadRequest(e.to_string());
    Ok(Selectors {
        labels: LabelSelector::parse(params.get("labelSelector").map(String::as_str).unwrap_or_default())
            .map_err(bad)?,
        fields: FieldSelector::parse(params.get("fieldSelector").map(String::as_str).unwrap_or_default())
            .map_err(bad)?,
    })
}

/// Table rendering requested by `Accept`, with the row object mode.
pub fn table_mode(headers: &HeaderMap, params: &Params) -> Option<IncludeObject> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let first = accept.split(',').next().unwrap_or_default();
    if !first.contains("as=Table") {
        return None;
    }
    Some(match params.get("includeObject").map(String::as_str) {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    })
}

/// Parses a JSON (or YAML) request body.
pub fn parse_body(info: &ResourceInfo, headers: &HeaderMap, body: &[u8]) -> Result<Value> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ct.starts_with("application/yaml") {
        return serde_yaml_ng::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("couldn't get version/kind; yaml parse error: {e}")));
    }
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        return super::protobuf::to_json(info.kind, body).map_err(|e| match e {
            super::protobuf::Error::Kind(_) => ApiError::UnsupportedMediaType(e.to_string()),
            other => ApiError::BadRequest(format!("couldn't decode protobuf body: {other}")),
        });
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("couldn't get version/kind; json parse error: {e}")))
}

/// Duplicate keys in a JSON body, per `fieldValidation`: an error when
/// Strict, warnings when Warn.
fn duplicates(info: &ResourceInfo, params: &Params, body: &[u8]) -> Result<Vec<String>> {
    let fv = FieldValidation::parse(params.get("fieldValidation").map(String::as_str))?;
    if fv == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let dups = super::schema::duplicate_fields(body);
    if fv == FieldValidation::Strict && !dups.is_empty() {
        let causes = dups
            .iter()
            .map(|f| super::status::Cause {
                reason: "FieldValueDuplicate",
                field: format!(".{f}"),
                message: "duplicate field".into(),
            })
            .collect();
        let name = serde_json::from_slice::<Value>(body).ok();
        let name = name.as_ref().and_then(|b| meta_str(b, "name")).unwrap_or_default();
        return Err(super::status::invalid(info, name, causes));
    }
    Ok(dups.iter().map(|f| format!("duplicate field \"{f}\"")).collect())
}

/// A JSON response with optional `Warning` headers.
pub fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut resp = (code, body.to_string()).into_response();
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

fn table_response(body: &Value) -> Response {
    let mut resp = (StatusCode::OK, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json;as=Table;v=v1;g=meta.k8s.io"));
    resp
}

fn object_response(
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

/// Entry point of every non-fixed path.
pub async fn dispatch(
    State(state): State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Query::<Params>::try_from_uri(&uri).map(|q| q.0).unwrap_or_default();
    match route(&state, &method, &uri, &headers, &params, &body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn route(
    state: &ApiState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    params: &Params,
    body: &[u8],
) -> Result<Response> {
    let path = uri.path();
    if path == "/openapi/v2" {
        return Ok(openapi::v2_response());
    }
    if let Some(rest) = path.strip_prefix("/openapi/v3") {
        let rest = rest.trim_matches('/');
        let doc = if rest.is_empty() {
            Some(openapi::root())
        } else if let Some(v) = rest.strip_prefix("api/") {
            openapi::group_version("", v)
        } else {
            rest.strip_prefix("apis/").and_then(|gv| gv.split_once('/')).and_then(|(g, v)| openapi::group_version(g, v))
        };
        return doc.map(|d| json_response(StatusCode::OK, &d, &[])).ok_or(ApiError::NoResource);
    }
    let route = parse_path(path).ok_or(ApiError::NoResource)?;
    let discovery_doc = match &route {
        Route::CoreVersions => Some(discovery::core_versions(&state.server_address)),
        Route::Groups => Some(discovery::group_list()),
        Route::Group(g) => Some(discovery::group(g).ok_or(ApiError::NoResource)?),
        Route::Resources(g, v) => Some(discovery::resource_list(g, v).ok_or(ApiError::NoResource)?),
        Route::Resource(_) => None,
    };
    if let Some(doc) = discovery_doc {
        return Ok(json_response(StatusCode::OK, &doc, &[]));
    }
    let Route::Resource(t) = route else {
        return Err(ApiError::NoResource);
    };
    resource(state, method, t, headers, params, body).await
}

async fn resource(
    state: &ApiState,
    method: &Method,
    t: Target,
    headers: &HeaderMap,
    params: &Params,
    body: &[u8],
) -> Result<Response> {
    let info = t.info;
    let ns = t.namespace.as_deref();
    let mode = table_mode(headers, params);
    match (method.clone(), t.name.as_deref(), t.sub) {
        (Method::GET, None, None) if flag(params, "watch") => {
            watch::serve(state, info, ns, selectors(params)?, params, mode).await
        }
        (Method::GET, Some(name), None) if flag(params, "watch") => {
            let mut sel = selectors(params)?;
            sel.fields.0.push(("metadata.name".into(), true, name.to_string()));
            watch::serve(state, info, ns, sel, params, mode).await
        }
        (Method::GET, None, None) => {
            let (items, rev) = crud::list(state, info, ns, &selectors(params)?).await?;
            Ok(match mode {
                Some(m) => table_response(&table::table(info, &items, m, &rev.to_string(), true)),
                None => {
                    let list = json!({
                        "kind": format!("{}List", info.kind_name),
                        "apiVersion": info.api_version(),
                        "metadata": {"resourceVersion": rev.to_string()},
                        "items": items,
                    });
                    json_response(StatusCode::OK, &list, &[])
                }
            })
        }
        (Method::GET, Some(name), None | Some(Subresource::Status)) => {
            let (obj, _) = crud::get(state, info, ns, name).await?;
            Ok(object_response(StatusCode::OK, info, &obj, mode, &[]))
        }
        (Method::POST, None, None) => {
            let raw = body;
            let body = parse_body(info, headers, body)?;
            let ns = ns.map(str::to_string).or_else(|| {
                info.namespaced
                    .then(|| meta_str(&body, "namespace").filter(|n| !n.is_empty()).unwrap_or("default").to_string())
            });
            let dups = duplicates(info, params, raw)?;
            let (obj, mut warnings) = crud::create(state, info, ns.as_deref(), body, write_options(params)?).await?;
            warnings.extend(dups);
            Ok(json_response(StatusCode::CREATED, &obj, &warnings))
        }
        (Method::PUT, Some(name), sub @ (None | Some(Subresource::Status))) => {
            let dups = duplicates(info, params, body)?;
            let body = parse_body(info, headers, body)?;
            let scope = if sub.is_some() { UpdateScope::Status } else { UpdateScope::Main };
            let (obj, mut warnings) =
                crud::update(state, info, ns, name, scope, write_options(params)?, |_| Ok(body.clone())).await?;
            warnings.extend(dups);
            Ok(json_response(StatusCode::OK, &obj, &warnings))
        }
        (Method::PATCH, Some(name), sub @ (None | Some(Subresource::Status))) => {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let kind = PatchType::from_content_type(ct).map_err(patch_error)?;
            let scope = if sub.is_some() { UpdateScope::Status } else { UpdateScope::Main };
            let dups = if kind == PatchType::Json { Vec::new() } else { duplicates(info, params, body)? };
            let (obj, mut warnings) = crud::update(state, info, ns, name, scope, write_options(params)?, |current| {
                patch::apply(kind, current, body).map_err(patch_error)
            })
            .await?;
            warnings.extend(dups);
            Ok(json_response(StatusCode::OK, &obj, &warnings))
        }
        (Method::DELETE, Some(name), None) => {
            let opts = delete_options(headers, params, body)?;
            let obj = crud::delete(state, info, ns, name, &opts).await?;
            Ok(json_response(StatusCode::OK, &obj, &[]))
        }
        (Method::DELETE, None, None) => {
            let opts = delete_options(headers, params, body)?;
            let (items, rev) = crud::list(state, info, ns, &selectors(params)?).await?;
            let mut out = Vec::new();
            for item in items {
                let name = meta_str(&item, "name").unwrap_or_default().to_string();
                let item_ns = meta_str(&item, "namespace").map(str::to_string);
                match crud::delete(state, info, item_ns.as_deref(), &name, &opts).await {
                    Ok(obj) => out.push(obj),
                    Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            let list = json!({"kind": format!("{}List", info.kind_name), "apiVersion": info.api_version(),
                "metadata": {"resourceVersion": rev.to_string()}, "items": out});
            Ok(json_response(StatusCode::OK, &list, &[]))
        }
        (Method::GET, Some(name), Some(Subresource::Scale)) => subresources::get_scale(state, info, ns, name).await,
        (Method::PUT, Some(name), Some(Subresource::Scale)) => {
            let body = parse_body(info, headers, body)?;
            subresources::update_scale(state, info, ns, name, write_options(params)?, |_| Ok(body.clone())).await
        }
        (Method::PATCH, Some(name), Some(Subresource::Scale)) => {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let kind = PatchType::from_content_type(ct).map_err(patch_error)?;
            subresources::update_scale(state, info, ns, name, write_options(params)?, |scale| {
                patch::apply(kind, scale, body).map_err(patch_error)
            })
            .await
        }
        (Method::POST, Some(name), Some(Subresource::Binding)) => {
            let body = parse_body(info, headers, body)?;
            subresources::bind(state, info, ns, name, &body, write_options(params)?).await?;
            Ok(json_response(StatusCode::CREATED, &success(StatusCode::CREATED), &[]))
        }
        (Method::GET, Some(name), Some(Subresource::Log)) => {
            logs::proxy(state, ns.unwrap_or("default"), name, params).await
        }
        (m, _, _) => Err(ApiError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource: {m}"
        ))),
    }
}

fn delete_options(headers: &HeaderMap, params: &Params, body: &[u8]) -> Result<DeleteOptions> {
    let mut opts = DeleteOptions {
        grace_period: match params.get("gracePeriodSeconds") {
            Some(g) => Some(g.parse().map_err(|_| ApiError::BadRequest(format!("invalid gracePeriodSeconds {g:?}")))?),
            None => None,
        },
        dry_run: params.get("dryRun").is_some_and(|d| d == "All"),
        orphan: params.get("propagationPolicy").is_some_and(|p| p == "Orphan")
            || params.get("orphanDependents").is_some_and(|o| o == "true"),
        ..DeleteOptions::default()
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if ct.starts_with("application/vnd.kubernetes.protobuf") {
            return Err(ApiError::UnsupportedMediaType("protobuf DeleteOptions are not supported; send JSON".into()));
        }
        let parsed: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("couldn't decode DeleteOptions: {e}")))?;
        opts = opts.merge_body(&parsed);
    }
    Ok(opts)
}

fn patch_error(e: patch::Error) -> ApiError {
    match e {
        patch::Error::ApplyUnsupported | patch::Error::UnknownType(_) => ApiError::UnsupportedMediaType(e.to_string()),
        patch::Error::Body(_) => ApiError::BadRequest(e.to_string()),
        patch::Error::JsonPatch(_) => ApiError::UnprocessablePatch(e.to_string()),
    }
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

    type Parsed = (String, Option<String>, Option<String>, Option<Subresource>);

    fn target(path: &str) -> Option<Parsed> {
        match parse_path(path)? {
            Route::Resource(t) => Some((t.info.plural.to_string(), t.namespace, t.name, t.sub)),
            _ => None,
        }
    }

    #[test]
    fn paths_parse_into_targets() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(target("/api/v1/pods"), Some(("pods".into(), None, None, None)));
        assert_eq!(target("/api/v1/namespaces/default/pods"), Some(("pods".into(), s("default"), None, None)));
        assert_eq!(
            target("/api/v1/namespaces/default/pods/p/log"),
            Some(("pods".into(), s("default"), s("p"), Some(Subresource::Log)))
        );
        assert_eq!(target("/api/v1/namespaces/default"), Some(("namespaces".into(), None, s("default"), None)));
        assert_eq!(
            target("/api/v1/namespaces/default/status"),
            Some(("namespaces".into(), None, s("default"), Some(Subresource::Status)))
        );
        assert_eq!(
            target("/apis/apps/v1/namespaces/x/deployments/web/scale"),
            Some(("deployments".into(), s("x"), s("web"), Some(Subresource::Scale)))
        );
        assert_eq!(target("/api/v1/nodes/n1/status"), Some(("nodes".into(), None, s("n1"), Some(Subresource::Status))));
        assert_eq!(target("/api/v1/configmaps/x/scale"), None);
        assert_eq!(target("/api/v1/widgets"), None);
        assert_eq!(parse_path("/apis/apps/v1"), Some(Route::Resources("apps".into(), "v1".into())));
        assert_eq!(parse_path("/api"), Some(Route::CoreVersions));
    }

    #[test]
    fn table_mode_follows_accept_and_include_object() {
        let mut h = HeaderMap::new();
        let p = Params::new();
        assert_eq!(table_mode(&h, &p), None);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
        );
        assert_eq!(table_mode(&h, &p), Some(IncludeObject::Metadata));
        let p: Params = [("includeObject".to_string(), "Object".to_string())].into();
        assert_eq!(table_mode(&h, &p), Some(IncludeObject::Object));
    }
}
