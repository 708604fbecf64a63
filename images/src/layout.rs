//! Writing an image as an OCI image layout directory (`oci-layout`,
//! `index.json`, `blobs/sha256/...`), the format skopeo, umoci and containerd
//! all read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, Digest, ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder,
    MediaType, OciLayoutBuilder, Os, RootFsBuilder,
};

use crate::layer::{build_layer, sha256_digest, Entry};
use crate::{Error, Result};

/// The annotation OCI layouts use to name a manifest by tag.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// What an image is made of.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Repository without registry, e.g. `bosun/app`.
    pub repository: String,
    pub tag: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// The signal a runtime sends to stop the container (OCI config
    /// `StopSignal`, e.g. `SIGUSR1`); `None`: the runtime's default, SIGTERM.
    pub stop_signal: Option<String>,
    pub entries: Vec<Entry>,
}

/// An image written to disk as an OCI layout.
#[derive(Debug, Clone)]
pub struct ImageLayout {
    pub dir: PathBuf,
    pub repository: String,
    pub tag: String,
    /// `sha256:...` of the manifest: what a registry reports as the image digest.
    pub manifest_digest: String,
}

impl ImageLayout {
    /// `<registry>/<repository>:<tag>`, the reference pods use.
    pub fn reference(&self, registry: &str) -> String {
        format!("{registry}/{}:{}", self.repository, self.tag)
    }
}

/// Writes `spec` as an OCI layout in `dir` (created; existing blobs are reused).
pub fn write_layout(dir: &Path, spec: &ImageSpec) -> Result<ImageLayout> {
    let image = format!("{}:{}", spec.repository, spec.tag);
    let oci = |what: &'static str| {
        let image = image.clone();
        move |source| Error::Oci { what, image, source }
    };
    let layer = build_layer(&spec.entries)?;
    let mut config = ConfigBuilder::default().env(spec.env.clone());
    if !spec.entrypoint.is_empty() {
        config = config.entrypoint(spec.entrypoint.clone());
    }
    if !spec.cmd.is_empty() {
        config = config.cmd(spec.cmd.clone());
    }
    if let Some(dir) = &spec.working_dir {
        config = config.working_dir(dir.clone());
    }
    if let Some(signal) = &spec.stop_signal {
        config = config.stop_signal(signal.clone());
    }
    let configuration = ImageConfigurationBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(config.build().map_err(oci("config"))?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![layer.diff_id.clone()])
                .build()
                .map_err(oci("rootfs"))?,
        )
        .build()
        .map_err(oci("image configuration"))?;
    let config_bytes = configuration.to_string().map_err(oci("image configuration"))?.into_bytes();

    let blobs = dir.join("blobs").join("sha256");
    create_dir(&blobs)?;
    let config_digest = write_blob(&blobs, &config_bytes)?;
    let layer_digest = write_blob(&blobs, &layer.blob)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(MediaType::ImageConfig, config_bytes.len() as u64, digest(&config_digest, &image)?))
        .layers(vec![Descriptor::new(
            MediaType::ImageLayerGzip,
            layer.blob.len() as u64,
            digest(&layer_digest, &image)?,
        )])
        .build()
        .map_err(oci("manifest"))?;
    let manifest_bytes = manifest.to_string().map_err(oci("manifest"))?.into_bytes();
    let manifest_digest = write_blob(&blobs, &manifest_bytes)?;

    let mut manifest_descriptor =
        Descriptor::new(MediaType::ImageManifest, manifest_bytes.len() as u64, digest(&manifest_digest, &image)?);
    manifest_descriptor.set_annotations(Some(HashMap::from([(REF_NAME_ANNOTATION.to_string(), spec.tag.clone())])));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![manifest_descriptor])
        .build()
        .map_err(oci("index"))?;
    write_file(&dir.join("index.json"), index.to_string().map_err(oci("index"))?.as_bytes())?;
    let layout = OciLayoutBuilder::default().image_layout_version("1.0.0").build().map_err(oci("oci-layout"))?;
    write_file(&dir.join("oci-layout"), serde_json::to_string(&layout).unwrap_or_default().as_bytes())?;

    Ok(ImageLayout {
        dir: dir.to_path_buf(),
        repository: spec.repository.clone(),
        tag: spec.tag.clone(),
        manifest_digest,
    })
}

fn digest(value: &str, image: &str) -> Result<Digest> {
    Digest::from_str(value).map_err(|source| Error::Oci { what: "digest", image: image.to_string(), source })
}

fn write_blob(blobs: &Path, bytes: &[u8]) -> Result<String> {
    let digest = sha256_digest(bytes);
    let path = blobs.join(digest.trim_start_matches("sha256:"));
    if !path.exists() {
        write_file(&path, bytes)?;
    }
    Ok(digest)
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| Error::Write { path: path.to_path_buf(), source })
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::FileContents;

    fn spec() -> ImageSpec {
        ImageSpec {
            repository: "bosun/test".into(),
            tag: "v1".into(),
            entrypoint: vec!["/hello".into()],
            cmd: vec![],
            env: vec!["PATH=/".into()],
            working_dir: None,
            stop_signal: None,
            entries: vec![Entry::File {
                path: "hello".into(),
                mode: 0o755,
                contents: FileContents::Bytes(b"hi".to_vec()),
            }],
        }
    }

    #[test]
    fn layout_has_index_manifest_config_and_layer_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let layout = write_layout(dir.path(), &spec()).unwrap();
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        let entry = &index["manifests"][0];
        assert_eq!(entry["digest"], layout.manifest_digest.as_str());
        assert_eq!(entry["annotations"][REF_NAME_ANNOTATION], "v1");
        let blob = |d: &str| dir.path().join("blobs/sha256").join(d.trim_start_matches("sha256:"));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(blob(&layout.manifest_digest)).unwrap()).unwrap();
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        let config: serde_json::Value = serde_json::from_slice(&std::fs::read(blob(config_digest)).unwrap()).unwrap();
        assert_eq!(config["config"]["Entrypoint"][0], "/hello");
        assert_eq!(config["architecture"], "amd64");
        assert!(blob(manifest["layers"][0]["digest"].as_str().unwrap()).exists());
        assert_eq!(layout.reference("127.0.0.1:5000"), "127.0.0.1:5000/bosun/test:v1");
    }

    #[test]
    fn stop_signal_lands_in_the_image_config() {
        let dir = tempfile::tempdir().unwrap();
        let layout = write_layout(dir.path(), &ImageSpec { stop_signal: Some("SIGUSR1".into()), ..spec() }).unwrap();
        let blob = |d: &str| dir.path().join("blobs/sha256").join(d.trim_start_matches("sha256:"));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(blob(&layout.manifest_digest)).unwrap()).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap())
                .unwrap();
        assert_eq!(config["config"]["StopSignal"], "SIGUSR1");
    }

    #[test]
    fn writing_twice_gives_the_same_manifest_digest() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        assert_eq!(
            write_layout(a.path(), &spec()).unwrap().manifest_digest,
            write_layout(b.path(), &spec()).unwrap().manifest_digest
        );
    }
}
