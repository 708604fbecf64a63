//! Step 3 of the pipeline: who is asking (with impersonation applied) and
//! whether they may. The decisions are `crate::auth`'s; this module maps a
//! decided [`Call`] to request attributes (pure, table-tested) and turns a
//! denial into a 403.

use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use serde_json::Value;

use super::call::{Call, Verb};
use super::path::Target;
use crate::apiserver::metrics_api::{self, MetricsPath};
use crate::apiserver::options::Query;
use crate::apiserver::registry::Kind;
use crate::apiserver::status::{ApiError, Result};
use crate::apiserver::ApiState;
use crate::auth::attributes::{forbidden_message, Request, ResourceAttrs};
use crate::auth::authorize::Decision;
use crate::auth::cache::AuthzCache;
use crate::auth::impersonate::{self, GROUP_HEADER, UID_HEADER, USER_HEADER};
use crate::auth::node;
use crate::auth::user::{UserInfo, ANONYMOUS, UNAUTHENTICATED};

/// The user of a request that carries no identity. Authentication (step 0
/// of the pipeline) puts one into every request, so this only fails
/// closed: anonymous.
fn unidentified() -> UserInfo {
    UserInfo { name: ANONYMOUS.into(), uid: String::new(), groups: vec![UNAUTHENTICATED.into()] }
}

/// The authenticated user (authentication's extension).
fn authenticated_user(parts: &Parts) -> UserInfo {
    parts.extensions.get::<UserInfo>().cloned().unwrap_or_else(unidentified)
}

/// The request's attributes in authorization terms. A list or watch whose
/// `fieldSelector` is exactly `metadata.name=<n>` is about object `n` (as
/// upstream's RequestInfo), so a node may watch one Secret its pod uses.
pub fn attributes(method: &Method, path: &str, call: &Call, query: &Query) -> Request {
    match call {
        Call::Fixed(_) => Request::NonResource { verb: method.as_str().to_ascii_lowercase(), path: path.to_string() },
        Call::Resource(verb, target) => {
            let mut attrs = resource_attrs(*verb, target);
            if matches!(verb, Verb::List | Verb::Watch) && attrs.name.is_empty() {
                attrs.name =
                    single_name(query.get("fieldSelector").unwrap_or_default()).unwrap_or_default().to_string();
            }
            Request::Resource(attrs)
        }
    }
}

/// `n` of a field selector that is exactly `metadata.name=n` (or `==`).
fn single_name(selector: &str) -> Option<&str> {
    let rest = selector.trim().strip_prefix("metadata.name")?;
    let name = rest.strip_prefix("==").or_else(|| rest.strip_prefix('='))?;
    (!name.is_empty() && !name.contains(',') && !name.starts_with('=')).then_some(name)
}

fn resource_attrs(verb: Verb, t: &Target) -> ResourceAttrs {
    let verb = match verb {
        Verb::Get | Verb::GetScale | Verb::Log => "get",
        Verb::List => "list",
        Verb::Watch => "watch",
        Verb::Create | Verb::Bind | Verb::CreateToken | Verb::Evict | Verb::Stream(_) => "create",
        Verb::Update(_) | Verb::UpdateScale | Verb::Finalize => "update",
        Verb::Patch(_) | Verb::PatchScale => "patch",
        Verb::Delete => "delete",
        Verb::DeleteCollection => "deletecollection",
    };
    let name = t.name.clone().unwrap_or_default();
    // A namespace is its own namespace (upstream's RequestInfo), so a
    // RoleBinding in `x` can grant `get namespace x`.
    let namespace = match (&t.namespace, t.info.kind) {
        (Some(ns), _) => ns.clone(),
        (None, Kind::Namespace) => name.clone(),
        (None, _) => String::new(),
    };
    ResourceAttrs {
        verb: verb.into(),
        group: t.info.group.into(),
        resource: t.info.plural.into(),
        subresource: t.sub.map(|s| s.path().to_string()).unwrap_or_default(),
        namespace,
        name,
    }
}

/// The attributes of a `metrics.k8s.io` request (a `get` of the group's documents is a discovery path).
pub fn metrics_attributes(method: &Method, path: &str, m: &MetricsPath) -> Request {
    let (resource, namespace, name) = match m {
        MetricsPath::Group | MetricsPath::Resources => {
            return Request::NonResource { verb: method.as_str().to_ascii_lowercase(), path: path.to_string() }
        }
        MetricsPath::Nodes(name) => ("nodes", None, name),
        MetricsPath::Pods { namespace, name } => ("pods", namespace.as_deref(), name),
    };
    let verb = if name.is_some() { "get" } else { "list" };
    Request::Resource(ResourceAttrs::new(
        verb,
        metrics_api::GROUP,
        resource,
        namespace.unwrap_or_default(),
        name.as_deref().unwrap_or_default(),
    ))
}

fn header_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(String::from).collect()
}

fn deny(cache: &AuthzCache, user: &UserInfo, request: &Request) -> Result<()> {
    match cache.authorize(user, request) {
        Decision::Allow(_) => Ok(()),
        Decision::Deny(reason) => Err(ApiError::Forbidden(forbidden_message(&user.name, request, &reason))),
    }
}

/// The user the request runs as: the authenticated user, or the identity it
/// impersonates if the authenticated user may impersonate it (403 if not).
pub fn effective_user(cache: &AuthzCache, parts: &Parts) -> Result<UserInfo> {
    let real = authenticated_user(parts);
    let h = &parts.headers;
    let asked = impersonate::parse(
        h.get(USER_HEADER).and_then(|v| v.to_str().ok()),
        header_values(h, GROUP_HEADER),
        h.get(UID_HEADER).and_then(|v| v.to_str().ok()),
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let Some(asked) = asked else { return Ok(real) };
    for check in impersonate::required_checks(&asked) {
        deny(cache, &real, &Request::Resource(check))?;
    }
    Ok(impersonate::impersonated_user(&asked))
}

/// Whether `user` may make `request` (403 with upstream's message if not).
pub fn authorize(state: &ApiState, user: &UserInfo, request: &Request) -> Result<()> {
    deny(&state.authz, user, request)
}

/// Upstream's CertificateApproval admission: approving or denying a
/// CertificateSigningRequest also needs `approve` on `signers` named by its
/// `signerName` (or `<domain>/*`), 403 otherwise.
pub fn admit_csr_approval(state: &ApiState, user: &UserInfo, csr: &Value) -> Result<()> {
    let signer = csr.pointer("/spec/signerName").and_then(Value::as_str).unwrap_or_default();
    let attrs =
        |name: String| Request::Resource(ResourceAttrs::new("approve", "certificates.k8s.io", "signers", "", &name));
    let wildcard = signer.split_once('/').map(|(domain, _)| format!("{domain}/*"));
    let allowed = std::iter::once(signer.to_string())
        .chain(wildcard)
        .any(|name| state.authz.authorize(user, &attrs(name)).allowed());
    if allowed {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!("user not permitted to approve requests with signerName {signer:?}")))
}

/// NodeRestriction on creates by a node identity (403 if refused).
pub fn admit_node_create(user: &UserInfo, request: &Request, body: &Value) -> Result<()> {
    let (Some(node), Request::Resource(r)) = (node::node_name(user), request) else { return Ok(()) };
    if r.verb != "create" || !r.subresource.is_empty() {
        return Ok(());
    }
    node::admit_create(node, r, body)
        .map_err(|reason| ApiError::Forbidden(forbidden_message(&user.name, request, &reason)))
}

/// NodeRestriction on a node's TokenRequest (403 if refused).
pub fn admit_node_token(state: &ApiState, user: &UserInfo, request: &Request, body: &Value) -> Result<()> {
    let (Some(node), Request::Resource(r)) = (node::node_name(user), request) else { return Ok(()) };
    state
        .authz
        .admit_node_token(node, &r.namespace, &r.name, body)
        .map_err(|reason| ApiError::Forbidden(forbidden_message(&user.name, request, &reason)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::http::path::parse_path;

    fn attrs(method: Method, path: &str, watch: bool) -> Option<Request> {
        let call = Call::decide(&method, parse_path(path)?, watch).ok()?;
        Some(attributes(&method, path, &call, &Query::default()))
    }

    #[test]
    fn a_list_or_watch_of_one_name_is_about_that_object() {
        let call =
            Call::decide(&Method::GET, parse_path("/api/v1/namespaces/d/secrets").expect("path"), true).expect("call");
        let with = |selector: &str| {
            let query = Query::parse(Some(&format!("watch=true&fieldSelector={selector}"))).expect("query");
            attributes(&Method::GET, "/api/v1/namespaces/d/secrets", &call, &query)
        };
        assert_eq!(Some(with("metadata.name%3Ds1")), res("watch", "", "secrets", "", "d", "s1"));
        assert_eq!(Some(with("metadata.name%3D%3Ds1")), res("watch", "", "secrets", "", "d", "s1"));
        for other in ["metadata.name%3Ds1%2Cmetadata.namespace%3Dd", "metadata.name!%3Ds1", "type%3Dx", ""] {
            assert_eq!(Some(with(other)), res("watch", "", "secrets", "", "d", ""), "{other}");
        }
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Option<Request> {
        Some(Request::Resource(ResourceAttrs::new(verb, group, resource, ns, name).on_subresource(sub)))
    }

    #[test]
    fn calls_map_to_upstream_attributes() {
        let cases = [
            (Method::GET, "/api/v1/namespaces/d/pods", false, res("list", "", "pods", "", "d", "")),
            (Method::GET, "/api/v1/pods", true, res("watch", "", "pods", "", "", "")),
            (Method::GET, "/api/v1/namespaces/d/pods/p/log", false, res("get", "", "pods", "log", "d", "p")),
            (Method::POST, "/api/v1/namespaces/d/pods/p/exec", false, res("create", "", "pods", "exec", "d", "p")),
            (
                Method::POST,
                "/api/v1/namespaces/d/pods/p/binding",
                false,
                res("create", "", "pods", "binding", "d", "p"),
            ),
            (Method::PATCH, "/api/v1/nodes/n1/status", false, res("patch", "", "nodes", "status", "", "n1")),
            (
                Method::PUT,
                "/apis/apps/v1/namespaces/d/deployments/w/scale",
                false,
                res("update", "apps", "deployments", "scale", "d", "w"),
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/d/secrets",
                false,
                res("deletecollection", "", "secrets", "", "d", ""),
            ),
            (Method::GET, "/api/v1/namespaces/x", false, res("get", "", "namespaces", "", "x", "x")),
            (
                Method::PUT,
                "/api/v1/namespaces/x/finalize",
                false,
                res("update", "", "namespaces", "finalize", "x", "x"),
            ),
            (Method::GET, "/healthz", false, Some(Request::get_path("/healthz"))),
            (Method::GET, "/apis/apps/v1", false, Some(Request::get_path("/apis/apps/v1"))),
        ];
        for (method, path, watch, want) in cases {
            assert_eq!(attrs(method.clone(), path, watch), want, "{method} {path}");
        }
    }

    #[test]
    fn metrics_paths_are_resources_of_their_group() {
        let m = metrics_api::parse("/apis/metrics.k8s.io/v1beta1/namespaces/d/pods").unwrap_or(MetricsPath::Group);
        assert_eq!(
            metrics_attributes(&Method::GET, "/x", &m),
            Request::Resource(ResourceAttrs::new("list", "metrics.k8s.io", "pods", "d", ""))
        );
        assert_eq!(
            metrics_attributes(&Method::GET, "/apis/metrics.k8s.io", &MetricsPath::Group),
            Request::get_path("/apis/metrics.k8s.io")
        );
    }

    #[test]
    fn requests_without_identity_are_anonymous() {
        let parts = axum::http::Request::new(()).into_parts().0;
        let user = authenticated_user(&parts);
        assert_eq!((user.name.as_str(), user.groups), (ANONYMOUS, vec![UNAUTHENTICATED.to_string()]));
    }
}
