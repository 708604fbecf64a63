//! The fake runtime's image store.
//!
//! Owns: which images are present, which a pull can fetch, and the answers to
//! image calls. Pure data; no I/O. References are normalised the way a
//! runtime does for tags (`busybox` is `busybox:latest`), so tests may use
//! either spelling.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use bosun_proto::cri as api;
use tonic::Status;

/// Size every fake image reports (the CRI requires > 0).
const FAKE_IMAGE_BYTES: u64 = 1024 * 1024;

/// Images present on the fake node and images the fake registry serves.
#[derive(Debug, Default)]
pub(crate) struct ImageStore {
    /// Normalised reference -> image.
    present: BTreeMap<String, api::Image>,
    /// Normalised references a pull can fetch.
    pullable: BTreeSet<String>,
}

/// `busybox` -> `busybox:latest`; tagged and digested references are kept.
pub(crate) fn normalize(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('@') || last.contains(':') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

/// A stable `sha256:<64 hex>` id derived from the reference.
pub(crate) fn image_id(reference: &str) -> String {
    let mut hex = String::with_capacity(64);
    for round in 0u8..4 {
        let mut h = DefaultHasher::new();
        (round, reference).hash(&mut h);
        hex.push_str(&format!("{:016x}", h.finish()));
    }
    format!("sha256:{hex}")
}

impl ImageStore {
    /// Marks `reference` as present on the node.
    pub(crate) fn add_present(&mut self, reference: &str) {
        let key = normalize(reference);
        let image = api::Image {
            id: image_id(&key),
            repo_tags: vec![key.clone()],
            size: FAKE_IMAGE_BYTES,
            spec: Some(api::ImageSpec { image: key.clone(), ..Default::default() }),
            ..Default::default()
        };
        self.present.insert(key, image);
    }

    /// Lets a later pull of `reference` succeed.
    pub(crate) fn add_pullable(&mut self, reference: &str) {
        self.pullable.insert(normalize(reference));
    }

    /// The image known by reference or by id.
    pub(crate) fn find(&self, reference: &str) -> Option<&api::Image> {
        self.present.get(&normalize(reference)).or_else(|| self.present.values().find(|i| i.id == reference))
    }

    /// PullImage: the image id if present or pullable, NotFound otherwise,
    /// worded like containerd relaying a registry's 404.
    pub(crate) fn pull(&mut self, reference: &str) -> Result<String, Status> {
        if let Some(image) = self.find(reference) {
            return Ok(image.id.clone());
        }
        let key = normalize(reference);
        if !self.pullable.contains(&key) {
            return Err(Status::not_found(format!(
                "failed to pull and unpack image \"{key}\": failed to resolve reference \
                 \"{key}\": {key}: not found"
            )));
        }
        self.add_present(&key);
        Ok(image_id(&key))
    }

    /// RemoveImage: removing an absent image succeeds, as the CRI requires.
    pub(crate) fn remove(&mut self, reference: &str) {
        let key = match self.find(reference) {
            Some(image) => image.repo_tags.first().cloned(),
            None => None,
        };
        if let Some(key) = key {
            self.present.remove(&key);
        }
    }

    /// ListImages.
    pub(crate) fn list(&self) -> Vec<api::Image> {
        self.present.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_untagged_references_only() {
        let cases = [
            ("busybox", "busybox:latest"),
            ("busybox:1.36", "busybox:1.36"),
            ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
            ("127.0.0.1:5000/app:v2", "127.0.0.1:5000/app:v2"),
            ("busybox@sha256:abcd", "busybox@sha256:abcd"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), want, "{input}");
        }
    }

    #[test]
    fn pull_fetches_pullable_images_and_rejects_unknown_ones() {
        let mut store = ImageStore::default();
        store.add_pullable("app:v1");

        let id = store.pull("app:v1").expect("pullable image");
        assert_eq!(id, image_id("app:v1"));
        assert!(id.starts_with("sha256:") && id.len() == 7 + 64);
        assert_eq!(store.find(&id).map(|i| i.id.clone()), Some(id));

        let err = store.pull("nope").expect_err("unknown image");
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert!(err.message().contains("nope:latest: not found"));
    }

    #[test]
    fn remove_is_idempotent_and_accepts_ids() {
        let mut store = ImageStore::default();
        store.add_present("busybox");
        let id = image_id("busybox:latest");
        store.remove(&id);
        assert!(store.find("busybox").is_none());
        store.remove("busybox");
        assert!(store.list().is_empty());
    }
}
