//! `paths` of a group/version document: one PATCH operation per resource,
//! with `x-kubernetes-group-version-kind` (how kubectl explain finds a
//! resource's kind) and a `fieldValidation` query parameter (how kubectl
//! detects server-side field validation).
//!
//! No operation has a request body, on purpose: kubectl's client-side apply
//! (`gvkSupportsPatchOpenAPIV3`) computes a strategic merge patch from the
//! OpenAPI schemas when a PATCH operation accepts
//! `application/strategic-merge-patch+json`, and the generated schemas carry
//! no patch strategies (`x-kubernetes-patch-merge-key`, ...). Without a body
//! kubectl falls back to `/openapi/v2` (empty here) and then to its
//! compiled-in types, which have them.

use serde_json::{json, Map, Value};

use super::gv_path;
use crate::apiserver::registry::ResourceInfo;

fn param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

/// The PATCH operations of `rows` (one group/version).
pub fn paths(group: &str, version: &str, rows: &[&ResourceInfo]) -> Map<String, Value> {
    let base = format!("/{}", gv_path(group, version));
    let mut paths = Map::new();
    for r in rows {
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let patch = json!({
            "description": format!("partially update the specified {}", r.kind_name),
            "operationId": format!("patch{}", r.kind_name),
            "parameters": [
                param("dryRun", "When present, indicates that modifications should not be persisted."),
                param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
                param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict."),
            ],
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind_name},
        });
        let path_params = if r.namespaced {
            json!([
                {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}},
            ])
        } else {
            json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}])
        };
        paths.insert(item, json!({"patch": patch, "parameters": path_params}));
    }
    paths
}
