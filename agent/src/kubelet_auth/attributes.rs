//! A kubelet API request as authorizer attributes (pure), upstream's
//! mapping: resource `nodes` named after this node, in the core group; the
//! subresource from the path (`stats` for `/stats/*`, `metrics` for
//! `/metrics*`, `log` for `/logs/*`, `spec` for `/spec/*`, `pods` for
//! `/pods`, `healthz` for `/healthz`), `proxy` for everything else; the
//! verb from the HTTP method.
//!
//! The fine-grained subresources (`pods`, `healthz`) fall back to `proxy`
//! as upstream's `KubeletFineGrainedAuthz` does: a caller allowed
//! `nodes/proxy` may read them too. The streaming endpoints (`/exec`,
//! `/attach`, `/portForward`, `/run`) always need `create`: their
//! WebSocket variants arrive as `GET`, and reading must not grant a shell.

use axum::http::Method;

/// The node API group (core) and resource.
pub const NODES: &str = "nodes";

/// What a request asks of the node object, as a SubjectAccessReview's
/// `resourceAttributes`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// `get`, `create`, `update`, `patch`, `delete`.
    pub verb: &'static str,
    /// `proxy`, `stats`, `metrics`, `log`, `spec`, `pods`, `healthz`.
    pub subresource: &'static str,
    /// The node's name.
    pub node: String,
}

/// The verb of an HTTP method (upstream's kubelet mapping).
pub fn verb_of(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "get",
    }
}

/// Whether `path` is `prefix` itself or below it.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The attributes of `method path` on node `node`, in the order to try:
/// the request is allowed if any is (pure).
pub fn attributes_for(method: &Method, path: &str, node: &str) -> Vec<Attributes> {
    let streaming = ["/exec", "/attach", "/portForward", "/run"].iter().any(|p| under(path, p));
    let verb = if streaming { "create" } else { verb_of(method) };
    let subresource = match path {
        _ if under(path, "/stats") => "stats",
        _ if path.starts_with("/metrics") => "metrics",
        _ if under(path, "/logs") => "log",
        _ if under(path, "/spec") => "spec",
        _ if under(path, "/pods") => "pods",
        _ if under(path, "/healthz") => "healthz",
        _ => "proxy",
    };
    let one = |subresource| Attributes { verb, subresource, node: node.to_string() };
    match subresource {
        "pods" | "healthz" => vec![one(subresource), one("proxy")],
        _ => vec![one(subresource)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(method: Method, path: &str) -> Vec<(&'static str, &'static str)> {
        attributes_for(&method, path, "n1").iter().map(|a| (a.verb, a.subresource)).collect()
    }

    #[test]
    fn paths_map_to_upstreams_node_subresources() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("/stats/summary", &[("get", "stats")]),
            ("/stats", &[("get", "stats")]),
            ("/metrics", &[("get", "metrics")]),
            ("/metrics/resource", &[("get", "metrics")]),
            ("/metrics/cadvisor", &[("get", "metrics")]),
            ("/logs/syslog", &[("get", "log")]),
            ("/spec/", &[("get", "spec")]),
            ("/pods", &[("get", "pods"), ("get", "proxy")]),
            ("/healthz", &[("get", "healthz"), ("get", "proxy")]),
            ("/runningpods", &[("get", "proxy")]),
            ("/containerLogs/ns/p/c", &[("get", "proxy")]),
            ("/statsx", &[("get", "proxy")]),
            ("/podsx", &[("get", "proxy")]),
            ("/", &[("get", "proxy")]),
        ];
        for (path, want) in cases {
            assert_eq!(subs(Method::GET, path), *want, "{path}");
        }
    }

    #[test]
    fn the_method_is_the_verb_and_streams_always_need_create() {
        assert_eq!(subs(Method::POST, "/pods"), [("create", "pods"), ("create", "proxy")]);
        assert_eq!(subs(Method::DELETE, "/x"), [("delete", "proxy")]);
        assert_eq!(subs(Method::PUT, "/x"), [("update", "proxy")]);
        assert_eq!(subs(Method::PATCH, "/x"), [("patch", "proxy")]);
        assert_eq!(subs(Method::HEAD, "/stats/summary"), [("get", "stats")]);
        for path in ["/exec/ns/p/c", "/attach/ns/p/c", "/portForward/ns/p", "/run/ns/p/c"] {
            assert_eq!(subs(Method::GET, path), [("create", "proxy")], "{path}");
            assert_eq!(subs(Method::POST, path), [("create", "proxy")], "{path}");
        }
    }

    #[test]
    fn attributes_name_this_node() {
        assert!(attributes_for(&Method::GET, "/pods", "n1").iter().all(|a| a.node == "n1"));
    }
}
