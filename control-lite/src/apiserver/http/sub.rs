//! Subresources: `/scale`, `/binding`, `pods/log`, `pods/eviction`,
//! `namespaces/finalize` and `serviceaccounts/token`.

use axum::http::StatusCode;
use axum::response::Response;

use super::body::parse;
use super::path::Target;
use super::write::{field_manager, patch_error};
use super::{name, Req};
use crate::apiserver::options::LogOptions;
use crate::apiserver::patch::{self, PatchType};
use crate::apiserver::response::{json_response, success_response};
use crate::apiserver::status::Result;
use crate::apiserver::{logs, namespaces, subresources, token_request};

/// GET `/scale`.
pub async fn get_scale(r: &Req<'_>, t: &Target) -> Result<Response> {
    subresources::get_scale(r.state, t.info, t.namespace.as_deref(), name(t)).await
}

/// PUT `/scale`.
pub async fn update_scale(r: &Req<'_>, t: &Target) -> Result<Response> {
    let mut params = r.write_params()?;
    params.write.manager = field_manager(r, &params, "scale");
    let body = parse(t.info, r.headers, &r.body)?;
    subresources::update_scale(r.state, t.info, t.namespace.as_deref(), name(t), params.write, |_| Ok(body.clone()))
        .await
}

/// PATCH `/scale`.
pub async fn patch_scale(r: &Req<'_>, t: &Target) -> Result<Response> {
    let mut params = r.write_params()?;
    params.write.manager = field_manager(r, &params, "scale");
    let kind = PatchType::from_content_type(r.content_type()).map_err(patch_error)?;
    let limits = r.state.config.patch_limits();
    subresources::update_scale(r.state, t.info, t.namespace.as_deref(), name(t), params.write, |scale| {
        patch::apply(kind, scale, &r.body, limits).map_err(patch_error)
    })
    .await
}

/// POST `pods/<name>/binding`.
pub async fn bind(r: &Req<'_>, t: &Target) -> Result<Response> {
    let params = r.write_params()?;
    let body = parse(t.info, r.headers, &r.body)?;
    subresources::bind(r.state, t.info, t.namespace.as_deref(), name(t), &body, params.write).await?;
    Ok(success_response(StatusCode::CREATED))
}

/// GET `pods/<name>/log`.
pub async fn log(r: &Req<'_>, t: &Target) -> Result<Response> {
    let opts = LogOptions::parse(r.query);
    logs::proxy(r.state, t.namespace.as_deref().unwrap_or("default"), name(t), &opts).await
}

/// PUT `namespaces/<name>/finalize`.
pub async fn finalize(r: &Req<'_>, t: &Target) -> Result<Response> {
    let params = r.write_params()?;
    let body = parse(t.info, r.headers, &r.body)?;
    let obj = namespaces::finalize(r.state, name(t), &body, params.write).await?;
    Ok(json_response(StatusCode::OK, &obj, &[]))
}

/// POST `serviceaccounts/<name>/token` (a TokenRequest body).
pub async fn token(r: &Req<'_>, t: &Target) -> Result<Response> {
    let body = super::body::parse_token_request(r.headers, &r.body)?;
    let ns = t.namespace.as_deref().unwrap_or("default");
    let obj = token_request::create(r.state, ns, name(t), body).await?;
    Ok(json_response(StatusCode::CREATED, &obj, &[]))
}

/// POST `pods/<name>/eviction` (a policy/v1 Eviction body): 201 once the pod is deleted.
pub async fn evict(r: &Req<'_>, t: &Target) -> Result<Response> {
    let params = r.write_params()?;
    let body = super::body::parse_eviction(r.headers, &r.body)?;
    let ns = t.namespace.as_deref().unwrap_or("default");
    crate::apiserver::policy::eviction::evict(r.state, ns, name(t), &body, params.write.dry_run).await?;
    Ok(success_response(StatusCode::CREATED))
}
