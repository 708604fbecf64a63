//! The spec hash of a container: a digest of its spec as the API holds it,
//! put on every CRI container as an annotation at creation. A running
//! container whose hash differs from the current spec's (its image changed:
//! the one mutable container field) is restarted, and only that container.
//! The hash leaves out `resources` and `resizePolicy` (upstream's
//! `HashContainerWithoutResources`): an in-place resize changes them without
//! a restart (see [`crate::resize`]). Scheme "1" hashed the whole container;
//! its containers are adopted as any other scheme's (below).
//!
//! The digest is FNV-1a (64 bit) over the container's JSON: stable across
//! agent restarts, independent of the process's hash seed.
//!
//! Upgrades: the way the hash is computed is scheme [`SCHEME`], recorded in
//! the label [`SCHEME_LABEL`] next to the hash. A container made under
//! another scheme (or by an agent from before the label) cannot be compared
//! by hash; it is adopted as it runs, and only a changed image (what the
//! CRI container was created from, which every scheme records) restarts it.
//! So an agent upgrade that changes the hash never restarts containers.
//! Bump [`SCHEME`] whenever [`of`] changes what or how it hashes.

use std::collections::HashMap;

use bosun_proto::cri as api;
use k8s_openapi::api::core::v1::Container;

/// The CRI annotation holding the hash.
pub const ANNOTATION: &str = "io.bosun.container.hash";
/// The CRI label naming the scheme the hash was computed with.
pub const SCHEME_LABEL: &str = "io.bosun.container.hash-scheme";
/// The scheme of [`of`]: FNV-1a 64 over the container's JSON without
/// `resources` and `resizePolicy` ("1" included them).
pub const SCHEME: &str = "2";

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// What a CRI container records of the spec it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A hash under this agent's [`SCHEME`].
    Hash(String),
    /// Made under another scheme (or none): only its image is comparable.
    OtherScheme {
        /// The image the container was created from, as requested.
        image: String,
    },
}

/// The hash of `container` without its resources and resize policy, as lowercase hex.
pub fn of(container: &Container) -> String {
    let bare = Container { resources: None, resize_policy: None, ..container.clone() };
    let bytes = serde_json::to_vec(&bare).unwrap_or_default();
    let hash = bytes.iter().fold(FNV_OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME));
    format!("{hash:016x}")
}

/// Marks a container config with `container`'s hash and this scheme.
pub fn stamp(config: &mut api::ContainerConfig, container: &Container) {
    config.annotations.insert(ANNOTATION.to_string(), of(container));
    config.labels.insert(SCHEME_LABEL.to_string(), SCHEME.to_string());
}

/// What a CRI container (its labels, annotations and requested image)
/// records; `None` when nothing is comparable.
pub fn recorded(
    labels: &HashMap<String, String>,
    annotations: &HashMap<String, String>,
    image: &str,
) -> Option<Recorded> {
    match (labels.get(SCHEME_LABEL), annotations.get(ANNOTATION)) {
        (Some(scheme), Some(hash)) if scheme == SCHEME => Some(Recorded::Hash(hash.clone())),
        _ if image.is_empty() => None,
        _ => Some(Recorded::OtherScheme { image: image.to_string() }),
    }
}

/// Whether a container that recorded `recorded` still matches `container`.
/// Nothing recorded is taken as matching.
pub fn matches(container: &Container, recorded: Option<&Recorded>) -> bool {
    match recorded {
        None => true,
        Some(Recorded::Hash(hash)) => *hash == of(container),
        Some(Recorded::OtherScheme { image }) => container.image.as_deref().unwrap_or_default() == image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str) -> Container {
        Container { name: "app".into(), image: Some(image.into()), ..Default::default() }
    }

    fn hash(c: &Container) -> Option<Recorded> {
        Some(Recorded::Hash(of(c)))
    }

    #[test]
    fn hash_changes_with_the_image_only() {
        let a = container("busybox:1.36");
        assert_eq!(of(&a), of(&a.clone()));
        assert_ne!(of(&a), of(&container("busybox:1.37")));
        assert!(matches(&a, hash(&a).as_ref()));
        assert!(!matches(&container("busybox:1.37"), hash(&a).as_ref()));
        assert!(matches(&a, None));
    }

    #[test]
    fn containers_of_another_scheme_are_adopted_unless_the_image_changed() {
        let spec = container("busybox:1.36");
        let labels = |scheme: Option<&str>| -> HashMap<String, String> {
            scheme.map(|s| (SCHEME_LABEL.to_string(), s.to_string())).into_iter().collect()
        };
        // The hash of some other scheme: it never equals ours.
        let old_hash = HashMap::from([(ANNOTATION.to_string(), "9e3779b97f4a7c15".to_string())]);
        let none = HashMap::new();
        // (case, scheme label, annotations, requested image, matches)
        let cases = [
            ("older scheme, same image: adopted", Some("0"), &old_hash, "busybox:1.36", true),
            ("no scheme label (agent before labels), same image", None, &old_hash, "busybox:1.36", true),
            ("no label and no hash, same image", None, &none, "busybox:1.36", true),
            ("older scheme, image changed: restarted", Some("0"), &old_hash, "busybox:1.35", false),
            ("this scheme, hash differs: restarted", Some(SCHEME), &old_hash, "busybox:1.36", false),
            ("older scheme, image unknown: adopted", Some("0"), &old_hash, "", true),
        ];
        for (name, scheme, annotations, image, want) in cases {
            let got = recorded(&labels(scheme), annotations, image);
            assert_eq!(matches(&spec, got.as_ref()), want, "{name}: {got:?}");
        }
    }

    #[test]
    fn stamped_configs_are_recognised_as_this_scheme() {
        let spec = container("busybox:1.36");
        let mut config = api::ContainerConfig::default();
        stamp(&mut config, &spec);
        let got = recorded(&config.labels, &config.annotations, "busybox:1.36");
        assert_eq!(got, hash(&spec));
        assert!(matches(&spec, got.as_ref()));
    }

    #[test]
    fn resources_and_resize_policy_do_not_change_the_hash() {
        use k8s_openapi::api::core::v1::{ContainerResizePolicy, ResourceRequirements};
        let a = container("busybox:1.36");
        let mut b = a.clone();
        b.resources = Some(ResourceRequirements::default());
        b.resize_policy = Some(vec![ContainerResizePolicy {
            resource_name: "cpu".into(),
            restart_policy: "RestartContainer".into(),
        }]);
        assert_eq!(of(&a), of(&b));
        assert!(matches(&b, hash(&a).as_ref()));
    }
}
