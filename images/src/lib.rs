//! bosun's own container images, built without any network.
//!
//! Owns: the two images every bosun node needs — `pause` (our static sandbox
//! process from `images/pause`) and `app` (busybox-static: sh, httpd, nc,
//! sleep, ...) — written as OCI image layouts with reproducible layers
//! ([`layer`], [`layout`]); the catalogue of what goes into each ([`catalog`]);
//! and getting them to a node ([`publish`]): pushed to a registry with
//! `skopeo`, packed as an OCI archive, or imported into containerd from such an
//! archive (air-gapped nodes, as k3s does from its images directory).
//!
//! Must not: know about pods or the CRI. The agent and the test harness only
//! see image references.

pub mod catalog;
pub mod fixtures;
pub mod layer;
pub mod layout;
pub mod publish;

pub use catalog::{
    app_image, build_all, pause_image, ImageSource, APP_REPOSITORY, APP_TAG, PAUSE_REPOSITORY, PAUSE_TAG,
};
pub use layout::{write_layout, ImageLayout, ImageSpec};

/// Errors of building or publishing an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("writing {path}: {source}")]
    Write { path: std::path::PathBuf, source: std::io::Error },
    #[error("building layer entry {entry}: {source}")]
    Layer { entry: String, source: std::io::Error },
    #[error("building OCI {what} for image {image}: {source}")]
    Oci { what: &'static str, image: String, source: oci_spec::OciSpecError },
    #[error("running {command}: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("{command} failed ({status}): {stderr}")]
    Command { command: String, status: std::process::ExitStatus, stderr: String },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
