//! POST (create), PUT (update) and PATCH of objects and their `/status`.

use axum::http::{header, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::body::{duplicates, ensure_object_size, parse};
use super::escalation;
use super::path::Target;
use super::{name, Req};
use crate::apiserver::crud::{self, UpdateScope};
use crate::apiserver::objects::{meta_str, FieldManager};
use crate::apiserver::options::WriteParams;
use crate::apiserver::patch::{self, PatchType};
use crate::apiserver::response::json_response;
use crate::apiserver::status::{ApiError, Result};

/// POST to a collection.
pub async fn create(r: &Req<'_>, t: &Target) -> Result<Response> {
    let info = t.info;
    let mut params = r.write_params()?;
    params.write.manager = field_manager(r, &params, "");
    let body = parse(info, r.headers, &r.body)?;
    ensure_object_size(&body, r.state.config.max_object_bytes)?;
    let ns = t.namespace.clone().or_else(|| {
        info.namespaced.then(|| meta_str(&body, "namespace").filter(|n| !n.is_empty()).unwrap_or("default").to_string())
    });
    let dups = duplicates(info, params.write.field_validation, &r.body)?;
    escalation::admit(r.state, r.user, info, ns.as_deref().unwrap_or_default(), &body)?;
    let (obj, mut warnings) = crud::create(r.state, info, ns.as_deref(), body, params.write).await?;
    warnings.extend(dups);
    Ok(json_response(StatusCode::CREATED, &obj, &warnings))
}

/// PUT an object or its `/status`.
pub async fn update(r: &Req<'_>, t: &Target, scope: UpdateScope) -> Result<Response> {
    let mut params = r.write_params()?;
    params.write.manager = field_manager(r, &params, subresource(scope));
    let dups = duplicates(t.info, params.write.field_validation, &r.body)?;
    let body = parse(t.info, r.headers, &r.body)?;
    ensure_object_size(&body, r.state.config.max_object_bytes)?;
    let ns = t.namespace.as_deref();
    let (obj, mut warnings) = crud::update(r.state, t.info, ns, name(t), scope, params.write, |current| {
        admit_rbac(r, t, scope, current, &body)?;
        Ok(body.clone())
    })
    .await?;
    warnings.extend(dups);
    Ok(json_response(StatusCode::OK, &obj, &warnings))
}

/// PATCH an object or its `/status`; the result must stay within the object size limit.
pub async fn patch(r: &Req<'_>, t: &Target, scope: UpdateScope) -> Result<Response> {
    let mut params = r.write_params()?;
    let kind = PatchType::from_content_type(r.content_type()).map_err(patch_error)?;
    if kind == PatchType::Apply {
        return super::apply::apply(r, t, scope, params).await;
    }
    if kind == PatchType::Strategic && t.info.is_custom() {
        // As upstream: custom resources have no patch strategies.
        return Err(ApiError::UnsupportedMediaType("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into()));
    }
    params.write.manager = field_manager(r, &params, subresource(scope));
    let dups =
        if kind == PatchType::Json { Vec::new() } else { duplicates(t.info, params.write.field_validation, &r.body)? };
    let limits = r.state.config.patch_limits();
    let (obj, mut warnings) =
        crud::update(r.state, t.info, t.namespace.as_deref(), name(t), scope, params.write, |current| {
            let next = patch::apply(kind, current, &r.body, limits).map_err(patch_error)?;
            admit_rbac(r, t, scope, current, &next)?;
            Ok(next)
        })
        .await?;
    warnings.extend(dups);
    Ok(json_response(StatusCode::OK, &obj, &warnings))
}

/// The writer `managedFields` records for a request: `fieldManager`, else
/// the client's name from its User-Agent (`kubectl/v1.32.0 (linux/amd64)`
/// -> `kubectl`), as upstream.
pub(super) fn field_manager(r: &Req<'_>, params: &WriteParams, subresource: &'static str) -> Option<FieldManager> {
    let name = params.field_manager.clone().or_else(|| {
        let agent = r.headers.get(header::USER_AGENT)?.to_str().ok()?;
        let name: String = agent.split('/').next().unwrap_or_default().chars().take(MAX_MANAGER_CHARS).collect();
        (!name.is_empty()).then_some(name)
    })?;
    Some(FieldManager { name, subresource, applied: false })
}

/// Longest manager name taken from a User-Agent.
const MAX_MANAGER_CHARS: usize = 128;

/// The subresource a write in `scope` is recorded under.
pub(super) fn subresource(scope: UpdateScope) -> &'static str {
    match scope {
        UpdateScope::Main => "",
        UpdateScope::Status => "status",
        UpdateScope::Binding => "binding",
        UpdateScope::Resize => "resize",
        UpdateScope::Approval => "approval",
    }
}

/// Escalation prevention on an update of an RBAC object from `current` to
/// `next`; signer approval on a CertificateSigningRequest's `/approval`.
pub(super) fn admit_rbac(r: &Req<'_>, t: &Target, scope: UpdateScope, current: &Value, next: &Value) -> Result<()> {
    if scope == UpdateScope::Approval {
        return super::authz::admit_csr_approval(r.state, r.user, current);
    }
    if escalation::only_gc_fields(current, next) {
        return Ok(());
    }
    escalation::admit(r.state, r.user, t.info, t.namespace.as_deref().unwrap_or_default(), next)
}

/// A patch failure as an API error.
pub fn patch_error(e: patch::Error) -> ApiError {
    match e {
        patch::Error::ApplyUnsupported | patch::Error::NotAPatch | patch::Error::UnknownType(_) => {
            ApiError::UnsupportedMediaType(e.to_string())
        }
        patch::Error::Body(_) => ApiError::BadRequest(e.to_string()),
        patch::Error::JsonPatch(_) => ApiError::UnprocessablePatch(e.to_string()),
        patch::Error::TooManyOperations { .. } | patch::Error::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
    }
}
