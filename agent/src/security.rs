//! Pod and container security contexts as CRI settings: namespaces (host
//! network/PID/IPC, `shareProcessNamespace`), user and groups (container
//! values override the pod's, `fsGroup` joins the supplemental groups),
//! capabilities, `readOnlyRootFilesystem`, `allowPrivilegeEscalation`
//! (no_new_privs), seccomp, the default masked and read-only /proc paths,
//! safe sysctls, and the `runAsNonRoot` check (upstream's wording).
//!
//! Must not: call the runtime. What cannot be honoured at all is refused
//! earlier by [`crate::admission`].

use bosun_proto::cri as api;
use k8s_openapi::api::core::v1::{Container, PodSpec, SeccompProfile};

/// Paths masked in every non-privileged container (upstream's defaults).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths read-only in every non-privileged container (upstream's defaults).
pub const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Whether any container of the pod (init, sidecar or app) is privileged:
/// the sandbox must then be privileged too, or the runtime refuses the
/// container ("no privileged container allowed in sandbox"), as upstream's
/// `HasPrivilegedContainer`.
pub fn has_privileged_container(spec: &PodSpec) -> bool {
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .any(|c| c.security_context.as_ref().and_then(|sc| sc.privileged) == Some(true))
}

/// The namespaces of the pod, for the sandbox and each container alike.
pub fn namespace_options(spec: &PodSpec) -> api::NamespaceOption {
    let node = api::NamespaceMode::Node as i32;
    let pod = api::NamespaceMode::Pod as i32;
    let pid = if spec.host_pid == Some(true) {
        node
    } else if spec.share_process_namespace == Some(true) {
        pod
    } else {
        api::NamespaceMode::Container as i32
    };
    api::NamespaceOption {
        network: if spec.host_network == Some(true) { node } else { pod },
        pid,
        ipc: if spec.host_ipc == Some(true) { node } else { pod },
        ..Default::default()
    }
}

/// The pod's sysctls (only safe ones reach here: see admission).
pub fn sysctls(spec: &PodSpec) -> std::collections::HashMap<String, String> {
    let list = spec.security_context.iter().flat_map(|s| s.sysctls.iter().flatten());
    list.map(|s| (s.name.clone(), s.value.clone())).collect()
}

fn seccomp(profile: Option<&SeccompProfile>) -> Option<api::SecurityProfile> {
    use api::security_profile::ProfileType;
    let profile_type = match profile?.type_.as_str() {
        "RuntimeDefault" => ProfileType::RuntimeDefault,
        "Unconfined" => ProfileType::Unconfined,
        _ => return None,
    };
    Some(api::SecurityProfile { profile_type: profile_type as i32, ..Default::default() })
}

/// The user a container runs as, when the pod or the container sets it.
pub fn run_as_user(spec: &PodSpec, c: &Container) -> Option<i64> {
    let pod = || spec.security_context.as_ref().and_then(|s| s.run_as_user);
    c.security_context.as_ref().and_then(|s| s.run_as_user).or_else(pod)
}

/// The CRI security context of container `c` of a pod with `spec`.
pub fn container_security(spec: &PodSpec, c: &Container) -> api::LinuxContainerSecurityContext {
    let pod_sc = spec.security_context.clone().unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let privileged = sc.privileged == Some(true);
    let run_as_group = sc.run_as_group.or(pod_sc.run_as_group);
    let mut groups: Vec<i64> = pod_sc.supplemental_groups.clone().unwrap_or_default();
    groups.extend(pod_sc.fs_group);
    groups.sort_unstable();
    groups.dedup();
    let capabilities = sc.capabilities.as_ref().map(|caps| api::Capability {
        add_capabilities: caps.add.clone().unwrap_or_default(),
        drop_capabilities: caps.drop.clone().unwrap_or_default(),
        ..Default::default()
    });
    let (masked_paths, readonly_paths) = if privileged {
        (Vec::new(), Vec::new())
    } else {
        (MASKED_PATHS.map(String::from).to_vec(), READONLY_PATHS.map(String::from).to_vec())
    };
    api::LinuxContainerSecurityContext {
        capabilities,
        privileged,
        namespace_options: Some(namespace_options(spec)),
        run_as_user: run_as_user(spec, c).map(|value| api::Int64Value { value }),
        run_as_group: run_as_group.map(|value| api::Int64Value { value }),
        readonly_rootfs: sc.read_only_root_filesystem == Some(true),
        supplemental_groups: groups,
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        masked_paths,
        readonly_paths,
        seccomp: seccomp(sc.seccomp_profile.as_ref().or(pod_sc.seccomp_profile.as_ref())),
        ..Default::default()
    }
}

/// The user an image runs as, from the runtime's image status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageUser {
    /// A numeric uid.
    Uid(i64),
    /// A user name the runtime did not resolve.
    Name(String),
    /// The image sets no user (root).
    Unset,
}

impl ImageUser {
    /// From a CRI image.
    pub fn of(image: &api::Image) -> Self {
        match (&image.uid, image.username.as_str()) {
            (Some(uid), _) => Self::Uid(uid.value),
            (None, "") => Self::Unset,
            (None, name) => Self::Name(name.to_string()),
        }
    }
}

/// Whether `c` must prove it does not run as root (`runAsNonRoot: true` on
/// the container or the pod) and has no explicit user to prove it with.
pub fn needs_image_user(spec: &PodSpec, c: &Container) -> bool {
    non_root_required(spec, c) && run_as_user(spec, c).is_none()
}

fn non_root_required(spec: &PodSpec, c: &Container) -> bool {
    let own = c.security_context.as_ref().and_then(|s| s.run_as_non_root);
    own.or(spec.security_context.as_ref().and_then(|s| s.run_as_non_root)) == Some(true)
}

/// Upstream's `verifyRunAsNonRoot`: the error message when `c` would run
/// as root despite `runAsNonRoot`; `image` is the image's user when the
/// spec sets none.
pub fn verify_run_as_non_root(spec: &PodSpec, c: &Container, image: Option<&ImageUser>) -> Result<(), String> {
    if !non_root_required(spec, c) {
        return Ok(());
    }
    if let Some(uid) = run_as_user(spec, c) {
        return if uid == 0 { Err("container's runAsUser breaks non-root policy".to_string()) } else { Ok(()) };
    }
    match image {
        Some(ImageUser::Uid(uid)) if *uid != 0 => Ok(()),
        Some(ImageUser::Name(name)) => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is non-root"
        )),
        _ => Err("container has runAsNonRoot and image will run as root".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> PodSpec {
        serde_json::from_value(value).expect("spec")
    }

    #[test]
    fn namespaces_follow_host_flags_and_sharing() {
        let mode = |v| {
            let o = namespace_options(&spec(v));
            (o.network, o.pid, o.ipc)
        };
        let (pod, container, node) =
            (api::NamespaceMode::Pod as i32, api::NamespaceMode::Container as i32, api::NamespaceMode::Node as i32);
        assert_eq!(mode(json!({"containers": []})), (pod, container, pod));
        assert_eq!(mode(json!({"containers": [], "shareProcessNamespace": true})), (pod, pod, pod));
        assert_eq!(
            mode(json!({"containers": [], "hostNetwork": true, "hostPID": true, "hostIPC": true})),
            (node, node, node)
        );
    }

    #[test]
    fn container_values_override_the_pods() {
        let s = spec(json!({"containers": [], "securityContext": {"runAsUser": 1000, "runAsGroup": 2000,
            "supplementalGroups": [5, 3], "fsGroup": 3, "seccompProfile": {"type": "RuntimeDefault"},
            "sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]}}));
        let c: Container = serde_json::from_value(json!({"name": "c", "securityContext": {"runAsUser": 1001,
            "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}))
        .expect("container");
        let got = container_security(&s, &c);
        assert_eq!(got.run_as_user, Some(api::Int64Value { value: 1001 }));
        assert_eq!(got.run_as_group, Some(api::Int64Value { value: 2000 }));
        assert_eq!(got.supplemental_groups, vec![3, 5]);
        assert!(got.readonly_rootfs && got.no_new_privs && !got.privileged);
        let caps = got.capabilities.expect("caps");
        assert_eq!((caps.add_capabilities, caps.drop_capabilities), (vec!["NET_ADMIN".into()], vec!["ALL".into()]));
        assert_eq!(
            got.seccomp.map(|p| p.profile_type),
            Some(api::security_profile::ProfileType::RuntimeDefault as i32)
        );
        assert_eq!(got.masked_paths.len(), MASKED_PATHS.len());
        assert_eq!(sysctls(&s).get("net.ipv4.tcp_syncookies").map(String::as_str), Some("1"));
    }

    #[test]
    fn unset_fields_leave_the_runtime_defaults() {
        let c: Container =
            serde_json::from_value(json!({"name": "c", "securityContext": {"privileged": true}})).expect("c");
        let got = container_security(&spec(json!({"containers": []})), &c);
        assert!(got.privileged && got.run_as_user.is_none() && got.seccomp.is_none() && !got.no_new_privs);
        assert!(got.masked_paths.is_empty() && got.readonly_paths.is_empty(), "privileged: nothing masked");
    }

    #[test]
    fn run_as_non_root_as_upstream() {
        let c = |sc: serde_json::Value| -> Container {
            serde_json::from_value(json!({"name": "c", "securityContext": sc})).expect("c")
        };
        let nonroot = spec(json!({"containers": [], "securityContext": {"runAsNonRoot": true}}));
        let plain = spec(json!({"containers": []}));
        assert_eq!(verify_run_as_non_root(&plain, &c(json!({})), None), Ok(()));
        assert_eq!(verify_run_as_non_root(&nonroot, &c(json!({"runAsUser": 10})), None), Ok(()));
        assert!(!needs_image_user(&nonroot, &c(json!({"runAsUser": 10}))));
        assert!(needs_image_user(&nonroot, &c(json!({}))));
        let err = |s: &PodSpec, sc, image: Option<ImageUser>| {
            verify_run_as_non_root(s, &c(sc), image.as_ref()).expect_err("refused")
        };
        assert_eq!(err(&nonroot, json!({"runAsUser": 0}), None), "container's runAsUser breaks non-root policy");
        assert!(err(&nonroot, json!({}), Some(ImageUser::Unset)).contains("image will run as root"));
        assert!(err(&nonroot, json!({}), Some(ImageUser::Uid(0))).contains("image will run as root"));
        assert!(err(&nonroot, json!({}), Some(ImageUser::Name("app".into()))).contains("non-numeric user (app)"));
        assert_eq!(verify_run_as_non_root(&nonroot, &c(json!({})), Some(&ImageUser::Uid(65534))), Ok(()));
        assert_eq!(
            err(&plain, json!({"runAsNonRoot": true, "runAsUser": 0}), None),
            "container's runAsUser breaks non-root policy"
        );
    }

    #[test]
    fn one_privileged_container_makes_the_sandbox_privileged() {
        let spec = |containers: serde_json::Value, init: serde_json::Value| -> PodSpec {
            serde_json::from_value(json!({"containers": containers, "initContainers": init})).expect("spec")
        };
        let plain = json!([{"name": "a"}, {"name": "b", "securityContext": {"privileged": false}}]);
        let privileged = json!([{"name": "p", "securityContext": {"privileged": true}}]);
        assert!(!has_privileged_container(&spec(plain.clone(), json!([]))));
        assert!(has_privileged_container(&spec(privileged.clone(), json!([]))));
        assert!(has_privileged_container(&spec(plain, privileged)), "an init container counts");
    }
}
