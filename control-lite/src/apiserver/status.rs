//! API errors and their one mapping to Kubernetes `Status` objects and HTTP codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::store;

/// One field-level validation failure (a `StatusCause`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, ...
    pub reason: &'static str,
    /// Field path, e.g. `spec.template.spec.containers`.
    pub field: String,
    /// Message without the field, e.g. `Required value`.
    pub message: String,
}

impl Cause {
    /// A missing required field.
    pub fn required(field: impl Into<String>) -> Cause {
        Cause { reason: "FieldValueRequired", field: field.into(), message: "Required value".into() }
    }

    /// An invalid value with an explanation.
    pub fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {}: {detail}", Value::from(value)),
        }
    }

    /// A duplicated entry.
    pub fn duplicate(field: impl Into<String>, value: &str) -> Cause {
        Cause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {}", Value::from(value)),
        }
    }

    /// An unsupported enum value.
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Cause {
        let list: Vec<String> = supported.iter().map(|s| Value::from(*s).to_string()).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!("Unsupported value: {}: supported values: {}", Value::from(value), list.join(", ")),
        }
    }

    /// A field the schema does not know (strict field validation).
    pub fn unknown_field(field: impl Into<String>) -> Cause {
        Cause { reason: "FieldValueInvalid", field: field.into(), message: "field not declared in schema".into() }
    }

    /// `field: message`.
    pub fn display(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// Errors a request can end in. Converted to a `Status` in [`ApiError::to_status`] only.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The object (or resource) does not exist.
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: String, group: String, kind: String, name: String },
    /// No such resource path.
    #[error("the server could not find the requested resource")]
    NoResource,
    /// The object exists already.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: String, group: String, kind: String, name: String },
    /// Optimistic concurrency or precondition failure.
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {detail}")]
    Conflict { resource: String, group: String, kind: String, name: String, detail: String },
    /// A server-side apply would change fields other managers own.
    #[error("{message}")]
    ApplyConflict { message: String, causes: Vec<(String, String)> },
    /// Validation failed.
    #[error("{qualified_kind} \"{name}\" is invalid: {}", join_causes(.causes))]
    Invalid { qualified_kind: String, group: String, kind: String, name: String, causes: Vec<Cause> },
    /// Malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// A well-formed patch that cannot be applied to the object.
    #[error("{0}")]
    UnprocessablePatch(String),
    /// Verb not supported on this path.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Body content type not supported.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// No valid credentials.
    #[error("Unauthorized")]
    Unauthorized,
    /// Forbidden operation (e.g. deleting a system namespace).
    #[error("{0}")]
    Forbidden(String),
    /// A create in a namespace that is being deleted (upstream's NamespaceLifecycle wording).
    #[error("{resource}{} is forbidden: unable to create new content in namespace {namespace} because it is being terminated", quoted_name(.name))]
    NamespaceTerminating { resource: String, group: String, kind: String, name: String, namespace: String },
    /// The requested resourceVersion is compacted.
    #[error("too old resource version: {requested} ({compacted})")]
    Gone { requested: i64, compacted: i64 },
    /// A list's continue token is at a compacted revision.
    #[error("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")]
    ContinueExpired { continue_token: String },
    /// A list asked for a revision newer than the store has.
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion { requested: i64, current: i64 },
    /// The request (or the object it would produce) is over a size limit.
    #[error("Request entity too large: {0}")]
    TooLarge(String),
    /// More requests in flight than the server's limit; retry after a moment.
    #[error("Too many requests, please try again later.")]
    TooManyRequests { retry_after_seconds: u64 },
    /// An eviction a PodDisruptionBudget refuses now (429, the budget named in a `DisruptionBudget` cause).
    #[error("{message}")]
    DisruptionBudget { message: String, cause: String, retry_after_seconds: u64 },
    /// The client was too slow sending its request.
    #[error("{0}")]
    Timeout(String),
    /// Talking to the node for logs failed.
    #[error("{0}")]
    BadGateway(String),
    /// A store call failed unexpectedly.
    #[error("store {call} {key}: {source}")]
    Store { call: &'static str, key: String, source: Box<store::Error> },
    /// The store's backend (etcd) could not be reached; retry later.
    #[error("storage is unavailable: {call} {key}: {source}")]
    StoreUnavailable { call: &'static str, key: String, source: Box<store::Error> },
    /// Anything else unexpected.
    #[error("internal error: {0}")]
    Internal(String),
}

fn quoted_name(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" \"{name}\"")
    }
}

fn join_causes(causes: &[Cause]) -> String {
    match causes {
        [one] => one.display(),
        many => format!("[{}]", many.iter().map(Cause::display).collect::<Vec<_>>().join(", ")),
    }
}

/// `type Result<T> = Result<T, ApiError>`.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    /// HTTP status code and `Status` body. The only place errors become HTTP.
    pub fn to_status(&self) -> (StatusCode, Value) {
        let message = self.to_string();
        let (code, reason, details) = match self {
            ApiError::NotFound { group, kind, name, .. } => {
                (StatusCode::NOT_FOUND, "NotFound", Some(json!({"name": name, "group": group, "kind": kind})))
            }
            ApiError::NoResource => (StatusCode::NOT_FOUND, "NotFound", None),
            ApiError::AlreadyExists { group, kind, name, .. } => {
                (StatusCode::CONFLICT, "AlreadyExists", Some(json!({"name": name, "group": group, "kind": kind})))
            }
            ApiError::Conflict { group, kind, name, .. } => {
                (StatusCode::CONFLICT, "Conflict", Some(json!({"name": name, "group": group, "kind": kind})))
            }
            ApiError::ApplyConflict { causes, .. } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|(field, message)| json!({"reason": "FieldManagerConflict", "message": message, "field": field}))
                    .collect();
                (StatusCode::CONFLICT, "Conflict", Some(json!({"causes": causes})))
            }
            ApiError::Invalid { group, kind, name, causes, .. } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    Some(json!({"name": name, "group": group, "kind": kind, "causes": causes})),
                )
            }
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest", None),
            ApiError::UnprocessablePatch(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid", None),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", None),
            ApiError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", None),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized", None),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden", None),
            ApiError::NamespaceTerminating { group, kind, name, namespace, .. } => {
                let cause = json!({"reason": "NamespaceTerminating", "field": "metadata.namespace",
                    "message": format!("namespace {namespace} is being terminated")});
                let details = json!({"name": name, "group": group, "kind": kind, "causes": [cause]});
                (StatusCode::FORBIDDEN, "Forbidden", Some(details))
            }
            ApiError::Gone { .. } | ApiError::ContinueExpired { .. } => (StatusCode::GONE, "Expired", None),
            ApiError::TooLargeResourceVersion { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                "Timeout",
                Some(
                    json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                    "retryAfterSeconds": 1}),
                ),
            ),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", None),
            ApiError::TooManyRequests { retry_after_seconds } => (
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                Some(json!({"retryAfterSeconds": retry_after_seconds})),
            ),
            ApiError::DisruptionBudget { cause, retry_after_seconds, .. } => {
                let mut details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
                if *retry_after_seconds > 0 {
                    details["retryAfterSeconds"] = json!(retry_after_seconds);
                }
                (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", Some(details))
            }
            ApiError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "Timeout", None),
            ApiError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "InternalError", None),
            ApiError::Store { .. } | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalError", None)
            }
            ApiError::StoreUnavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", None),
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16(),
        });
        if let Some(details) = details {
            status["details"] = details;
        }
        if let ApiError::ContinueExpired { continue_token } = self {
            status["metadata"] = json!({"continue": continue_token});
        }
        (code, status)
    }

    /// Maps a store error of `call` on `key` that is not about one object:
    /// 503 if the backend is unreachable, 413 for a value the backend
    /// cannot take, else 500. The one place store errors become statuses.
    pub fn store(call: &'static str, key: &str, err: store::Error) -> ApiError {
        match err {
            err @ store::Error::ValueTooLarge { .. } => ApiError::TooLarge(err.to_string()),
            err if err.is_unavailable() => {
                ApiError::StoreUnavailable { call, key: key.to_string(), source: Box::new(err) }
            }
            other => ApiError::Store { call, key: key.to_string(), source: Box::new(other) },
        }
    }

    /// Maps a store error on `key` of `info`'s object `name`.
    pub fn from_store(
        info: &super::registry::ResourceInfo,
        name: &str,
        call: &'static str,
        key: &str,
        err: store::Error,
    ) -> ApiError {
        match err {
            store::Error::AlreadyExists { .. } => already_exists(info, name),
            store::Error::NotFound { .. } => not_found(info, name),
            store::Error::Conflict { .. } => conflict(info, name),
            store::Error::Compacted { requested, compacted } => ApiError::Gone { requested, compacted },
            other => ApiError::store(call, key, other),
        }
    }
}

/// `NotFound` for an object of `info`.
pub fn not_found(info: &super::registry::ResourceInfo, name: &str) -> ApiError {
    ApiError::NotFound {
        resource: info.qualified_plural(),
        group: info.group.into(),
        kind: info.plural.into(),
        name: name.into(),
    }
}

/// `AlreadyExists` for an object of `info`.
pub fn already_exists(info: &super::registry::ResourceInfo, name: &str) -> ApiError {
    ApiError::AlreadyExists {
        resource: info.qualified_plural(),
        group: info.group.into(),
        kind: info.plural.into(),
        name: name.into(),
    }
}

/// The optimistic-concurrency `Conflict`.
pub fn conflict(info: &super::registry::ResourceInfo, name: &str) -> ApiError {
    conflict_with(
        info,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

/// A `Conflict` with a custom detail.
pub fn conflict_with(info: &super::registry::ResourceInfo, name: &str, detail: &str) -> ApiError {
    ApiError::Conflict {
        resource: info.qualified_plural(),
        group: info.group.into(),
        kind: info.plural.into(),
        name: name.into(),
        detail: detail.into(),
    }
}

/// `Invalid` with causes.
pub fn invalid(info: &super::registry::ResourceInfo, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::Invalid {
        qualified_kind: info.qualified_kind(),
        group: info.group.into(),
        kind: info.kind_name.into(),
        name: name.into(),
        causes,
    }
}

/// A success `Status` (used by binding and some deletes).
pub fn success(code: StatusCode) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code.as_u16()})
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(self, ApiError::Store { .. } | ApiError::StoreUnavailable { .. } | ApiError::Internal(_)) {
            tracing::error!(error = %self, "apiserver internal error");
        }
        let retry_after = match self {
            ApiError::TooManyRequests { retry_after_seconds } => Some(retry_after_seconds),
            ApiError::DisruptionBudget { retry_after_seconds, .. } if retry_after_seconds > 0 => {
                Some(retry_after_seconds)
            }
            _ => None,
        };
        let (code, body) = self.to_status();
        let mut resp = (code, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::{by_kind, Kind};

    #[test]
    fn store_errors_map_to_one_status_each() {
        let timeout = || store::Error::EtcdTimeout { op: "get", key: "/k".into(), after: std::time::Duration::ZERO };
        let too_large = store::Error::ValueTooLarge { key: "/k".into(), size: 2, max: 1 };
        let cases = [
            (timeout(), StatusCode::SERVICE_UNAVAILABLE),
            (too_large, StatusCode::PAYLOAD_TOO_LARGE),
            (store::Error::Closed, StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (err, want) in cases {
            let what = err.to_string();
            assert_eq!(ApiError::store("get", "/k", err).to_status().0, want, "{what}");
        }
        let info = by_kind(Kind::Deployment);
        let err = ApiError::from_store(info, "web", "update", "/k", timeout());
        assert_eq!(err.to_status().0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn invalid_deployment_reads_like_upstream() {
        let err = invalid(by_kind(Kind::Deployment), "web", vec![Cause::required("spec.template.spec.containers")]);
        let (code, body) = err.to_status();
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body["message"],
            "Deployment.apps \"web\" is invalid: spec.template.spec.containers: Required value"
        );
        assert_eq!(body["reason"], "Invalid");
        assert_eq!(body["details"]["kind"], "Deployment");
        assert_eq!(body["details"]["group"], "apps");
        assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueRequired");
        assert_eq!(body["details"]["causes"][0]["field"], "spec.template.spec.containers");
    }

    #[test]
    fn several_causes_are_bracketed_and_not_found_names_the_resource() {
        let err = invalid(by_kind(Kind::Pod), "p", vec![Cause::required("a"), Cause::duplicate("b", "x")]);
        assert_eq!(err.to_string(), "Pod \"p\" is invalid: [a: Required value, b: Duplicate value: \"x\"]");
        let (code, body) = not_found(by_kind(Kind::Deployment), "web").to_status();
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(body["message"], "deployments.apps \"web\" not found");
        let (code, body) = conflict(by_kind(Kind::Pod), "p").to_status();
        assert_eq!(code, StatusCode::CONFLICT);
        assert_eq!(body["reason"], "Conflict");
    }

    #[test]
    fn limits_map_to_413_and_429_with_retry_after() {
        let (code, body) = ApiError::TooLarge("limit is 3145728".into()).to_status();
        assert_eq!((code, body["reason"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("RequestEntityTooLarge")));
        let resp = ApiError::TooManyRequests { retry_after_seconds: 1 }.into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    }
}
