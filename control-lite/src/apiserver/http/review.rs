//! The reviews (create-only, never stored): the access reviews
//! (`authorization.k8s.io/v1`): SelfSubjectAccessReview (`kubectl auth
//! can-i`), SubjectAccessReview (for another user, e.g. the kubelet API's
//! callers), LocalSubjectAccessReview (the same, confined to the URL's
//! namespace) and SelfSubjectRulesReview (`kubectl auth can-i --list`); and
//! from `authentication.k8s.io/v1`, TokenReview (who a bearer token is, by
//! the very authenticator the request pipeline uses, for the kubelet API)
//! and SelfSubjectReview (`kubectl auth whoami`).

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::body::parse;
use super::path::Target;
use crate::apiserver::registry::Kind;
use crate::apiserver::response::json_response;
use crate::apiserver::status::{ApiError, Result};
use crate::apiserver::ApiState;
use crate::auth::attributes::{Request, ResourceAttrs};
use crate::auth::authn::Authenticator;
use crate::auth::authorize::Decision;
use crate::auth::node;
use crate::auth::user::UserInfo;

fn s(v: &Value, ptr: &str) -> String {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The request a review's `spec` asks about (pure).
pub fn reviewed_request(spec: &Value) -> Result<Request> {
    if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        return Ok(Request::Resource(ResourceAttrs {
            verb: s(r, "/verb"),
            group: s(r, "/group"),
            resource: s(r, "/resource"),
            subresource: s(r, "/subresource"),
            namespace: s(r, "/namespace"),
            name: s(r, "/name"),
        }));
    }
    if let Some(n) = spec.get("nonResourceAttributes").filter(|r| r.is_object()) {
        return Ok(Request::NonResource { verb: s(n, "/verb"), path: s(n, "/path") });
    }
    Err(ApiError::BadRequest("spec: exactly one of resourceAttributes or nonResourceAttributes must be set".into()))
}

/// A LocalSubjectAccessReview asks about its own namespace only: the
/// spec's `resourceAttributes.namespace` must be the URL's (400 otherwise),
/// and non-resource requests are cluster-wide, so refused (pure).
pub fn local_namespace(spec: &Value, url_namespace: &str) -> Result<()> {
    let asked = spec.pointer("/resourceAttributes/namespace").and_then(Value::as_str).unwrap_or_default();
    if spec.get("nonResourceAttributes").is_some_and(Value::is_object) {
        return Err(ApiError::BadRequest(
            "spec.nonResourceAttributes: Invalid value: disallowed on this kind of request".into(),
        ));
    }
    if asked != url_namespace {
        return Err(ApiError::BadRequest(format!(
            "spec.resourceAttributes.namespace: Invalid value: {asked:?}: must match metadata.namespace {url_namespace:?}"
        )));
    }
    Ok(())
}

/// The user a SubjectAccessReview's `spec` names (pure).
pub fn reviewed_user(spec: &Value) -> UserInfo {
    let groups = spec.get("groups").and_then(Value::as_array).into_iter().flatten();
    UserInfo {
        name: s(spec, "/user"),
        uid: s(spec, "/uid"),
        groups: groups.filter_map(Value::as_str).map(String::from).collect(),
    }
}

/// What a review is answered with: the state and the apiserver's authenticator.
pub struct Reviewers<'a> {
    pub state: &'a ApiState,
    pub authn: &'a Authenticator,
}

/// POST of a review by `user`.
pub async fn create(
    r: &Reviewers<'_>,
    user: &UserInfo,
    headers: &HeaderMap,
    body: &Bytes,
    t: &Target,
) -> Result<Response> {
    let state = r.state;
    let mut obj = parse(t.info, headers, body)?;
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let status = match t.info.kind {
        Kind::TokenReview => token_status(token_user(r, &s(&spec, "/token")).await, &spec),
        Kind::SelfSubjectAccessReview => access_status(state, user, &spec)?,
        Kind::SubjectAccessReview => access_status(state, &reviewed_user(&spec), &spec)?,
        Kind::LocalSubjectAccessReview => {
            local_namespace(&spec, t.namespace.as_deref().unwrap_or_default())?;
            access_status(state, &reviewed_user(&spec), &spec)?
        }
        Kind::SelfSubjectReview => json!({"userInfo": user_info(user)}),
        _ => rules_status(state, user, &s(&spec, "/namespace")),
    };
    obj["apiVersion"] = json!(t.info.api_version());
    obj["kind"] = json!(t.info.kind_name);
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    if matches!(t.info.kind, Kind::LocalSubjectAccessReview) {
        obj["metadata"]["namespace"] = json!(t.namespace);
    }
    obj["status"] = status;
    Ok(json_response(StatusCode::CREATED, &obj, &[]))
}

/// The `userInfo` of a SelfSubjectReview (`kubectl auth whoami`).
pub fn user_info(user: &UserInfo) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    info
}

fn access_status(state: &ApiState, user: &UserInfo, spec: &Value) -> Result<Value> {
    let request = reviewed_request(spec)?;
    Ok(match state.authz.authorize(user, &request) {
        Decision::Allow(reason) => json!({"allowed": true, "reason": reason}),
        Decision::Deny(reason) if reason.is_empty() => json!({"allowed": false}),
        Decision::Deny(reason) => json!({"allowed": false, "reason": reason}),
    })
}

/// The user of a TokenReview's token, exactly as the request pipeline
/// authenticates a request carrying it (ServiceAccount tokens included).
async fn token_user(r: &Reviewers<'_>, token: &str) -> std::result::Result<UserInfo, String> {
    let identified = r.authn.authenticate_token(token).map_err(|refused| refused.to_string())?;
    super::resolve_identity(r.state, identified).await.map_err(|_| "invalid bearer token".to_string())
}

/// A TokenReview's status from the token's user (pure).
fn token_status(user: std::result::Result<UserInfo, String>, spec: &Value) -> Value {
    match user {
        Ok(user) => json!({"authenticated": true,
            "user": {"username": user.name, "uid": user.uid, "groups": user.groups},
            "audiences": spec.get("audiences").cloned().unwrap_or(json!([]))}),
        Err(error) => json!({"authenticated": false, "error": error}),
    }
}

fn rules_status(state: &ApiState, user: &UserInfo, namespace: &str) -> Value {
    let (mut resource_rules, mut non_resource_rules) = (Vec::new(), Vec::new());
    for rule in state.authz.rules_for(user, namespace) {
        if rule.non_resource_urls.is_empty() {
            resource_rules.push(rule.to_json());
        } else {
            non_resource_rules.push(rule.to_json());
        }
    }
    // The Node authorizer's grants depend on the object: not listable.
    let incomplete = node::node_name(user).is_some();
    json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": incomplete})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_the_request_and_user() {
        let spec = json!({"resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "d", "subresource": "log"},
            "user": "u", "groups": ["g"]});
        assert_eq!(
            reviewed_request(&spec).ok(),
            Some(Request::Resource(ResourceAttrs::new("get", "", "pods", "d", "").on_subresource("log")))
        );
        assert_eq!(reviewed_user(&spec).groups, vec!["g"]);
        let path = json!({"nonResourceAttributes": {"verb": "get", "path": "/healthz"}});
        assert_eq!(reviewed_request(&path).ok(), Some(Request::get_path("/healthz")));
        assert!(reviewed_request(&json!({})).is_err());
    }

    #[test]
    fn a_local_review_stays_in_its_namespace() {
        let spec = |ns: &str| json!({"resourceAttributes": {"verb": "get", "resource": "pods", "namespace": ns}});
        assert!(local_namespace(&spec("d"), "d").is_ok());
        assert!(local_namespace(&spec("other"), "d").is_err());
        assert!(local_namespace(&spec(""), "d").is_err());
        assert!(local_namespace(&json!({"nonResourceAttributes": {"verb": "get", "path": "/healthz"}}), "d").is_err());
    }

    #[tokio::test]
    async fn a_token_review_names_the_user_the_pipeline_would() {
        let tokens = crate::auth::tokens::TokenTable::parse("sekret,alice,1001,\"dev,ops\"\n").expect("tokens");
        let authn = Authenticator::new(tokens);
        let store = crate::store::Store::open_in_memory().expect("store");
        let state = ApiState::new(store, "10.96.0.0/16".parse().expect("cidr"), String::new(), Default::default());
        let r = Reviewers { state: &state, authn: &authn };
        let r = &r;
        let review = |spec: Value| async move { token_status(token_user(r, &s(&spec, "/token")).await, &spec) };
        let known = review(json!({"token": "sekret"})).await;
        assert_eq!(known["authenticated"], true);
        assert_eq!(known["user"]["username"], "alice");
        assert_eq!(known["user"]["uid"], "1001");
        assert_eq!(known["user"]["groups"], json!(["dev", "ops", "system:authenticated"]));
        for spec in [json!({"token": "nope"}), json!({"token": ""}), json!({})] {
            assert_eq!(review(spec.clone()).await["authenticated"], false, "{spec}");
        }
    }
}
