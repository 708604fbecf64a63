//! What a request asks to do, in the terms authorizers decide on (upstream's
//! `authorizer.Attributes`): a verb on a resource, or a verb on a path.

use super::user::UserInfo;

/// A verb on a resource (all strings; `""` is "none").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceAttrs {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, `impersonate`...
    pub verb: String,
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource (`status`, `log`...).
    pub subresource: String,
    /// Namespace (`""` for cluster-scoped requests).
    pub namespace: String,
    /// Object name (`""` for collections).
    pub name: String,
}

impl ResourceAttrs {
    /// A request with verb, group, resource, namespace and name.
    pub fn new(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> ResourceAttrs {
        ResourceAttrs {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: String::new(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The same request on `subresource`.
    pub fn on_subresource(self, subresource: &str) -> ResourceAttrs {
        ResourceAttrs { subresource: subresource.into(), ..self }
    }

    /// `pods` or `pods/log`: how rules and messages name the resource.
    pub fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// What is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A verb on a resource.
    Resource(ResourceAttrs),
    /// A verb (`get`, `post`...) on a non-resource path (`/healthz`, `/api`...).
    NonResource {
        /// Lower-case HTTP verb.
        verb: String,
        /// The request path.
        path: String,
    },
}

impl Request {
    /// A non-resource `get` of `path`.
    pub fn get_path(path: &str) -> Request {
        Request::NonResource { verb: "get".into(), path: path.into() }
    }
}

/// Who asks what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// The user.
    pub user: UserInfo,
    /// The request.
    pub request: Request,
}

/// Upstream's forbidden message: `pods "x" is forbidden: User "u" cannot get
/// resource "pods" in API group "" in the namespace "ns"` (a `: reason` is
/// appended when the authorizer gave one).
pub fn forbidden_message(user: &str, request: &Request, reason: &str) -> String {
    let mut msg = match request {
        Request::NonResource { verb, path } => format!("forbidden: User {user:?} cannot {verb} path {path:?}"),
        Request::Resource(r) => {
            let qualified = if r.group.is_empty() { r.resource.clone() } else { format!("{}.{}", r.resource, r.group) };
            let head = if r.name.is_empty() {
                format!("{qualified} is forbidden")
            } else {
                format!("{qualified} {:?} is forbidden", r.name)
            };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {:?}", r.namespace)
            };
            format!(
                "{head}: User {user:?} cannot {} resource {:?} in API group {:?} {scope}",
                r.verb,
                r.resource_path(),
                r.group
            )
        }
    };
    if !reason.is_empty() {
        msg.push_str(": ");
        msg.push_str(reason);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_match_upstream() {
        let get = Request::Resource(ResourceAttrs::new("get", "", "pods", "ns", "x"));
        assert_eq!(
            forbidden_message("u", &get, ""),
            r#"pods "x" is forbidden: User "u" cannot get resource "pods" in API group "" in the namespace "ns""#
        );
        let list = Request::Resource(ResourceAttrs::new("list", "apps", "deployments", "", ""));
        assert_eq!(
            forbidden_message("u", &list, ""),
            r#"deployments.apps is forbidden: User "u" cannot list resource "deployments" in API group "apps" at the cluster scope"#
        );
        let log = Request::Resource(ResourceAttrs::new("get", "", "pods", "d", "p").on_subresource("log"));
        assert!(forbidden_message("u", &log, "no")
            .ends_with(r#"cannot get resource "pods/log" in API group "" in the namespace "d": no"#));
        assert_eq!(
            forbidden_message("u", &Request::get_path("/metrics"), ""),
            r#"forbidden: User "u" cannot get path "/metrics""#
        );
    }
}
