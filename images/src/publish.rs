//! Getting images to a node: push to a registry (skopeo), pack as an OCI
//! archive, and import an archive straight into containerd (`ctr`).

use std::path::Path;
use std::process::Command;

use crate::layout::ImageLayout;
use crate::{Error, Result};

/// The annotation containerd's importer reads for the full image name.
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// Pushes a layout to `registry` (`host:port`, plain HTTP) as `<registry>/<repository>:<tag>`.
pub fn push(layout: &ImageLayout, registry: &str) -> Result<String> {
    let reference = layout.reference(registry);
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci:{}:{}", layout.dir.display(), layout.tag),
        &format!("docker://{reference}"),
    ]))?;
    Ok(reference)
}

/// Packs a layout as an OCI archive (a tar of the layout) whose index names
/// the image `reference`, so `ctr images import` registers it under that name.
pub fn write_archive(layout: &ImageLayout, reference: &str, archive: &Path) -> Result<()> {
    let index_path = layout.dir.join("index.json");
    let index_bytes = std::fs::read(&index_path).map_err(|source| Error::Read { path: index_path.clone(), source })?;
    let mut index: serde_json::Value = serde_json::from_slice(&index_bytes)
        .map_err(|e| Error::Read { path: index_path.clone(), source: std::io::Error::other(e) })?;
    if let Some(manifests) = index["manifests"].as_array_mut() {
        for manifest in manifests {
            manifest["annotations"][CONTAINERD_NAME_ANNOTATION] = serde_json::Value::String(reference.to_string());
        }
    }
    let file = std::fs::File::create(archive).map_err(|source| Error::Write { path: archive.to_path_buf(), source })?;
    let mut tar = tar::Builder::new(file);
    let wrap = |source| Error::Write { path: archive.to_path_buf(), source };
    for entry in ["oci-layout", "blobs"] {
        let path = layout.dir.join(entry);
        if path.is_dir() {
            tar.append_dir_all(entry, &path).map_err(wrap)?;
        } else {
            tar.append_path_with_name(&path, entry).map_err(wrap)?;
        }
    }
    let index_bytes = serde_json::to_vec(&index).unwrap_or_default();
    let mut header = tar::Header::new_ustar();
    header.set_size(index_bytes.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "index.json", index_bytes.as_slice()).map_err(wrap)?;
    tar.into_inner().map_err(wrap)?;
    Ok(())
}

/// Imports an OCI archive into containerd's `namespace` (CRI uses `k8s.io`).
pub fn import_archive(archive: &Path, containerd_address: &Path, namespace: &str) -> Result<()> {
    run(Command::new("ctr").args([
        "--address",
        &containerd_address.display().to_string(),
        "--namespace",
        namespace,
        "images",
        "import",
        &archive.display().to_string(),
    ]))
}

/// Writes a layout as `<images_dir>/<repository>_<tag>.tar` (an air-gap
/// images directory entry) and returns its path.
pub fn stage_archive(layout: &ImageLayout, reference: &str, images_dir: &Path) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(images_dir).map_err(|source| Error::Write { path: images_dir.to_path_buf(), source })?;
    let name = layout.repository.replace('/', "_");
    let archive = images_dir.join(format!("{name}_{}.tar", layout.tag));
    write_archive(layout, reference, &archive)?;
    Ok(archive)
}

fn run(command: &mut Command) -> Result<()> {
    let printable = format!("{command:?}");
    let output = command.output().map_err(|source| Error::Spawn { command: printable.clone(), source })?;
    if !output.status.success() {
        return Err(Error::Command {
            command: printable,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{Entry, FileContents};
    use crate::layout::{write_layout, ImageSpec};

    #[test]
    fn archive_names_the_image_for_containerd() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ImageSpec {
            repository: "bosun/t".into(),
            tag: "1".into(),
            entrypoint: vec![],
            cmd: vec!["x".into()],
            env: vec![],
            working_dir: None,
            stop_signal: None,
            entries: vec![Entry::File { path: "x".into(), mode: 0o755, contents: FileContents::Bytes(vec![1]) }],
        };
        let layout = write_layout(&dir.path().join("layout"), &spec).unwrap();
        let archive = stage_archive(&layout, "127.0.0.1:5000/bosun/t:1", &dir.path().join("images")).unwrap();
        let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
        let mut index = None;
        let mut names = Vec::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            if name == "index.json" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                index = Some(serde_json::from_str::<serde_json::Value>(&text).unwrap());
            }
            names.push(name);
        }
        let index = index.expect("index.json in the archive");
        assert_eq!(index["manifests"][0]["annotations"][CONTAINERD_NAME_ANNOTATION], "127.0.0.1:5000/bosun/t:1");
        assert!(names.contains(&"oci-layout".to_string()), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("blobs/sha256/")), "{names:?}");
    }
}
