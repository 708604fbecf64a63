//! control-lite: a thin Kubernetes-compatible control plane (`bosun control`).
//!
//! Owns: the REST apiserver (`apiserver`), its revisioned store (`store`), the
//! scheduler (`scheduler`), the core controllers (`controllers`) and the
//! leader election that lets several processes share one etcd (`leader`). The
//! scheduler and controllers are API clients (kube-rs) of the apiserver, exactly
//! as kube-scheduler and kube-controller-manager are, so they can later run
//! against an HA apiserver on etcd without change.
//!
//! Must not: depend on the agent (`bosun-agent`). The two planes meet only
//! through the Kubernetes API.

pub mod apiserver;
pub mod auth;
pub mod controllers;
pub mod cron;
pub mod leader;
pub mod metrics;
pub mod scheduler;
pub mod store;
pub mod supervisor;

mod run;
pub use run::{run, ControlArgs};
