//! PATCH with `application/apply-patch+yaml`: server-side apply.
//!
//! Updates the object through the ordinary update path (validation,
//! defaulting, admission) with the merge `apiserver::apply` decides, or
//! creates it from the configuration when it does not exist.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::body::ensure_object_size;
use super::escalation;
use super::path::Target;
use super::write::{admit_rbac, subresource};
use super::{name, Req};
use crate::apiserver::apply::{self, Writer};
use crate::apiserver::crud::{self, apply_part, UpdateScope};
use crate::apiserver::objects::{meta_mut, now_rfc3339, prepare, FieldManager, FieldValidation};
use crate::apiserver::options::WriteParams;
use crate::apiserver::response::json_response;
use crate::apiserver::status::{ApiError, Cause, Result};

/// Applies the request's configuration to the target object.
pub async fn apply(r: &Req<'_>, t: &Target, scope: UpdateScope, mut params: WriteParams) -> Result<Response> {
    let Some(manager) = params.field_manager.clone().filter(|m| !m.is_empty()) else {
        let mut cause = Cause::required("fieldManager");
        cause.message = "Required value: is required for apply patch".into();
        return Err(ApiError::Invalid {
            qualified_kind: "PatchOptions.meta.k8s.io".into(),
            group: "meta.k8s.io".into(),
            kind: "PatchOptions".into(),
            name: String::new(),
            causes: vec![cause],
        });
    };
    let config = parse_config(&r.body)?;
    ensure_object_size(&config, r.state.config.max_object_bytes)?;
    check_config(t, &config)?;
    let sub = subresource(scope);
    params.write.manager = Some(FieldManager { name: manager.clone(), subresource: sub, applied: true });
    let api_version = t.info.api_version();
    let now = now_rfc3339();
    let writer = Writer {
        manager: &manager,
        subresource: sub,
        api_version: &api_version,
        part: apply_part(t.info, scope),
        now: &now,
    };
    let ns = t.namespace.as_deref();
    let max = r.state.config.max_object_bytes;
    let fv = params.write.field_validation;
    let mut config_warnings = Vec::new();
    let updated = crud::update(r.state, t.info, ns, name(t), scope, params.write.clone(), |current| {
        let (config, warnings) = normalized(t, Some(current), &config, fv)?;
        config_warnings = warnings;
        let next = apply::apply(Some(current), &config, &writer, params.force).map_err(apply_error)?;
        ensure_object_size(&next, max)?;
        admit_rbac(r, t, scope, current, &next)?;
        Ok(next)
    })
    .await;
    match updated {
        Ok((obj, warnings)) => Ok(json_response(StatusCode::OK, &obj, &[config_warnings, warnings].concat())),
        Err(ApiError::NotFound { .. }) if scope == UpdateScope::Main => {
            let (config, config_warnings) = normalized(t, None, &config, fv)?;
            let mut obj = apply::apply(None, &config, &writer, params.force).map_err(apply_error)?;
            ensure_object_size(&obj, max)?;
            if let Some(meta) = meta_mut(&mut obj) {
                meta.insert("name".into(), json!(name(t)));
            }
            escalation::admit(r.state, r.user, t.info, ns.unwrap_or_default(), &obj)?;
            let (obj, warnings) = crud::create(r.state, t.info, ns, obj, params.write).await?;
            Ok(json_response(StatusCode::CREATED, &obj, &[config_warnings, warnings].concat()))
        }
        Err(e) => Err(e),
    }
}

/// The configuration normalised as stored objects are (`prepare`: typed
/// round trip of the live object with it merged in, `fieldValidation`
/// applied, whose warnings are returned), so a numeric quantity or an
/// ignored unknown field does not look like a change.
fn normalized(t: &Target, live: Option<&Value>, config: &Value, fv: FieldValidation) -> Result<(Value, Vec<String>)> {
    let merged = apply::merged_config(live, config).map_err(apply_error)?;
    let (prepared, warnings) = prepare(t.info, merged, fv)?;
    Ok((apply::normalized_config(config, prepared).map_err(apply_error)?, warnings))
}

/// The configuration: JSON, or YAML (one document).
fn parse_config(body: &[u8]) -> Result<Value> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(_) => {
            serde_yaml_ng::from_slice(body).map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))
        }
    }
}

/// An applied configuration names its kind and version (as upstream requires)
/// and, if it names the object, the one on the URL.
fn check_config(t: &Target, config: &Value) -> Result<()> {
    let field = |f: &str| config.get(f).and_then(Value::as_str).unwrap_or_default();
    if field("apiVersion").is_empty() || field("kind").is_empty() {
        return Err(ApiError::BadRequest("the applied configuration must set apiVersion and kind".into()));
    }
    match config.pointer("/metadata/name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n != name(t) => Err(ApiError::BadRequest(format!(
            "the name of the object ({n}) does not match the name on the URL ({})",
            name(t)
        ))),
        _ => Ok(()),
    }
}

/// A field management failure as an API error.
fn apply_error(e: apply::Error) -> ApiError {
    match e {
        apply::Error::Conflicts(conflicts) => ApiError::ApplyConflict {
            message: apply::conflict_message(&conflicts),
            causes: conflicts.iter().map(|c| (c.path.clone(), c.message())).collect(),
        },
        apply::Error::TooDeep { .. } | apply::Error::TooManyFields { .. } => ApiError::TooLarge(e.to_string()),
        apply::Error::FieldsV1(_) | apply::Error::Config(_) => ApiError::BadRequest(e.to_string()),
    }
}
