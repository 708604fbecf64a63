//! The `/scale` (autoscaling/v1 Scale) and `/binding` subresources.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::crud::{self, UpdateScope};
use super::objects::{meta_mut, requested_rv, WriteOptions};
use super::registry::ResourceInfo;
use super::response::json_response;
use super::selectors::LabelSelector;
use super::status::{conflict_with, invalid, Cause, Result};
use super::ApiState;

/// Where `info`'s Scale reads and writes: spec replicas, status replicas
/// (JSON pointers) and the selector (a rendered string).
fn scale_paths(info: &ResourceInfo, obj: &Value) -> (String, String, String) {
    match info.custom.and_then(|c| c.scale.as_ref()) {
        Some(paths) => {
            let selector = paths.label_selector.as_deref().map(crate::apiserver::crd::pointer_of);
            let selector = selector.and_then(|p| obj.pointer(&p)).and_then(Value::as_str).unwrap_or_default();
            (
                crate::apiserver::crd::pointer_of(&paths.spec_replicas),
                crate::apiserver::crd::pointer_of(&paths.status_replicas),
                selector.to_string(),
            )
        }
        None => {
            let selector = LabelSelector::from_api(obj.pointer("/spec/selector").unwrap_or(&Value::Null)).render();
            ("/spec/replicas".into(), "/status/replicas".into(), selector)
        }
    }
}

/// The Scale view of a deployment, replicaset, statefulset or custom resource.
pub fn scale_of(info: &ResourceInfo, obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let (spec, status, selector) = scale_paths(info, obj);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer(&spec).and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": obj.pointer(&status).and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// GET `.../scale`.
pub async fn get_scale(
    state: &ApiState,
    info: &'static ResourceInfo,
    ns: Option<&str>,
    name: &str,
) -> Result<Response> {
    let (obj, _) = crud::get(state, info, ns, name).await?;
    Ok(json_response(StatusCode::OK, &scale_of(info, &obj), &[]))
}

/// PUT/PATCH `.../scale`: `to_scale` maps the current Scale to the requested one.
pub async fn update_scale<F>(
    state: &ApiState,
    info: &'static ResourceInfo,
    ns: Option<&str>,
    name: &str,
    opts: WriteOptions,
    mut to_scale: F,
) -> Result<Response>
where
    F: FnMut(&Value) -> Result<Value>,
{
    let (obj, _) = crud::update(state, info, ns, name, UpdateScope::Main, opts, |current| {
        let requested = to_scale(&scale_of(info, current))?;
        let replicas = requested.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
        if replicas < 0 {
            let cause = Cause {
                reason: "FieldValueInvalid",
                field: "spec.replicas".into(),
                message: format!("Invalid value: {replicas}: must be greater than or equal to 0"),
            };
            return Err(invalid(info, name, vec![cause]));
        }
        let mut next = current.clone();
        let (spec, _, _) = scale_paths(info, current);
        crate::apiserver::crd::set_pointer(&mut next, &spec, json!(replicas));
        if let (Some(rv), Some(meta)) = (requested_rv(&requested)?, meta_mut(&mut next)) {
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        Ok(next)
    })
    .await?;
    Ok(json_response(StatusCode::OK, &scale_of(info, &obj), &[]))
}

/// POST `pods/<name>/binding`: sets `spec.nodeName` once.
pub async fn bind(
    state: &ApiState,
    info: &'static ResourceInfo,
    ns: Option<&str>,
    name: &str,
    binding: &Value,
    opts: WriteOptions,
) -> Result<()> {
    let node = binding.pointer("/target/name").and_then(Value::as_str).unwrap_or_default().to_string();
    if node.is_empty() {
        return Err(invalid(info, name, vec![Cause::required("target.name")]));
    }
    crud::update(state, info, ns, name, UpdateScope::Binding, opts, |current| {
        if current.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(conflict_with(info, name, "pod is being deleted, cannot be assigned to a host"));
        }
        match current.pointer("/spec/nodeName").and_then(Value::as_str) {
            Some(bound) if !bound.is_empty() => {
                Err(conflict_with(info, name, &format!("pod {name} is already assigned to node \"{bound}\"")))
            }
            _ => {
                let mut next = current.clone();
                next["spec"]["nodeName"] = json!(node);
                // The binding's uid (the scheduler sends the pod's) is a
                // precondition: a binding for a deleted pod must not land on
                // a new pod of the same name.
                if let Some(uid) = binding.pointer("/metadata/uid").and_then(Value::as_str).filter(|u| !u.is_empty()) {
                    next["metadata"]["uid"] = json!(uid);
                }
                Ok(next)
            }
        }
    })
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view_reports_replicas_and_selector() {
        let d = json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "5"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2}});
        let s = scale_of(crate::apiserver::registry::by_kind(crate::apiserver::registry::Kind::Deployment), &d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web");
        assert_eq!(s["metadata"]["resourceVersion"], "5");
    }
}
