//! The crate's one error type: every variant names the cgroup (and the file
//! and value, for writes) it failed on.

use std::path::PathBuf;

/// A cgroup operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No cgroup hierarchy (v1 controller directories or a v2 unified
    /// hierarchy) was found under the root.
    #[error("no cgroup hierarchy under {root}")]
    NoHierarchy {
        /// The cgroupfs root searched.
        root: PathBuf,
    },
    /// Creating a cgroup directory failed.
    #[error("creating cgroup {path}: {source}")]
    Create {
        /// The cgroup, relative to the hierarchy.
        path: String,
        /// The failure.
        source: Box<cgroups_rs::fs::error::Error>,
    },
    /// Writing a limit failed.
    #[error("writing {file} = {value} in cgroup {path}: {source}")]
    Write {
        /// The cgroup, relative to the hierarchy.
        path: String,
        /// The interface file.
        file: &'static str,
        /// The value written.
        value: String,
        /// The failure.
        source: Box<cgroups_rs::fs::error::Error>,
    },
    /// Removing a cgroup directory failed (other than it being gone).
    #[error("removing cgroup {path}: {source}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// Listing a cgroup's children failed (other than it being gone).
    #[error("listing cgroup {path}: {source}")]
    List {
        /// The directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A v2 interface file could not be read or written.
    #[error("cgroup file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
