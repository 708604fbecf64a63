//! The `baseline` checks of the Pod Security Standards: each returns
//! upstream's forbidden reason and detail, or `None` if the pod passes.

use serde_json::Value;

use super::view::{containers_phrase, plural, quoted, str_at, PodView};
use super::Violation;

/// Capabilities a container may add at `baseline`.
const ALLOWED_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// SELinux types a pod or container may set at `baseline` (or none).
const ALLOWED_SELINUX_TYPES: &[&str] = &["container_t", "container_init_t", "container_kvm_t", "container_engine_t"];

/// The sysctls that are namespaced and safe.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// The AppArmor annotation prefix (one annotation per container).
const APPARMOR_ANNOTATION: &str = "container.apparmor.security.beta.kubernetes.io/";

/// A check of one level.
pub type Check = fn(&PodView<'_>) -> Option<Violation>;

/// The baseline checks, in the order their reasons are reported, each
/// with whether `restricted` replaces it by a stricter form (capabilities,
/// hostPath, seccomp).
pub const CHECKS: &[(Check, bool)] = &[
    (app_armor, false),
    (capabilities, true),
    (host_namespaces, false),
    (host_path_volumes, true),
    (host_ports, false),
    (privileged, false),
    (proc_mount, false),
    (seccomp, true),
    (se_linux, false),
    (sysctls, false),
    (host_process, false),
];

fn violation(reason: &'static str, detail: String) -> Option<Violation> {
    Some(Violation { reason, detail })
}

/// `windowsOptions.hostProcess` must not be true.
pub fn host_process(pod: &PodView<'_>) -> Option<Violation> {
    let pod_level = pod.sc("/windowsOptions/hostProcess").and_then(Value::as_bool) == Some(true);
    let bad: Vec<&str> = pod
        .containers()
        .filter(|c| c.sc("/windowsOptions/hostProcess").and_then(Value::as_bool) == Some(true))
        .map(|c| c.name)
        .collect();
    let who = match (pod_level, bad.is_empty()) {
        (false, true) => return None,
        (true, true) => "pod".to_string(),
        (false, false) => containers_phrase(&bad),
        (true, false) => format!("pod and {}", containers_phrase(&bad)),
    };
    violation("hostProcess", format!("{who} must not set securityContext.windowsOptions.hostProcess=true"))
}

/// No host network, PID or IPC namespace.
pub fn host_namespaces(pod: &PodView<'_>) -> Option<Violation> {
    let set: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|f| pod.flag(f))
        .map(|f| format!("{f}=true"))
        .collect();
    (!set.is_empty()).then(|| Violation { reason: "host namespaces", detail: set.join(", ") })
}

/// No privileged container.
pub fn privileged(pod: &PodView<'_>) -> Option<Violation> {
    let bad: Vec<&str> = pod
        .containers()
        .filter(|c| c.sc("/privileged").and_then(Value::as_bool) == Some(true))
        .map(|c| c.name)
        .collect();
    (!bad.is_empty()).then(|| Violation {
        reason: "privileged",
        detail: format!("{} must not set securityContext.privileged=true", containers_phrase(&bad)),
    })
}

/// The capabilities `container` adds that are not in `allowed`.
pub(super) fn added_beyond<'a>(container: &'a Value, allowed: &[&str]) -> Vec<&'a str> {
    container
        .pointer("/securityContext/capabilities/add")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|cap| !allowed.contains(cap))
        .collect()
}

/// Added capabilities within the default set.
pub fn capabilities(pod: &PodView<'_>) -> Option<Violation> {
    let parts: Vec<String> = pod
        .containers()
        .filter_map(|c| {
            let extra = added_beyond(c.value, ALLOWED_CAPABILITIES);
            (!extra.is_empty()).then(|| {
                format!(
                    "container \"{}\" must not include {} in securityContext.capabilities.add",
                    c.name,
                    quoted(&extra)
                )
            })
        })
        .collect();
    (!parts.is_empty()).then(|| Violation { reason: "non-default capabilities", detail: parts.join("; ") })
}

/// No hostPath volume.
pub fn host_path_volumes(pod: &PodView<'_>) -> Option<Violation> {
    let bad: Vec<&str> =
        pod.volumes().filter(|v| v.get("hostPath").is_some()).filter_map(|v| str_at(v.get("name"))).collect();
    (!bad.is_empty()).then(|| Violation {
        reason: "hostPath volumes",
        detail: format!("{} {}", plural(bad.len(), "volume", "volumes"), quoted(&bad)),
    })
}

/// No container port bound on the host.
pub fn host_ports(pod: &PodView<'_>) -> Option<Violation> {
    let mut names = Vec::new();
    let mut ports = Vec::new();
    for c in pod.containers() {
        let used: Vec<i64> = c
            .value
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
            .filter(|p| *p != 0)
            .collect();
        if !used.is_empty() {
            names.push(c.name);
            ports.extend(used);
        }
    }
    if names.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.iter().map(i64::to_string).collect();
    let reason = plural(ports.len(), "hostPort", "hostPorts");
    let verb = plural(names.len(), "uses", "use");
    violation(reason, format!("{} {verb} {reason} {}", containers_phrase(&names), ports.join(", ")))
}

/// AppArmor: only the runtime default or a localhost profile, as a field or
/// as the (older) annotation.
pub fn app_armor(pod: &PodView<'_>) -> Option<Violation> {
    let mut bad = Vec::new();
    for (key, value) in pod.annotations.into_iter().flatten() {
        if let (Some(_), Some(v)) = (key.strip_prefix(APPARMOR_ANNOTATION), value.as_str()) {
            if !(v.is_empty() || v == "runtime/default" || v.starts_with("localhost/")) {
                bad.push(format!("annotation {key:?}={v:?}"));
            }
        }
    }
    let allowed = |t: Option<&str>| matches!(t, None | Some("RuntimeDefault") | Some("Localhost"));
    if let Some(t) = str_at(pod.sc("/appArmorProfile/type")).filter(|t| !allowed(Some(t))) {
        bad.push(format!("pod must not set securityContext.appArmorProfile.type to {t:?}"));
    }
    for c in pod.containers() {
        if let Some(t) = str_at(c.sc("/appArmorProfile/type")).filter(|t| !allowed(Some(t))) {
            bad.push(format!("container {:?} must not set securityContext.appArmorProfile.type to {t:?}", c.name));
        }
    }
    (!bad.is_empty()).then(|| Violation {
        reason: if bad.len() == 1 { "forbidden AppArmor profile" } else { "forbidden AppArmor profiles" },
        detail: bad.join("; "),
    })
}

/// The forbidden parts of one `seLinuxOptions` (type outside the allowed
/// set, any user or role).
fn se_linux_parts(options: Option<&Value>) -> Vec<String> {
    let Some(o) = options else { return Vec::new() };
    let mut parts = Vec::new();
    if let Some(t) = str_at(o.get("type")).filter(|t| !t.is_empty() && !ALLOWED_SELINUX_TYPES.contains(t)) {
        parts.push(format!("type {t:?}"));
    }
    for field in ["user", "role"] {
        if let Some(v) = str_at(o.get(field)).filter(|v| !v.is_empty()) {
            parts.push(format!("{field} {v:?}"));
        }
    }
    parts
}

/// SELinux: a container type only, no user or role.
pub fn se_linux(pod: &PodView<'_>) -> Option<Violation> {
    let mut bad = Vec::new();
    let pod_parts = se_linux_parts(pod.sc("/seLinuxOptions"));
    if !pod_parts.is_empty() {
        bad.push(format!("pod set forbidden securityContext.seLinuxOptions: {}", pod_parts.join("; ")));
    }
    for c in pod.containers() {
        let parts = se_linux_parts(c.sc("/seLinuxOptions"));
        if !parts.is_empty() {
            bad.push(format!(
                "container {:?} set forbidden securityContext.seLinuxOptions: {}",
                c.name,
                parts.join("; ")
            ));
        }
    }
    (!bad.is_empty()).then(|| Violation { reason: "seLinuxOptions", detail: bad.join("; ") })
}

/// `/proc` mounted with the default mask only.
pub fn proc_mount(pod: &PodView<'_>) -> Option<Violation> {
    let bad: Vec<String> = pod
        .containers()
        .filter_map(|c| {
            str_at(c.sc("/procMount"))
                .filter(|m| *m != "Default")
                .map(|m| format!("container {:?} must not set securityContext.procMount to {m:?}", c.name))
        })
        .collect();
    (!bad.is_empty()).then(|| Violation { reason: "procMount", detail: bad.join("; ") })
}

/// Seccomp: never `Unconfined`, at pod or container level.
pub fn seccomp(pod: &PodView<'_>) -> Option<Violation> {
    let unconfined = |v: Option<&Value>| str_at(v) == Some("Unconfined");
    let mut bad = Vec::new();
    if unconfined(pod.sc("/seccompProfile/type")) {
        bad.push("pod must not set securityContext.seccompProfile.type to \"Unconfined\"".to_string());
    }
    let names: Vec<&str> =
        pod.containers().filter(|c| unconfined(c.sc("/seccompProfile/type"))).map(|c| c.name).collect();
    if !names.is_empty() {
        bad.push(format!(
            "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
            containers_phrase(&names)
        ));
    }
    (!bad.is_empty()).then(|| Violation { reason: "seccompProfile", detail: bad.join("; ") })
}

/// Only the safe, namespaced sysctls.
pub fn sysctls(pod: &PodView<'_>) -> Option<Violation> {
    let bad: Vec<&str> = pod
        .sc("/sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| str_at(s.get("name")))
        .filter(|name| !SAFE_SYSCTLS.contains(name))
        .collect();
    (!bad.is_empty()).then(|| Violation { reason: "forbidden sysctls", detail: bad.join(", ") })
}
