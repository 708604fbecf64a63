//! OpenAPI v3 documents: just enough for kubectl to detect server-side field
//! validation (a PATCH operation per resource with `x-kubernetes-group-version-kind`
//! and a `fieldValidation` query parameter). The PATCH operations carry no
//! request body on purpose: kubectl then computes strategic merge patches from
//! its compiled-in types instead of looking for schemas here.

use serde_json::{json, Map, Value};

use super::registry::{group_versions, RESOURCES};

/// `api/v1` or `apis/<group>/<version>`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn hash(doc: &Value) -> String {
    // FNV-1a over the serialized document: stable across restarts.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in doc.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

/// Content type of `/openapi/v2` (gnostic's protobuf `Document`; kubectl asks
/// for the `@v1.0` spelling, which Go's MIME parser rejects in a response).
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2`: an empty protobuf `openapi_v2.Document` (zero bytes is a
/// valid encoding of any message: every field unset).
///
/// kubectl only downloads it when `/openapi/v3` does not advertise server-side
/// field validation for a kind, i.e. for kinds this server does not serve.
/// An empty document holds no schema, so kubectl skips client-side validation
/// and reports the real problem ("no matches for kind ...") instead of failing
/// to download OpenAPI. Known kinds are validated by the server (Strict).
pub fn v2_response() -> axum::response::Response {
    axum::response::Response::builder()
        .status(axum::http::StatusCode::OK)
        .header(axum::http::header::CONTENT_TYPE, OPENAPI_V2_PROTOBUF)
        .body(axum::body::Body::empty())
        .unwrap_or_default()
}

/// `/openapi/v3`.
pub fn root() -> Value {
    let mut paths = Map::new();
    for (g, v) in group_versions() {
        let Some(doc) = group_version(g, v) else {
            continue;
        };
        let p = gv_path(g, v);
        paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}));
    }
    json!({"paths": paths})
}

fn param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

/// `/openapi/v3/<gv path>` (None if not served).
pub fn group_version(group: &str, version: &str) -> Option<Value> {
    let rows: Vec<_> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    if rows.is_empty() {
        return None;
    }
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
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::discovery::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_patch_operation_advertises_field_validation_and_its_gvk() {
        let doc = group_version("apps", "v1").expect("apps");
        let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            item["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        let has = item["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query");
        assert!(has);
        assert!(item.get("requestBody").is_none());
        let root = root();
        let url = root["paths"]["api/v1"]["serverRelativeURL"].as_str().unwrap_or_default();
        assert!(url.starts_with("/openapi/v3/api/v1?hash="), "{url}");
        assert!(group_version("", "v1").expect("core")["paths"]["/api/v1/nodes/{name}"].is_object());
    }
}

#[cfg(test)]
mod v2_tests {
    use super::*;

    #[test]
    fn openapi_v2_is_an_empty_protobuf_document_with_a_parseable_content_type() {
        let response = v2_response();
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        let content_type = response.headers()[axum::http::header::CONTENT_TYPE].to_str().unwrap();
        // Go's mime.ParseMediaType rejects '@' in a subtype.
        assert!(!content_type.contains('@') && content_type.ends_with("+protobuf"), "{content_type}");
    }
}
