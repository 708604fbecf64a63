//! Who is calling and what they may do.
//!
//! **Authentication**: the cluster CA and its certificates (`ca`), TLS
//! serving and probing (`tls`), and the authenticators that turn a
//! request's credentials into a [`user::UserInfo`] (`authn`: client
//! certificates via `x509`, bearer tokens via `tokens`, bootstrap tokens
//! (Secrets in `kube-system`, `bootstrap_token`), ServiceAccount
//! tokens via `sa_token`: its signing key, the claims TokenRequest issues and
//! the decision whether a presented token still stands). State files (CA
//! key, kubeconfigs) are written by `files`: 0600 in 0700 directories.
//! `csr` parses and verifies the PKCS#10 requests of CertificateSigningRequests.
//!
//! **Authorization**, in this order per request: impersonation
//! (`impersonate`: the real user must be allowed to `impersonate` each asked
//! identity; the request then runs as the impersonated user) →
//! `system:masters` → the Node authorizer (`node`, over the node → pod →
//! Secret graph in `node_graph`) → RBAC (`rbac`). `cache` keeps the RBAC
//! snapshot and the node graph current by watching the store; decisions read
//! only that view. `bootstrap_roles` holds upstream's default roles;
//! `attributes` the request's terms and the forbidden message. All decision
//! modules are pure and table-tested; the HTTP pipeline
//! (`apiserver::http::authz`) applies them.

pub mod attributes;
pub mod authn;
pub mod authorize;
pub mod bootstrap_roles;
pub mod bootstrap_token;
pub mod ca;
pub mod cache;
pub mod csr;
pub mod files;
pub mod impersonate;
pub mod node;
pub mod node_graph;
pub mod rbac;
pub mod sa_token;
pub mod serving;
pub mod tls;
pub mod tokens;
pub mod user;
pub mod x509;
