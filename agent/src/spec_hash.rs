//! The spec hash of a container: a digest of its spec as the API holds it,
//! put on every CRI container as an annotation at creation. A running
//! container whose hash differs from the current spec's (its image changed:
//! the one mutable container field) is restarted, and only that container.
//! The hash leaves out `resources` and `resizePolicy` (upstream's
//! `HashContainerWithoutResources`): an in-place resize changes them without
//! a restart (see [`crate::resize`]). A container created by an agent that
//! hashed the whole container still matches through [`legacy`].
//!
//! The digest is FNV-1a (64 bit) over the container's JSON: stable across
//! agent restarts, independent of the process's hash seed.

use k8s_openapi::api::core::v1::Container;

/// The CRI annotation holding the hash.
pub const ANNOTATION: &str = "io.bosun.container.hash";

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The hash of `container` without its resources and resize policy, as lowercase hex.
pub fn of(container: &Container) -> String {
    let bare = Container { resources: None, resize_policy: None, ..container.clone() };
    legacy(&bare)
}

/// The hash of the whole container (the scheme before in-place resize).
pub fn legacy(container: &Container) -> String {
    let bytes = serde_json::to_vec(container).unwrap_or_default();
    let hash = bytes.iter().fold(FNV_OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME));
    format!("{hash:016x}")
}

/// Whether a container created with `recorded` (its annotation) still
/// matches `container`. A container without the annotation (created by an
/// older agent) is taken as matching.
pub fn matches(container: &Container, recorded: Option<&str>) -> bool {
    recorded.is_none_or(|h| h == of(container) || h == legacy(container))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str) -> Container {
        Container { name: "app".into(), image: Some(image.into()), ..Default::default() }
    }

    #[test]
    fn hash_changes_with_the_image_only() {
        let a = container("busybox:1.36");
        assert_eq!(of(&a), of(&a.clone()));
        assert_ne!(of(&a), of(&container("busybox:1.37")));
        assert!(matches(&a, Some(&of(&a))));
        assert!(!matches(&container("busybox:1.37"), Some(&of(&a))));
        assert!(matches(&a, None));
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
        assert!(matches(&b, Some(&of(&a))));
        assert!(matches(&b, Some(&legacy(&b))), "a container hashed by an older agent is adopted");
    }
}
