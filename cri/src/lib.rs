//! bosun-cri: the typed client bosun uses to drive a CRI runtime (containerd),
//! and an in-memory fake runtime for tests.
//!
//! Owns: connecting to the runtime's unix socket ([`CriClient::connect`]),
//! one typed method per CRI call the agent needs, per-call deadlines, and
//! errors that name the call and the pod, container or image involved
//! ([`Error`]). [`testing::FakeCri`] serves the same gRPC API from memory so
//! the agent's tests exercise the real client.
//!
//! Must not: decide anything about pods. It does not retry failed calls,
//! restart or order them; the agent does. (A call cut off by a runtime
//! restart is sent again when that is safe; see `resend.rs`.) A client must be used inside the tokio runtime that
//! connected it, since its channel runs a task there.
//!
//! The generated CRI types are re-exported as [`api`].

mod client;
mod connect;
mod error;
mod image;
mod resend;
mod runtime;
pub mod testing;

/// The generated CRI v1 messages and services, e.g. `api::PodSandboxConfig`.
pub use bosun_proto::cri as api;

pub use client::CriClient;
pub use connect::ClientOptions;
pub use error::{Error, Result};
pub use runtime::ExecOutput;
