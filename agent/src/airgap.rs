//! Air-gapped images (k3s-style): OCI archives (`*.tar`) found in the
//! `--images-dir` directory are imported into the runtime's `k8s.io`
//! namespace when the agent starts, so pods can use them without a registry.

use std::path::{Path, PathBuf};

/// containerd namespace the CRI plugin uses.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// An archive that could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory could not be read.
    #[error("reading images directory {}: {source}", dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `ctr images import` failed.
    #[error("importing {}: {source}", archive.display())]
    Import {
        /// The archive.
        archive: PathBuf,
        /// The importer's error.
        source: bosun_images::Error,
    },
    /// The import task died.
    #[error("import task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The `*.tar` archives directly in `dir`, sorted by name.
pub fn archives_in(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::ReadDir { dir: dir.to_path_buf(), source })?;
    let mut archives: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "tar"))
        .collect();
    archives.sort();
    Ok(archives)
}

/// Imports every archive of `dir` through containerd at `socket`; returns
/// how many were imported.
pub async fn import_all(dir: &Path, socket: &Path) -> Result<usize, Error> {
    let archives = archives_in(dir)?;
    let count = archives.len();
    for archive in archives {
        let socket = socket.to_path_buf();
        tokio::task::spawn_blocking(move || {
            bosun_images::publish::import_archive(&archive, &socket, CRI_NAMESPACE)
                .map_err(|source| Error::Import { archive: archive.clone(), source })
        })
        .await??;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_tar_files_sorted() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        for name in ["b.tar", "a.tar", "notes.txt", "c.tar.gz"] {
            std::fs::write(dir.path().join(name), b"x")?;
        }
        std::fs::create_dir(dir.path().join("d.tar"))?;
        let names: Vec<String> =
            archives_in(dir.path())?.iter().filter_map(|p| p.file_name()?.to_str().map(str::to_string)).collect();
        assert_eq!(names, vec!["a.tar", "b.tar"]);
        assert!(matches!(archives_in(&dir.path().join("missing")), Err(Error::ReadDir { .. })));
        Ok(())
    }
}
