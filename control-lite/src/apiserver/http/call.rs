//! What a request asks for: its route and method decide a [`Call`] (pure,
//! table-tested), and the call decides its limit [`Class`].

use axum::http::Method;

use super::path::{Route, Target};
use crate::apiserver::crud::UpdateScope;
use crate::apiserver::registry::Subresource;
use crate::apiserver::status::{ApiError, Result};

/// The verb on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET one object (or its `/status`).
    Get,
    /// GET a collection.
    List,
    /// GET with `watch=true`.
    Watch,
    /// POST to a collection.
    Create,
    /// PUT an object or its `/status`.
    Update(UpdateScope),
    /// PATCH an object or its `/status`.
    Patch(UpdateScope),
    /// DELETE one object.
    Delete,
    /// DELETE a collection.
    DeleteCollection,
    /// GET `/scale`.
    GetScale,
    /// PUT `/scale`.
    UpdateScale,
    /// PATCH `/scale`.
    PatchScale,
    /// POST `pods/<name>/binding`.
    Bind,
    /// GET `pods/<name>/log`.
    Log,
    /// PUT `namespaces/<name>/finalize`.
    Finalize,
    /// POST `serviceaccounts/<name>/token` (TokenRequest).
    CreateToken,
    /// POST `pods/<name>/eviction` (a policy/v1 Eviction).
    Evict,
    /// GET or POST `pods/<name>/exec|attach|portforward`: an upgraded stream.
    Stream(Subresource),
}

/// A decided request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A fixed or discovery path (GET only).
    Fixed(Route),
    /// A verb on a resource.
    Resource(Verb, Target),
}

/// How a call counts against the in-flight limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Not limited: health checks and long-running requests (watch, logs),
    /// which upstream also exempts from max-in-flight.
    Exempt,
    /// Counts against the non-mutating limit.
    ReadOnly,
    /// Counts against the mutating limit.
    Mutating,
}

impl Call {
    /// Decides the call of `method` on `route`.
    pub fn decide(method: &Method, route: Route, watch: bool) -> Result<Call> {
        let Route::Resource(target) = route else {
            return match *method {
                Method::GET | Method::HEAD => Ok(Call::Fixed(route)),
                ref m => Err(not_allowed(m)),
            };
        };
        let scope = |sub: Option<Subresource>| match sub {
            Some(Subresource::Status) => UpdateScope::Status,
            Some(Subresource::Resize) => UpdateScope::Resize,
            Some(Subresource::Approval) => UpdateScope::Approval,
            _ => UpdateScope::Main,
        };
        let named = target.name.is_some();
        let verb = match (method.clone(), named, target.sub) {
            (Method::GET, _, None) if watch => Verb::Watch,
            (Method::GET, false, None) => Verb::List,
            (Method::GET, true, None | Some(Subresource::Status | Subresource::Resize | Subresource::Approval)) => {
                Verb::Get
            }
            (Method::POST, false, None) => Verb::Create,
            (
                Method::PUT,
                true,
                sub @ (None | Some(Subresource::Status | Subresource::Resize | Subresource::Approval)),
            ) => Verb::Update(scope(sub)),
            (
                Method::PATCH,
                true,
                sub @ (None | Some(Subresource::Status | Subresource::Resize | Subresource::Approval)),
            ) => Verb::Patch(scope(sub)),
            (Method::DELETE, true, None) => Verb::Delete,
            (Method::DELETE, false, None) => Verb::DeleteCollection,
            (Method::GET, true, Some(Subresource::Scale)) => Verb::GetScale,
            (Method::PUT, true, Some(Subresource::Scale)) => Verb::UpdateScale,
            (Method::PATCH, true, Some(Subresource::Scale)) => Verb::PatchScale,
            (Method::POST, true, Some(Subresource::Binding)) => Verb::Bind,
            (Method::GET, true, Some(Subresource::Log)) => Verb::Log,
            (Method::PUT, true, Some(Subresource::Finalize)) => Verb::Finalize,
            (Method::POST, true, Some(Subresource::Token)) => Verb::CreateToken,
            (Method::POST, true, Some(Subresource::Eviction)) => Verb::Evict,
            (
                Method::GET | Method::POST,
                true,
                Some(sub @ (Subresource::Exec | Subresource::Attach | Subresource::PortForward)),
            ) => Verb::Stream(sub),
            (m, _, _) => return Err(not_allowed(&m)),
        };
        Ok(Call::Resource(verb, target))
    }

    /// The in-flight limit this call counts against.
    pub fn class(&self) -> Class {
        match self {
            Call::Fixed(Route::Health) => Class::Exempt,
            Call::Fixed(_) => Class::ReadOnly,
            Call::Resource(verb, _) => match verb {
                Verb::Watch | Verb::Log | Verb::Stream(_) => Class::Exempt,
                Verb::Get | Verb::List | Verb::GetScale => Class::ReadOnly,
                Verb::Create
                | Verb::Update(_)
                | Verb::Patch(_)
                | Verb::Delete
                | Verb::DeleteCollection
                | Verb::UpdateScale
                | Verb::PatchScale
                | Verb::Bind
                | Verb::CreateToken
                | Verb::Evict
                | Verb::Finalize => Class::Mutating,
            },
        }
    }
}

pub(crate) fn not_allowed(m: &Method) -> ApiError {
    ApiError::MethodNotAllowed(format!("the server does not allow this method on the requested resource: {m}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::http::path::parse_path;

    fn decide(method: Method, path: &str, watch: bool) -> Option<(Verb, Class)> {
        let call = Call::decide(&method, parse_path(path)?, watch).ok()?;
        match &call {
            Call::Resource(verb, _) => Some((*verb, call.class())),
            Call::Fixed(_) => None,
        }
    }

    #[test]
    fn method_and_path_decide_verb_and_class() {
        use Class::*;
        let pods = "/api/v1/namespaces/d/pods";
        let pod = "/api/v1/namespaces/d/pods/p";
        let cases = [
            (Method::GET, pods, false, Some((Verb::List, ReadOnly))),
            (Method::GET, pods, true, Some((Verb::Watch, Exempt))),
            (Method::GET, pod, true, Some((Verb::Watch, Exempt))),
            (Method::GET, pod, false, Some((Verb::Get, ReadOnly))),
            (Method::GET, "/api/v1/namespaces/d/pods/p/status", false, Some((Verb::Get, ReadOnly))),
            (Method::POST, pods, false, Some((Verb::Create, Mutating))),
            (Method::PUT, pod, false, Some((Verb::Update(UpdateScope::Main), Mutating))),
            (Method::PATCH, "/api/v1/nodes/n/status", false, Some((Verb::Patch(UpdateScope::Status), Mutating))),
            (Method::DELETE, pod, false, Some((Verb::Delete, Mutating))),
            (Method::DELETE, pods, false, Some((Verb::DeleteCollection, Mutating))),
            (Method::GET, "/apis/apps/v1/namespaces/d/deployments/w/scale", false, Some((Verb::GetScale, ReadOnly))),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/d/deployments/w/scale",
                false,
                Some((Verb::PatchScale, Mutating)),
            ),
            (Method::POST, "/api/v1/namespaces/d/pods/p/binding", false, Some((Verb::Bind, Mutating))),
            (Method::GET, "/api/v1/namespaces/d/pods/p/resize", false, Some((Verb::Get, ReadOnly))),
            (
                Method::PATCH,
                "/api/v1/namespaces/d/pods/p/resize",
                false,
                Some((Verb::Patch(UpdateScope::Resize), Mutating)),
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/d/pods/p/resize",
                false,
                Some((Verb::Update(UpdateScope::Resize), Mutating)),
            ),
            (Method::POST, "/api/v1/namespaces/d/pods/p/resize", false, None),
            (Method::GET, "/api/v1/namespaces/d/pods/p/log", false, Some((Verb::Log, Exempt))),
            (Method::PUT, "/api/v1/namespaces/d/finalize", false, Some((Verb::Finalize, Mutating))),
            (Method::POST, "/api/v1/namespaces/d/pods/p/eviction", false, Some((Verb::Evict, Mutating))),
            (Method::GET, "/api/v1/namespaces/d/pods/p/eviction", false, None),
            (Method::GET, "/api/v1/namespaces/d/pods/p/exec", false, Some((Verb::Stream(Subresource::Exec), Exempt))),
            (
                Method::POST,
                "/api/v1/namespaces/d/pods/p/attach",
                false,
                Some((Verb::Stream(Subresource::Attach), Exempt)),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/d/pods/p/portforward",
                false,
                Some((Verb::Stream(Subresource::PortForward), Exempt)),
            ),
            (Method::PUT, "/api/v1/namespaces/d/pods/p/exec", false, None),
            (Method::POST, pod, false, None),
            (Method::PUT, pods, false, None),
        ];
        for (method, path, watch, want) in cases {
            assert_eq!(decide(method.clone(), path, watch), want, "{method} {path} watch={watch}");
        }
    }

    #[test]
    fn fixed_paths_are_get_only_and_health_is_exempt() {
        let health = Call::decide(&Method::GET, Route::Health, false).expect("health");
        assert_eq!(health.class(), Class::Exempt);
        assert_eq!(Call::decide(&Method::GET, Route::Groups, false).map(|c| c.class()).ok(), Some(Class::ReadOnly));
        assert!(Call::decide(&Method::POST, Route::Version, false).is_err());
    }
}
