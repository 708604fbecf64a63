//! Reproducible image layers: a list of [`Entry`] becomes a gzip'd tar whose
//! bytes depend only on the entries (mtime 0, uid/gid 0, sorted order).

use std::io::Write;
use std::path::PathBuf;

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// One file system entry of a layer. Paths are relative to the image root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { path: String, mode: u32 },
    File { path: String, mode: u32, contents: FileContents },
    Symlink { path: String, target: String },
}

/// Where a file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContents {
    Bytes(Vec<u8>),
    HostFile(PathBuf),
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => path,
        }
    }
}

/// A built layer: the compressed blob and the two digests an image needs.
#[derive(Debug, Clone)]
pub struct Layer {
    /// gzip'd tar, as stored in the registry.
    pub blob: Vec<u8>,
    /// `sha256:<hex>` of `blob`.
    pub digest: String,
    /// `sha256:<hex>` of the uncompressed tar (the config's `diff_ids`).
    pub diff_id: String,
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Builds a layer from entries; order does not matter (entries are sorted).
pub fn build_layer(entries: &[Entry]) -> Result<Layer> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path().cmp(b.path()));
    let mut builder = tar::Builder::new(Vec::new());
    for entry in sorted {
        append_entry(&mut builder, entry).map_err(|source| Error::Layer { entry: entry.path().to_string(), source })?;
    }
    let tar = builder.into_inner().map_err(|source| Error::Layer { entry: "<end of archive>".into(), source })?;
    let mut gz = GzBuilder::new().mtime(0).write(Vec::new(), Compression::default());
    gz.write_all(&tar).map_err(|source| Error::Layer { entry: "<gzip>".into(), source })?;
    let blob = gz.finish().map_err(|source| Error::Layer { entry: "<gzip>".into(), source })?;
    Ok(Layer { digest: sha256_digest(&blob), diff_id: sha256_digest(&tar), blob })
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn append_entry(builder: &mut tar::Builder<Vec<u8>>, entry: &Entry) -> std::io::Result<()> {
    match entry {
        Entry::Dir { path, mode } => {
            let mut h = header(tar::EntryType::Directory, *mode, 0);
            builder.append_data(&mut h, format!("{}/", path.trim_end_matches('/')), std::io::empty())
        }
        Entry::File { path, mode, contents } => {
            let bytes = match contents {
                FileContents::Bytes(bytes) => bytes.clone(),
                FileContents::HostFile(host) => std::fs::read(host)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", host.display())))?,
            };
            let mut h = header(tar::EntryType::Regular, *mode, bytes.len() as u64);
            builder.append_data(&mut h, path, bytes.as_slice())
        }
        Entry::Symlink { path, target } => {
            let mut h = header(tar::EntryType::Symlink, 0o777, 0);
            builder.append_link(&mut h, path, target)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry::Symlink { path: "bin/sh".into(), target: "busybox".into() },
            Entry::Dir { path: "bin".into(), mode: 0o755 },
            Entry::File { path: "bin/busybox".into(), mode: 0o755, contents: FileContents::Bytes(b"#!".to_vec()) },
        ]
    }

    #[test]
    fn same_entries_in_any_order_give_the_same_digests() {
        let a = build_layer(&entries()).unwrap();
        let mut reversed = entries();
        reversed.reverse();
        let b = build_layer(&reversed).unwrap();
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.diff_id, b.diff_id);
        assert_ne!(a.digest, a.diff_id, "compressed and uncompressed digests differ");
    }

    #[test]
    fn layer_unpacks_to_the_entries() {
        let layer = build_layer(&entries()).unwrap();
        let tar = flate2::read::GzDecoder::new(layer.blob.as_slice());
        let mut archive = tar::Archive::new(tar);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let kind = entry.header().entry_type();
            seen.push((
                entry.path().unwrap().display().to_string(),
                kind.is_symlink(),
                entry.header().mtime().unwrap(),
            ));
        }
        assert_eq!(
            seen,
            vec![
                ("bin/".to_string(), false, 0),
                ("bin/busybox".to_string(), false, 0),
                ("bin/sh".to_string(), true, 0)
            ]
        );
    }

    #[test]
    fn missing_host_file_names_the_path() {
        let err = build_layer(&[Entry::File {
            path: "x".into(),
            mode: 0o644,
            contents: FileContents::HostFile("/nonexistent/bosun-file".into()),
        }])
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/bosun-file"), "{err}");
    }
}
