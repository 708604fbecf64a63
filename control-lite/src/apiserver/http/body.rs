//! Request bodies: read within the size and time limits, parsed (JSON, YAML,
//! protobuf for a few kinds), checked for duplicate fields and object size.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use bytes::BytesMut;
use futures::StreamExt;
use serde_json::Value;

use super::limits::ApiConfig;
use crate::apiserver::objects::{meta_str, FieldValidation};
use crate::apiserver::patch::encoded_len_within;
use crate::apiserver::registry::ResourceInfo;
use crate::apiserver::status::{invalid, ApiError, Cause, Result};
use crate::apiserver::{protobuf, schema};

fn too_large(limit: usize) -> ApiError {
    ApiError::TooLarge(format!("limit is {limit}"))
}

/// Reads the whole body: at most `max_body_bytes` (413) within `body_read_timeout` (408).
pub async fn read(body: Body, headers: &HeaderMap, config: &ApiConfig) -> Result<Bytes> {
    let max = config.max_body_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if declared.is_some_and(|len: usize| len > max) {
        return Err(too_large(max));
    }
    let collect = async {
        let mut stream = body.into_data_stream();
        let mut buf = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the request body: {e}")))?;
            if buf.len().saturating_add(chunk.len()) > max {
                return Err(too_large(max));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(config.body_read_timeout, collect)
        .await
        .map_err(|_| ApiError::Timeout("timed out reading the request body".into()))?
}

/// Parses a JSON (or YAML, or protobuf) request body.
pub fn parse(info: &ResourceInfo, headers: &HeaderMap, body: &[u8]) -> Result<Value> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ct.starts_with("application/yaml") {
        return serde_yaml_ng::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("couldn't get version/kind; yaml parse error: {e}")));
    }
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        return protobuf::to_json(info.kind, body).map_err(|e| match e {
            protobuf::Error::Kind(_) => ApiError::UnsupportedMediaType(e.to_string()),
            other => ApiError::BadRequest(format!("couldn't decode protobuf body: {other}")),
        });
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("couldn't get version/kind; json parse error: {e}")))
}

/// Parses a TokenRequest body (JSON, YAML or protobuf).
pub fn parse_token_request(headers: &HeaderMap, body: &[u8]) -> Result<Value> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        return protobuf::token_request_to_json(body)
            .map_err(|e| ApiError::BadRequest(format!("couldn't decode protobuf body: {e}")));
    }
    parse(crate::apiserver::registry::by_kind(crate::apiserver::registry::Kind::ServiceAccount), headers, body)
}

/// Parses an Eviction body (JSON, YAML or protobuf).
pub fn parse_eviction(headers: &HeaderMap, body: &[u8]) -> Result<Value> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        return protobuf::eviction_to_json(body)
            .map_err(|e| ApiError::BadRequest(format!("couldn't decode protobuf body: {e}")));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    parse(crate::apiserver::registry::by_kind(crate::apiserver::registry::Kind::Pod), headers, body)
}

/// 413 if `obj` encodes to more than `max` bytes.
pub fn ensure_object_size(obj: &Value, max: usize) -> Result<()> {
    encoded_len_within(obj, max).map(|_| ()).ok_or_else(|| too_large(max))
}

/// Longest field path echoed in a warning or cause (paths come from the client).
const MAX_PATH_ECHO: usize = 256;

fn shorten(path: String) -> String {
    if path.len() <= MAX_PATH_ECHO {
        return path;
    }
    let mut end = MAX_PATH_ECHO;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &path[..end])
}

/// Duplicate keys in a JSON body, per `fieldValidation`: an error when
/// Strict, warnings when Warn.
pub fn duplicates(info: &ResourceInfo, fv: FieldValidation, body: &[u8]) -> Result<Vec<String>> {
    if fv == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let dups: Vec<String> = schema::duplicate_fields(body).into_iter().map(shorten).collect();
    if fv == FieldValidation::Strict && !dups.is_empty() {
        let causes = dups
            .iter()
            .map(|f| Cause { reason: "FieldValueDuplicate", field: format!(".{f}"), message: "duplicate field".into() })
            .collect();
        let name = serde_json::from_slice::<Value>(body).ok();
        let name = name.as_ref().and_then(|b| meta_str(b, "name")).unwrap_or_default();
        return Err(invalid(info, name, causes));
    }
    Ok(dups.iter().map(|f| format!("duplicate field \"{f}\"")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_paths_are_bounded() {
        assert_eq!(shorten("spec.a".into()), "spec.a");
        let long = shorten("é".repeat(1000));
        assert!(long.len() <= MAX_PATH_ECHO + 3 && long.ends_with("..."), "{}", long.len());
    }
}
