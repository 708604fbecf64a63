//! POST (create), PUT (update) and PATCH of objects and their `/status`.

use axum::http::StatusCode;
use axum::response::Response;

use super::body::{duplicates, ensure_object_size, parse};
use super::path::Target;
use super::{name, Req};
use crate::apiserver::crud::{self, UpdateScope};
use crate::apiserver::objects::meta_str;
use crate::apiserver::options::WriteParams;
use crate::apiserver::patch::{self, PatchType};
use crate::apiserver::response::json_response;
use crate::apiserver::status::{ApiError, Result};

/// POST to a collection.
pub async fn create(r: &Req<'_>, t: &Target) -> Result<Response> {
    let info = t.info;
    let params = WriteParams::parse(r.query)?;
    let body = parse(info, r.headers, &r.body)?;
    ensure_object_size(&body, r.state.config.max_object_bytes)?;
    let ns = t.namespace.clone().or_else(|| {
        info.namespaced.then(|| meta_str(&body, "namespace").filter(|n| !n.is_empty()).unwrap_or("default").to_string())
    });
    let dups = duplicates(info, params.write.field_validation, &r.body)?;
    let (obj, mut warnings) = crud::create(r.state, info, ns.as_deref(), body, params.write).await?;
    warnings.extend(dups);
    Ok(json_response(StatusCode::CREATED, &obj, &warnings))
}

/// PUT an object or its `/status`.
pub async fn update(r: &Req<'_>, t: &Target, scope: UpdateScope) -> Result<Response> {
    let params = WriteParams::parse(r.query)?;
    let dups = duplicates(t.info, params.write.field_validation, &r.body)?;
    let body = parse(t.info, r.headers, &r.body)?;
    ensure_object_size(&body, r.state.config.max_object_bytes)?;
    let (obj, mut warnings) =
        crud::update(r.state, t.info, t.namespace.as_deref(), name(t), scope, params.write, |_| Ok(body.clone()))
            .await?;
    warnings.extend(dups);
    Ok(json_response(StatusCode::OK, &obj, &warnings))
}

/// PATCH an object or its `/status`; the result must stay within the object size limit.
pub async fn patch(r: &Req<'_>, t: &Target, scope: UpdateScope) -> Result<Response> {
    let params = WriteParams::parse(r.query)?;
    let kind = PatchType::from_content_type(r.content_type()).map_err(patch_error)?;
    let dups =
        if kind == PatchType::Json { Vec::new() } else { duplicates(t.info, params.write.field_validation, &r.body)? };
    let limits = r.state.config.patch_limits();
    let (obj, mut warnings) =
        crud::update(r.state, t.info, t.namespace.as_deref(), name(t), scope, params.write, |current| {
            patch::apply(kind, current, &r.body, limits).map_err(patch_error)
        })
        .await?;
    warnings.extend(dups);
    Ok(json_response(StatusCode::OK, &obj, &warnings))
}

/// A patch failure as an API error.
pub fn patch_error(e: patch::Error) -> ApiError {
    match e {
        patch::Error::ApplyUnsupported | patch::Error::UnknownType(_) => ApiError::UnsupportedMediaType(e.to_string()),
        patch::Error::Body(_) => ApiError::BadRequest(e.to_string()),
        patch::Error::JsonPatch(_) => ApiError::UnprocessablePatch(e.to_string()),
        patch::Error::TooManyOperations { .. } | patch::Error::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
    }
}
