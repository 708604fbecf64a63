//! Request paths: `/api/...`, `/apis/...`, OpenAPI, version and health
//! paths parsed into a [`Route`] (pure, table-tested).

use crate::apiserver::registry::{lookup_in, ResourceInfo, Subresource};

/// A parsed resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The resource.
    pub info: &'static ResourceInfo,
    /// Namespace segment, if any.
    pub namespace: Option<String>,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource, if any.
    pub sub: Option<Subresource>,
}

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/healthz`, `/readyz`, `/livez`.
    Health,
    /// `/version`.
    Version,
    /// `/metrics`: the process's Prometheus series.
    Metrics,
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/.well-known/openid-configuration`: the ServiceAccount issuer.
    OidcConfiguration,
    /// `/openid/v1/jwks`: the issuer's public keys.
    Jwks,
    /// `/openapi/v3` and below (the rest of the path).
    OpenApiV3(String),
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1`, `/apis/<g>/<v>`.
    Resources(String, String),
    /// An object or collection.
    Resource(Target),
}

/// Parses a request path into a route among the built-in resources (None: not served).
pub fn parse_path(path: &str) -> Option<Route> {
    parse_path_with(path, &[])
}

/// Parses a request path into a route among the built-in resources and
/// `custom` (None: not served).
pub fn parse_path_with(path: &str, custom: &[&'static ResourceInfo]) -> Option<Route> {
    let lookup = |g: &str, v: &str, p: &str| lookup_in(custom, g, v, p);
    match path.trim_end_matches('/') {
        "/healthz" | "/readyz" | "/livez" => return Some(Route::Health),
        "/version" => return Some(Route::Version),
        "/metrics" => return Some(Route::Metrics),
        "/openapi/v2" => return Some(Route::OpenApiV2),
        crate::apiserver::oidc::CONFIGURATION_PATH => return Some(Route::OidcConfiguration),
        crate::apiserver::oidc::JWKS_PATH => return Some(Route::Jwks),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/openapi/v3") {
        return Some(Route::OpenApiV3(rest.trim_matches('/').to_string()));
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api"] => return Some(Route::CoreVersions),
        ["apis"] => return Some(Route::Groups),
        ["apis", g] => return Some(Route::Group(g.to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    if rest.is_empty() {
        return Some(Route::Resources(group.into(), version.into()));
    }
    let namespaced =
        rest.len() >= 3 && rest[0] == "namespaces" && lookup(group, version, rest[2]).is_some_and(|r| r.namespaced);
    let (namespace, rest) = if namespaced { (Some(rest[1].to_string()), &rest[2..]) } else { (None, rest) };
    let info = lookup(group, version, rest[0])?;
    let name = rest.get(1).map(|s| s.to_string());
    let sub = match rest.get(2) {
        Some(s) => Some(Subresource::parse(s).filter(|sub| info.has_subresource(*sub))?),
        None => None,
    };
    if rest.len() > 3 {
        return None;
    }
    Some(Route::Resource(Target { info, namespace, name, sub }))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = (String, Option<String>, Option<String>, Option<Subresource>);

    fn target(path: &str) -> Option<Parsed> {
        match parse_path(path)? {
            Route::Resource(t) => Some((t.info.plural.to_string(), t.namespace, t.name, t.sub)),
            _ => None,
        }
    }

    #[test]
    fn paths_parse_into_targets() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(target("/api/v1/pods"), Some(("pods".into(), None, None, None)));
        assert_eq!(target("/api/v1/namespaces/default/pods"), Some(("pods".into(), s("default"), None, None)));
        assert_eq!(
            target("/api/v1/namespaces/default/pods/p/log"),
            Some(("pods".into(), s("default"), s("p"), Some(Subresource::Log)))
        );
        assert_eq!(target("/api/v1/namespaces/default"), Some(("namespaces".into(), None, s("default"), None)));
        assert_eq!(
            target("/api/v1/namespaces/default/status"),
            Some(("namespaces".into(), None, s("default"), Some(Subresource::Status)))
        );
        assert_eq!(
            target("/apis/apps/v1/namespaces/x/deployments/web/scale"),
            Some(("deployments".into(), s("x"), s("web"), Some(Subresource::Scale)))
        );
        assert_eq!(target("/api/v1/nodes/n1/status"), Some(("nodes".into(), None, s("n1"), Some(Subresource::Status))));
        assert_eq!(target("/api/v1/configmaps/x/scale"), None);
        assert_eq!(target("/api/v1/widgets"), None);
        assert_eq!(parse_path("/apis/apps/v1"), Some(Route::Resources("apps".into(), "v1".into())));
        assert_eq!(parse_path("/api"), Some(Route::CoreVersions));
    }

    #[test]
    fn fixed_paths_parse() {
        assert_eq!(parse_path("/healthz"), Some(Route::Health));
        assert_eq!(parse_path("/readyz/"), Some(Route::Health));
        assert_eq!(parse_path("/version"), Some(Route::Version));
        assert_eq!(parse_path("/.well-known/openid-configuration"), Some(Route::OidcConfiguration));
        assert_eq!(parse_path("/openid/v1/jwks/"), Some(Route::Jwks));
        assert_eq!(parse_path("/openapi/v2"), Some(Route::OpenApiV2));
        assert_eq!(parse_path("/openapi/v3/apis/apps/v1"), Some(Route::OpenApiV3("apis/apps/v1".into())));
        assert_eq!(parse_path("/metrics"), Some(Route::Metrics));
    }
}
