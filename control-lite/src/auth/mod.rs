//! Who is calling: the cluster CA and its certificates (`ca`), TLS serving
//! and probing (`tls`), and the authenticators that turn a request's
//! credentials into a [`user::UserInfo`] (`authn`: client certificates via
//! `x509`, bearer tokens via `tokens`). Authorization is elsewhere; it reads
//! the `UserInfo` the pipeline puts into the request's extensions.
//!
//! State files (CA key, kubeconfigs) are written by `files`: 0600 in 0700
//! directories.

pub mod authn;
pub mod ca;
pub mod files;
pub mod serving;
pub mod tls;
pub mod tokens;
pub mod user;
pub mod x509;
