//! Authorization of API requests (authentication is a separate step that
//! puts a [`user::UserInfo`] into each request).
//!
//! Order of a request's checks: impersonation (`impersonate`: the real user
//! must be allowed to `impersonate` each asked identity; the request then
//! runs as the impersonated user) → `system:masters` → the Node authorizer
//! (`node`, over the node → pod → Secret graph in `node_graph`) → RBAC
//! (`rbac`). `cache` keeps the RBAC snapshot and the node graph current by
//! watching the store; decisions read only that view. `bootstrap_roles`
//! holds upstream's default roles; `attributes` the request's terms and the
//! forbidden message. All decision modules are pure and table-tested; the
//! HTTP pipeline (`apiserver::http::authz`) applies them.

pub mod attributes;
pub mod authorize;
pub mod bootstrap_roles;
pub mod cache;
pub mod impersonate;
pub mod node;
pub mod node_graph;
pub mod rbac;
pub mod user;
