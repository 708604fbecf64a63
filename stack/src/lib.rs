//! The node's private runtime stack.
//!
//! Owns: bosun's **own** containerd (its own root, state dir, socket and
//! config; a containerd the host already runs is never touched), the CNI
//! network it gives pods (bridge + host-local + portmap from `/usr/lib/cni`),
//! and a loopback image registry (`docker-registry` on 127.0.0.1) that our
//! images are pushed to so that image pulls go through CRI for real.
//!
//! Shape: [`config`] renders the containerd and CNI configuration as pure
//! functions of a [`config::StackConfig`]; [`process`] runs and stops child
//! daemons; [`containerd`] and [`registry`] start them and wait until they
//! answer; [`teardown`] removes everything a stack left (pods through CRI,
//! mounts, shims, directories). `bosun up` and the integration tests both use
//! this crate.

pub mod config;
pub mod containerd;
pub mod process;
pub mod registry;
pub mod teardown;

pub use config::{CniNetwork, StackConfig};
pub use containerd::Containerd;
pub use registry::Registry;

/// Errors of running the stack.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing {path}: {source}")]
    Write { path: std::path::PathBuf, source: std::io::Error },
    #[error("starting {daemon} ({binary}): {source}")]
    Spawn { daemon: &'static str, binary: String, source: std::io::Error },
    #[error("{daemon} exited ({status}); last log lines:\n{log_tail}")]
    Exited { daemon: &'static str, status: std::process::ExitStatus, log_tail: String },
    #[error("{daemon} did not become ready within {seconds} s at {address}; last log lines:\n{log_tail}")]
    NotReady { daemon: &'static str, address: String, seconds: u64, log_tail: String },
    #[error("tearing down {what}: {message}")]
    Teardown { what: String, message: String },
    #[error(transparent)]
    Cri(#[from] bosun_cri::Error),
    #[error("publishing bosun's images: {0}")]
    Images(#[from] bosun_images::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
