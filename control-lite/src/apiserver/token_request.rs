//! The TokenRequest subresource (`POST
//! /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`,
//! authentication.k8s.io/v1 TokenRequest) and the store lookups a presented
//! ServiceAccount token needs. The decisions are `auth::sa_token`'s
//! (`plan_token`, `decide`); the request's spec is parsed here
//! ([`token_spec`], pure).

use serde_json::{json, Value};

use super::objects::meta_str;
use super::registry::{by_kind, Kind};
use super::status::{conflict_with, invalid, not_found, ApiError, Cause, Result};
use super::ApiState;
use crate::auth::sa_token::{self, BoundRef, Claims, Lookup, ObjectRef, PodInfo, Refusal, TokenSpec};

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// The spec of a TokenRequest body (pure). A non-integer lifetime is 422.
pub fn token_spec(body: &Value) -> std::result::Result<TokenSpec, Cause> {
    let spec = body.get("spec").unwrap_or(&Value::Null);
    let audiences = spec.get("audiences").and_then(Value::as_array).into_iter().flatten();
    let expiration_seconds = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| Cause {
            reason: "FieldValueInvalid",
            field: "spec.expirationSeconds".into(),
            message: format!("Invalid value: {v}: must be an integer"),
        })?),
    };
    let bound = spec.get("boundObjectRef").filter(|b| b.is_object()).map(|b| BoundRef {
        kind: str_at(b, "/kind").to_string(),
        name: str_at(b, "/name").to_string(),
        uid: str_at(b, "/uid").to_string(),
    });
    Ok(TokenSpec {
        audiences: audiences.filter_map(Value::as_str).filter(|a| !a.is_empty()).map(String::from).collect(),
        expiration_seconds,
        bound,
    })
}

async fn stored(state: &ApiState, kind: Kind, ns: &str, name: &str) -> Result<Option<Value>> {
    let key = by_kind(kind).key(Some(ns), name);
    let kv = state.store.get(&key).await.map_err(|e| ApiError::store("get", &key, e))?;
    Ok(kv.and_then(|kv| serde_json::from_slice(&kv.value).ok()))
}

/// The stored Secret `ns/name`, if any (bootstrap token authentication).
pub async fn stored_secret(state: &ApiState, ns: &str, name: &str) -> Result<Option<Value>> {
    stored(state, Kind::Secret, ns, name).await
}

fn uid(obj: &Value) -> String {
    meta_str(obj, "uid").unwrap_or_default().to_string()
}

/// The uids the store holds for what `claims` name (a ServiceAccount that is
/// being deleted counts as gone, as upstream).
pub async fn lookup(state: &ApiState, claims: &Claims) -> Result<Lookup> {
    let k = &claims.kubernetes;
    let sa = stored(state, Kind::ServiceAccount, &k.namespace, &k.serviceaccount.name).await?;
    let service_account_uid = sa.filter(|sa| meta_str(sa, "deletionTimestamp").is_none()).map(|sa| uid(&sa));
    let pod_uid = match &k.pod {
        Some(pod) => stored(state, Kind::Pod, &k.namespace, &pod.name).await?.map(|p| uid(&p)),
        None => None,
    };
    Ok(Lookup { service_account_uid, pod_uid })
}

/// POST `serviceaccounts/<name>/token` with `body` (a TokenRequest): the
/// TokenRequest with `status.token` and `status.expirationTimestamp`.
pub async fn create(state: &ApiState, ns: &str, name: &str, mut body: Value) -> Result<Value> {
    let info = by_kind(Kind::ServiceAccount);
    let key = state.sa_key.as_ref().ok_or_else(|| ApiError::Internal("no service-account signing key".into()))?;
    let spec = token_spec(&body).map_err(|cause| invalid(info, name, vec![cause]))?;
    let sa = stored(state, Kind::ServiceAccount, ns, name).await?.ok_or_else(|| not_found(info, name))?;
    let sa = ObjectRef { name: name.to_string(), uid: uid(&sa) };
    let pod = match &spec.bound {
        Some(bound) if bound.kind == "Pod" => stored(state, Kind::Pod, ns, &bound.name).await?.map(|p| PodInfo {
            name: bound.name.clone(),
            uid: uid(&p),
            service_account: str_at(&p, "/spec/serviceAccountName").to_string(),
        }),
        _ => None,
    };
    let jti = uuid::Uuid::new_v4().to_string();
    let claims = sa_token::plan_token(ns, &sa, &spec, pod.as_ref(), unix_now(), jti).map_err(|r| refusal(r, name))?;
    let token = key.sign(&claims).map_err(|e| ApiError::Internal(e.to_string()))?;
    let expires = jiff::Timestamp::from_second(claims.exp).unwrap_or(jiff::Timestamp::MAX);
    let expires = jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", expires).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("apiVersion".into(), json!("authentication.k8s.io/v1"));
        obj.insert("kind".into(), json!("TokenRequest"));
        let meta = obj.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("name".into(), json!(name));
            meta.insert("namespace".into(), json!(ns));
            meta.insert("creationTimestamp".into(), Value::Null);
        }
        let lifetime = claims.exp.saturating_sub(claims.iat);
        let spec = obj.entry("spec").or_insert_with(|| json!({}));
        if let Some(spec) = spec.as_object_mut() {
            spec.insert("audiences".into(), json!(claims.aud));
            spec.insert("expirationSeconds".into(), json!(lifetime));
        }
        obj.insert("status".into(), json!({"token": token, "expirationTimestamp": expires}));
    }
    Ok(body)
}

fn refusal(r: Refusal, name: &str) -> ApiError {
    match r {
        Refusal::TooShort(s) => invalid(
            by_kind(Kind::ServiceAccount),
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "spec.expirationSeconds".into(),
                message: format!("Invalid value: {s}: may not specify a duration less than 10 minutes"),
            }],
        ),
        Refusal::PodNotFound(pod) => not_found(by_kind(Kind::Pod), &pod),
        Refusal::PodUid { .. } => conflict_with(by_kind(Kind::Pod), name, &r.to_string()),
        Refusal::UnsupportedKind(_) | Refusal::OtherServiceAccount(_) => ApiError::BadRequest(r.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_request_spec_is_read_from_its_body() {
        let body = json!({"spec": {"audiences": ["a", ""], "expirationSeconds": 3607,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u1"}}});
        let spec = token_spec(&body).expect("spec");
        assert_eq!(spec.audiences, ["a"]);
        assert_eq!(spec.expiration_seconds, Some(3607));
        assert_eq!(spec.bound, Some(BoundRef { kind: "Pod".into(), name: "web".into(), uid: "u1".into() }));
        assert_eq!(token_spec(&json!({})).expect("empty"), TokenSpec::default());
        let bad = token_spec(&json!({"spec": {"expirationSeconds": "soon"}})).expect_err("not a number");
        assert_eq!(bad.field, "spec.expirationSeconds");
    }
}
