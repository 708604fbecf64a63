//! Node admission: whether this node can run a pod at all, decided from the
//! spec alone before anything is created (upstream's kubelet admit handlers).
//!
//! A refused pod is never started: the pod worker sets phase `Failed` with
//! the refusal's reason and message, a `Ready=False` condition carrying the
//! same reason, and a Warning Event (see `pod_worker/admit.rs`). Each check
//! names the field it refuses; `docs/podspec-fields.md` lists every field.
//!
//! Must not: refuse what the apiserver already rejects (422), or anything the
//! agent runs; call the runtime or the API.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod, PodCondition, PodSpec, PodStatus, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

/// The only OS this node runs (`spec.os.name`).
pub const NODE_OS: &str = "linux";

/// Volume types this node mounts (`agent/src/volumes`).
pub const SUPPORTED_VOLUMES: [&str; 6] = ["emptyDir", "hostPath", "configMap", "secret", "downwardAPI", "projected"];

/// Projected volume sources this node fills.
pub const SUPPORTED_PROJECTIONS: [&str; 4] = ["configMap", "secret", "downwardAPI", "serviceAccountToken"];

/// Upstream's namespaced "safe" sysctls: allowed without a kubelet allowlist.
pub const SAFE_SYSCTLS: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// Why this node will not run a pod: the reason is a CamelCase word (the
/// pod's `status.reason`, the Event's reason), the message says which field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The reason (`UnsupportedVolume`, `SysctlForbidden`, ...).
    pub reason: Reason,
    /// What was refused and why.
    pub message: String,
}

/// The refusal reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `spec.os.name` is not this node's OS (upstream wording).
    PodOsNotSupported,
    /// A volume (or projected source) type this node does not mount.
    UnsupportedVolume,
    /// An unsafe sysctl (upstream wording).
    SysctlForbidden,
    /// Any other field the node cannot honour.
    UnsupportedPodSpec,
}

impl Reason {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PodOsNotSupported => "PodOSNotSupported",
            Self::UnsupportedVolume => "UnsupportedVolume",
            Self::SysctlForbidden => "SysctlForbidden",
            Self::UnsupportedPodSpec => "UnsupportedPodSpec",
        }
    }
}

fn refuse(reason: Reason, message: impl Into<String>) -> Result<(), Refusal> {
    Err(Refusal { reason, message: message.into() })
}

fn unsupported(field: &str, why: &str) -> Result<(), Refusal> {
    refuse(Reason::UnsupportedPodSpec, format!("{field}: {why}"))
}

/// Whether this node runs `pod`; the first refusal found otherwise.
pub fn admit(pod: &Pod) -> Result<(), Refusal> {
    let Some(spec) = pod.spec.as_ref() else { return Ok(()) };
    if let Some(os) = spec.os.as_ref().filter(|os| os.name != NODE_OS) {
        let message =
            format!("Failed to admit pod as the OS field doesn't match node OS ({:?} != {NODE_OS:?})", os.name);
        return refuse(Reason::PodOsNotSupported, message);
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        volume(v, i)?;
    }
    pod_level(spec)?;
    let init = spec.init_containers.iter().flatten().enumerate().map(|(i, c)| (format!("spec.initContainers[{i}]"), c));
    let main = spec.containers.iter().enumerate().map(|(i, c)| (format!("spec.containers[{i}]"), c));
    for (path, c) in init.chain(main) {
        container(c, &path)?;
    }
    Ok(())
}

/// The status of a refused pod: `Failed` with the refusal's reason, the
/// message prefixed as upstream's ("Pod was rejected: ..."), and a
/// `Ready=False` condition with the same reason. The transition time is
/// kept from `previous` so that re-deciding changes nothing.
pub fn rejected_status(pod: &Pod, refusal: &Refusal, now: Timestamp) -> PodStatus {
    let message = format!("Pod was rejected: {}", refusal.message);
    let previous = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    let since = previous
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.reason.as_deref() == Some(refusal.reason.as_str())))
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::from_second(now.as_second()).unwrap_or(now)));
    PodStatus {
        phase: Some("Failed".into()),
        reason: Some(refusal.reason.as_str().into()),
        message: Some(message.clone()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: Some(refusal.reason.as_str().into()),
            message: Some(message),
            last_transition_time: Some(since),
            ..Default::default()
        }]),
        qos_class: Some(crate::status::qos_class(pod).into()),
        ..Default::default()
    }
}

/// The type of a volume: its one source key (`emptyDir`, `nfs`, ...).
pub fn volume_type(v: &Volume) -> Option<String> {
    let value = serde_json::to_value(v).ok()?;
    value.as_object()?.iter().find(|(k, v)| *k != "name" && !v.is_null()).map(|(k, _)| k.clone())
}

fn volume(v: &Volume, i: usize) -> Result<(), Refusal> {
    let Some(kind) = volume_type(v) else { return Ok(()) };
    if !SUPPORTED_VOLUMES.contains(&kind.as_str()) {
        let message = format!(
            "spec.volumes[{i}] ({:?}): volume type {kind} is not supported by this node (supported: {})",
            v.name,
            SUPPORTED_VOLUMES.join(", ")
        );
        return refuse(Reason::UnsupportedVolume, message);
    }
    if v.empty_dir.as_ref().and_then(|e| e.medium.as_deref()) == Some("HugePages") {
        let message =
            format!("spec.volumes[{i}] ({:?}): emptyDir medium HugePages is not supported by this node", v.name);
        return refuse(Reason::UnsupportedVolume, message);
    }
    for (j, source) in v.projected.iter().flat_map(|p| p.sources.iter().flatten()).enumerate() {
        let value = serde_json::to_value(source).unwrap_or(Value::Null);
        let keys = value.as_object().into_iter().flat_map(|m| m.iter()).filter(|(_, v)| !v.is_null());
        for (key, _) in keys {
            if !SUPPORTED_PROJECTIONS.contains(&key.as_str()) {
                let message = format!(
                    "spec.volumes[{i}].projected.sources[{j}] ({:?}): projected source {key} is not supported by this node",
                    v.name
                );
                return refuse(Reason::UnsupportedVolume, message);
            }
        }
    }
    Ok(())
}

fn pod_level(spec: &PodSpec) -> Result<(), Refusal> {
    if spec.host_users == Some(false) {
        return unsupported("spec.hostUsers", "user namespaces are not supported by this node's runtime");
    }
    if let Some(class) = spec.runtime_class_name.as_deref().filter(|c| !c.is_empty()) {
        return unsupported(
            "spec.runtimeClassName",
            &format!("RuntimeClass {class:?} is not available on this node (only the default runtime)"),
        );
    }
    if spec.resource_claims.as_ref().is_some_and(|c| !c.is_empty()) {
        return unsupported("spec.resourceClaims", "dynamic resource allocation is not supported by this node");
    }
    if spec.overhead.as_ref().is_some_and(|o| !o.is_empty()) {
        return unsupported("spec.overhead", "pod overhead comes from a RuntimeClass, and this node has none");
    }
    if spec.resources.is_some() {
        return unsupported("spec.resources", "pod-level resources are not supported by this node");
    }
    if spec.host_aliases.as_ref().is_some_and(|a| !a.is_empty()) {
        return unsupported("spec.hostAliases", "this node does not manage /etc/hosts");
    }
    if spec.set_hostname_as_fqdn == Some(true) {
        return unsupported("spec.setHostnameAsFQDN", "this node has no cluster domain to build an FQDN from");
    }
    if let Some(sc) = &spec.security_context {
        for sysctl in sc.sysctls.iter().flatten() {
            if !SAFE_SYSCTLS.contains(&sysctl.name.as_str()) {
                let message = format!("forbidden sysctl: {:?} not allowlisted", sysctl.name);
                return refuse(Reason::SysctlForbidden, message);
            }
        }
        if sc.supplemental_groups_policy.as_deref() == Some("Strict") {
            return unsupported(
                "spec.securityContext.supplementalGroupsPolicy",
                "Strict is not supported by this node's runtime (Merge is)",
            );
        }
        profiles("spec.securityContext", sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()), None)?;
        profiles("spec.securityContext", None, sc.app_armor_profile.as_ref().map(|p| p.type_.as_str()))?;
    }
    Ok(())
}

fn profiles(at: &str, seccomp: Option<&str>, apparmor: Option<&str>) -> Result<(), Refusal> {
    if seccomp == Some("Localhost") {
        return unsupported(&format!("{at}.seccompProfile"), "Localhost profiles are not supported by this node");
    }
    if apparmor.is_some_and(|p| p != "Unconfined") {
        return unsupported(&format!("{at}.appArmorProfile"), "AppArmor is not enabled on this node");
    }
    Ok(())
}

fn container(c: &Container, path: &str) -> Result<(), Refusal> {
    if c.volume_devices.as_ref().is_some_and(|d| !d.is_empty()) {
        return unsupported(&format!("{path}.volumeDevices"), "raw block devices are not supported by this node");
    }
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        if m.recursive_read_only.as_deref() == Some("Enabled") {
            return unsupported(
                &format!("{path}.volumeMounts[{i}].recursiveReadOnly"),
                "recursive read-only mounts are not supported by this node's runtime (IfPossible falls back)",
            );
        }
    }
    if c.resources.as_ref().and_then(|r| r.claims.as_ref()).is_some_and(|claims| !claims.is_empty()) {
        return unsupported(&format!("{path}.resources.claims"), "dynamic resource allocation is not supported");
    }
    if let Some(sc) = &c.security_context {
        let at = format!("{path}.securityContext");
        if sc.proc_mount.as_deref().is_some_and(|m| m != "Default") {
            return unsupported(&format!("{at}.procMount"), "only the Default proc mount is supported by this node");
        }
        profiles(
            &at,
            sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            sc.app_armor_profile.as_ref().map(|p| p.type_.as_str()),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Pod {
        let mut spec = spec;
        let containers = spec.get("containers").cloned().unwrap_or(json!([{"name": "c", "image": "busybox"}]));
        spec["containers"] = containers;
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
    }

    fn verdict(spec: Value) -> Option<(&'static str, String)> {
        admit(&pod(spec)).err().map(|r| (r.reason.as_str(), r.message))
    }

    #[test]
    fn rejected_status_is_failed_with_reason_and_stable() {
        let refused = pod(json!({"hostUsers": false}));
        let refusal = admit(&refused).expect_err("refused");
        let now = Timestamp::from_second(1_000).expect("time");
        let status = rejected_status(&refused, &refusal, now);
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        assert_eq!(status.reason.as_deref(), Some("UnsupportedPodSpec"));
        assert!(status.message.as_deref().is_some_and(|m| m.starts_with("Pod was rejected: spec.hostUsers")));
        let ready = &status.conditions.as_ref().expect("conditions")[0];
        assert_eq!((ready.type_.as_str(), ready.status.as_str()), ("Ready", "False"));
        let mut again = refused.clone();
        again.status = Some(status.clone());
        let later = Timestamp::from_second(2_000).expect("time");
        assert_eq!(rejected_status(&again, &refusal, later), status, "no change on a later sync");
    }

    #[test]
    fn admits_what_the_node_runs() {
        let specs = [
            json!({}),
            json!({"os": {"name": "linux"}, "hostNetwork": true, "hostPID": true, "hostIPC": true, "hostUsers": true}),
            json!({"volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "hostPath": {"path": "/tmp"}},
                {"name": "c", "configMap": {"name": "x"}}, {"name": "d", "secret": {"secretName": "x"}},
                {"name": "e", "downwardAPI": {}}, {"name": "f", "projected": {"sources": [
                    {"configMap": {"name": "x"}}, {"serviceAccountToken": {"path": "t"}}]}}]}),
            json!({"securityContext": {"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}],
                "seccompProfile": {"type": "RuntimeDefault"}, "appArmorProfile": {"type": "Unconfined"}}}),
            json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}, "runtimeClassName": ""}),
            json!({"dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]}}),
            json!({"containers": [{"name": "c", "image": "i", "securityContext": {"procMount": "Default"}}]}),
        ];
        for spec in specs {
            assert_eq!(verdict(spec.clone()), None, "{spec}");
        }
    }

    #[test]
    fn refuses_what_the_node_cannot_run_with_the_field_named() {
        let c = |sc: Value| json!([{"name": "c", "image": "i", "securityContext": sc}]);
        let cases = [
            (json!({"os": {"name": "windows"}}), "PodOSNotSupported", "OS field"),
            (
                json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "x"}}]}),
                "UnsupportedVolume",
                "spec.volumes[0] (\"data\"): volume type persistentVolumeClaim",
            ),
            (json!({"volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}]}), "UnsupportedVolume", "nfs"),
            (
                json!({"volumes": [{"name": "h", "emptyDir": {"medium": "HugePages"}}]}),
                "UnsupportedVolume",
                "medium HugePages",
            ),
            (json!({"volumes": [{"name": "n", "csi": {"driver": "d"}}]}), "UnsupportedVolume", "csi"),
            (json!({"volumes": [{"name": "n", "ephemeral": {}}]}), "UnsupportedVolume", "ephemeral"),
            (json!({"volumes": [{"name": "n", "image": {"reference": "r"}}]}), "UnsupportedVolume", "image"),
            (
                json!({"volumes": [{"name": "p", "projected": {"sources": [{"clusterTrustBundle": {"path": "b"}}]}}]}),
                "UnsupportedVolume",
                "projected.sources[0]",
            ),
            (
                json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}),
                "SysctlForbidden",
                "forbidden sysctl: \"kernel.msgmax\" not allowlisted",
            ),
            (json!({"hostUsers": false}), "UnsupportedPodSpec", "spec.hostUsers"),
            (json!({"overhead": {"cpu": "100m"}}), "UnsupportedPodSpec", "spec.overhead"),
            (json!({"resources": {"limits": {"cpu": "1"}}}), "UnsupportedPodSpec", "spec.resources"),
            (
                json!({"securityContext": {"supplementalGroupsPolicy": "Strict"}}),
                "UnsupportedPodSpec",
                "supplementalGroupsPolicy",
            ),
            (json!({"runtimeClassName": "gvisor"}), "UnsupportedPodSpec", "spec.runtimeClassName"),
            (json!({"resourceClaims": [{"name": "gpu"}]}), "UnsupportedPodSpec", "spec.resourceClaims"),
            (json!({"hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a"]}]}), "UnsupportedPodSpec", "spec.hostAliases"),
            (json!({"setHostnameAsFQDN": true}), "UnsupportedPodSpec", "spec.setHostnameAsFQDN"),
            (
                json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}}),
                "UnsupportedPodSpec",
                "spec.securityContext.seccompProfile",
            ),
            (
                json!({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}}),
                "UnsupportedPodSpec",
                "spec.securityContext.appArmorProfile",
            ),
            (
                json!({"containers": c(json!({"procMount": "Unmasked"}))}),
                "UnsupportedPodSpec",
                "spec.containers[0].securityContext.procMount",
            ),
            (
                json!({"containers": c(json!({"appArmorProfile": {"type": "Localhost"}}))}),
                "UnsupportedPodSpec",
                "spec.containers[0].securityContext.appArmorProfile",
            ),
            (
                json!({"containers": [{"name": "c", "image": "i", "volumeDevices": [{"name": "v", "devicePath": "/dev/x"}]}]}),
                "UnsupportedPodSpec",
                "spec.containers[0].volumeDevices",
            ),
            (
                json!({"containers": [{"name": "c", "image": "i", "resources": {"claims": [{"name": "gpu"}]}}]}),
                "UnsupportedPodSpec",
                "spec.containers[0].resources.claims",
            ),
            (
                json!({"initContainers": [{"name": "i", "image": "i", "volumeDevices": [{"name": "v", "devicePath": "/d"}]}]}),
                "UnsupportedPodSpec",
                "spec.initContainers[0].volumeDevices",
            ),
        ];
        for (spec, reason, needle) in cases {
            let (got, message) = verdict(spec.clone()).unwrap_or_else(|| panic!("admitted {spec}"));
            assert_eq!(got, reason, "{spec}");
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
    }
}
