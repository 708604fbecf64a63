//! The rest of upstream's `ValidatePodSpec` that no node could run:
//! volume mounts (subPath, propagation, recursive read-only), volume item
//! paths and hostPath types, env field and resource references, security
//! contexts and sysctls, host port conflicts, `os.name`, DNS config, hooks
//! on plain init containers, and ephemeral containers (never on create).
//! Field paths and messages are upstream's.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, PodSpec, SecurityContext, Volume, VolumeMount};

use super::{forbidden, invalid_value, one_of, required_because, Causes};
use crate::apiserver::status::Cause;

/// The downward API fields an env var may read (upstream's list).
pub const ENV_FIELD_PATHS: [&str; 11] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The resources `resourceFieldRef` may read.
pub const RESOURCE_FIELDS: [&str; 6] = [
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

const HOST_PATH_TYPES: [&str; 8] =
    ["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"];

/// Where a pod spec is validated: a Pod being created, or a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecOf {
    /// `spec` of a Pod.
    Pod,
    /// `spec.template.spec` of a workload.
    Template,
}

/// Checks of `spec` at `field` beyond those of [`super::pod`].
pub fn validate_spec_rules(spec: &PodSpec, field: &str, of: SpecOf, out: &mut Causes) {
    if spec.ephemeral_containers.as_ref().is_some_and(|e| !e.is_empty()) {
        let detail = match of {
            SpecOf::Pod => "cannot be set on create",
            SpecOf::Template => "ephemeral containers not allowed in pod template",
        };
        out.push(forbidden(format!("{field}.ephemeralContainers"), detail));
    }
    if let Some(os) = &spec.os {
        one_of(format!("{field}.os.name"), Some(os.name.as_str()), &["linux", "windows"], out);
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        out.push(invalid_value(
            format!("{field}.securityContext.shareProcessNamespace"),
            true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    if spec.dns_policy.as_deref() == Some("None") {
        let servers = spec.dns_config.as_ref().and_then(|c| c.nameservers.as_ref()).map_or(0, Vec::len);
        if spec.dns_config.is_some() && servers == 0 {
            out.push(required_because(
                format!("{field}.dnsConfig.nameservers"),
                "must provide at least one DNS nameserver when dnsPolicy is None",
            ));
        }
    }
    if let Some(servers) = spec.dns_config.as_ref().and_then(|c| c.nameservers.as_ref()).filter(|s| s.len() > 3) {
        out.push(invalid_value(
            format!("{field}.dnsConfig.nameservers"),
            servers.join(" "),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        validate_volume_paths(v, &format!("{field}.volumes[{i}]"), out);
    }
    validate_pod_security(spec, field, out);
    let mut host_ports = HashSet::new();
    for (path, c, is_init) in containers_with_paths(spec, field) {
        if is_init && c.lifecycle.is_some() && c.restart_policy.as_deref() != Some("Always") {
            out.push(forbidden(
                format!("{path}.lifecycle"),
                "may not be set for init containers without restartPolicy=Always",
            ));
        }
        validate_mounts(c, &path, out);
        validate_env_refs(c, &path, out);
        if let Some(sc) = &c.security_context {
            validate_security_context(sc, &format!("{path}.securityContext"), out);
        }
        if !is_init {
            for (j, p) in c.ports.iter().flatten().enumerate() {
                let Some(host) = p.host_port.filter(|h| *h != 0) else { continue };
                let key = format!(
                    "{}/{host}/{}",
                    p.host_ip.as_deref().unwrap_or_default(),
                    p.protocol.as_deref().unwrap_or("TCP")
                );
                if !host_ports.insert(key) {
                    out.push(Cause::duplicate(
                        format!("{path}.ports[{j}].hostPort"),
                        &format!("{host}/{}", p.protocol.as_deref().unwrap_or("TCP")),
                    ));
                }
            }
        }
    }
}

/// A path inside a volume: relative, without a `..` element.
fn local_descending_path(value: &str, at: &str, out: &mut Causes) {
    if value.starts_with('/') {
        out.push(invalid_value(at, value, "must be a relative path"));
    }
    if value.split('/').any(|part| part == "..") {
        out.push(invalid_value(at, value, "must not contain '..'"));
    }
}

fn validate_volume_paths(v: &Volume, at: &str, out: &mut Causes) {
    if let Some(h) = &v.host_path {
        one_of(format!("{at}.hostPath.type"), h.type_.as_deref(), &HOST_PATH_TYPES, out);
    }
    let cm_items = v.config_map.iter().flat_map(|c| c.items.iter().flatten()).map(|i| ("configMap", i));
    let secret_items = v.secret.iter().flat_map(|c| c.items.iter().flatten()).map(|i| ("secret", i));
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (kind, item) in cm_items.chain(secret_items) {
        let j = counts.entry(kind).or_default();
        let path = format!("{at}.{kind}.items[{j}]");
        *j += 1;
        if item.key.is_empty() {
            out.push(Cause::required(format!("{path}.key")));
        }
        if item.path.is_empty() {
            out.push(Cause::required(format!("{path}.path")));
        } else {
            local_descending_path(&item.path, &format!("{path}.path"), out);
            if item.path.starts_with("..") && !item.path.starts_with("../") {
                out.push(invalid_value(format!("{path}.path"), item.path.as_str(), "must not start with '..'"));
            }
        }
    }
}

fn privileged(c: &Container) -> bool {
    c.security_context.as_ref().and_then(|s| s.privileged) == Some(true)
}

fn validate_mounts(c: &Container, path: &str, out: &mut Causes) {
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let at = format!("{path}.volumeMounts[{i}]");
        validate_mount(m, &at, privileged(c), out);
    }
}

fn validate_mount(m: &VolumeMount, at: &str, privileged: bool, out: &mut Causes) {
    if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
        local_descending_path(sub, &format!("{at}.subPath"), out);
    }
    if let Some(expr) = m.sub_path_expr.as_deref().filter(|s| !s.is_empty()) {
        if m.sub_path.as_deref().is_some_and(|s| !s.is_empty()) {
            out.push(invalid_value(
                format!("{at}.subPathExpr"),
                expr,
                "subPathExpr and subPath are mutually exclusive",
            ));
        }
        local_descending_path(expr, &format!("{at}.subPathExpr"), out);
    }
    let propagation = m.mount_propagation.as_deref();
    one_of(format!("{at}.mountPropagation"), propagation, &["None", "HostToContainer", "Bidirectional"], out);
    if propagation == Some("Bidirectional") && !privileged {
        out.push(forbidden(
            format!("{at}.mountPropagation"),
            "Bidirectional mount propagation is available only to privileged containers",
        ));
    }
    let rro = m.recursive_read_only.as_deref();
    one_of(format!("{at}.recursiveReadOnly"), rro, &["Disabled", "IfPossible", "Enabled"], out);
    if rro.is_some_and(|r| r != "Disabled") {
        if m.read_only != Some(true) {
            out.push(forbidden(format!("{at}.recursiveReadOnly"), "may only be specified when readOnly is true"));
        }
        if propagation.is_some_and(|p| p != "None") {
            out.push(forbidden(
                format!("{at}.recursiveReadOnly"),
                "may only be specified when mountPropagation is None or not specified",
            ));
        }
    }
}

fn validate_env_refs(c: &Container, path: &str, out: &mut Causes) {
    for (i, e) in c.env.iter().flatten().enumerate() {
        let Some(from) = &e.value_from else { continue };
        let at = format!("{path}.env[{i}].valueFrom");
        if let Some(f) = &from.field_ref {
            let base = f.field_path.split_once('[').map_or(f.field_path.as_str(), |(b, _)| b);
            let subscript_ok = match f.field_path.split_once('[') {
                None => !matches!(base, "metadata.labels" | "metadata.annotations"),
                Some((_, rest)) => {
                    matches!(base, "metadata.labels" | "metadata.annotations")
                        && rest.starts_with('\'')
                        && rest.ends_with("']")
                        && rest.len() > 3
                }
            };
            if !ENV_FIELD_PATHS.contains(&base) || !subscript_ok {
                out.push(Cause::not_supported(format!("{at}.fieldRef.fieldPath"), &f.field_path, &ENV_FIELD_PATHS));
            }
        }
        if let Some(r) = &from.resource_field_ref {
            if !RESOURCE_FIELDS.contains(&r.resource.as_str()) {
                out.push(Cause::not_supported(
                    format!("{at}.resourceFieldRef.resource"),
                    &r.resource,
                    &RESOURCE_FIELDS,
                ));
            } else if let Some(d) = &r.divisor {
                let cpu = r.resource.ends_with(".cpu");
                let allowed: &[&str] = if cpu {
                    &["1m", "1"]
                } else {
                    &["1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"]
                };
                if !allowed.contains(&d.0.as_str()) {
                    let what = if cpu {
                        "only divisor's values 1m and 1 are supported with the cpu resource"
                    } else {
                        "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource"
                    };
                    out.push(invalid_value(format!("{at}.resourceFieldRef.divisor"), d.0.as_str(), what));
                }
            }
            if let Some(name) = r.container_name.as_deref().filter(|n| !n.is_empty() && *n != c.name) {
                out.push(invalid_value(
                    format!("{at}.resourceFieldRef.containerName"),
                    name,
                    "must be the name of this container",
                ));
            }
        }
    }
}

fn id_range(value: Option<i64>, at: String, out: &mut Causes) {
    if let Some(v) = value.filter(|v| !(0..=i64::from(i32::MAX)).contains(v)) {
        out.push(invalid_value(at, v, "must be between 0 and 2147483647, inclusive"));
    }
}

fn seccomp(profile: Option<&k8s_openapi::api::core::v1::SeccompProfile>, at: &str, out: &mut Causes) {
    let Some(p) = profile else { return };
    one_of(
        format!("{at}.seccompProfile.type"),
        Some(p.type_.as_str()),
        &["RuntimeDefault", "Unconfined", "Localhost"],
        out,
    );
    if p.type_ == "Localhost" && p.localhost_profile.as_deref().unwrap_or_default().is_empty() {
        out.push(required_because(
            format!("{at}.seccompProfile.localhostProfile"),
            "must be set when seccomp type is Localhost",
        ));
    }
}

fn validate_security_context(sc: &SecurityContext, at: &str, out: &mut Causes) {
    id_range(sc.run_as_user, format!("{at}.runAsUser"), out);
    id_range(sc.run_as_group, format!("{at}.runAsGroup"), out);
    one_of(format!("{at}.procMount"), sc.proc_mount.as_deref(), &["Default", "Unmasked"], out);
    seccomp(sc.seccomp_profile.as_ref(), at, out);
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            out.push(invalid_value(at, "", "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"));
        }
        let adds = sc.capabilities.iter().flat_map(|c| c.add.iter().flatten());
        if adds.clone().any(|cap| cap == "SYS_ADMIN" || cap == "CAP_SYS_ADMIN") {
            out.push(invalid_value(
                at,
                "",
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ));
        }
    }
}

fn validate_pod_security(spec: &PodSpec, field: &str, out: &mut Causes) {
    let Some(sc) = &spec.security_context else { return };
    let at = format!("{field}.securityContext");
    id_range(sc.run_as_user, format!("{at}.runAsUser"), out);
    id_range(sc.run_as_group, format!("{at}.runAsGroup"), out);
    id_range(sc.fs_group, format!("{at}.fsGroup"), out);
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        id_range(Some(*g), format!("{at}.supplementalGroups[{i}]"), out);
    }
    seccomp(sc.seccomp_profile.as_ref(), &at, out);
    let mut names = HashSet::new();
    for (i, s) in sc.sysctls.iter().flatten().enumerate() {
        let name_at = format!("{at}.sysctls[{i}].name");
        if s.name.is_empty() {
            out.push(Cause::required(name_at));
            continue;
        }
        if !is_sysctl_name(&s.name) {
            out.push(invalid_value(
                name_at.clone(),
                s.name.as_str(),
                "must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
            ));
        }
        if !names.insert(s.name.as_str()) {
            out.push(Cause::duplicate(name_at.clone(), &s.name));
        }
        if spec.host_network == Some(true) && s.name.starts_with("net.") {
            out.push(forbidden(name_at, "may not be specified when 'hostNetwork' is true"));
        }
    }
}

fn is_sysctl_name(name: &str) -> bool {
    let segment_ok = |s: &str| {
        let b = s.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
    };
    name.len() <= 253 && name.split(['.', '/']).all(segment_ok)
}

/// Every init and app container of `spec` with its field path
/// (`<field>.initContainers[i]` / `<field>.containers[i]`) and whether it is
/// an init container, in that order.
pub(super) fn containers_with_paths<'a>(
    spec: &'a PodSpec,
    field: &'a str,
) -> impl Iterator<Item = (String, &'a Container, bool)> + 'a {
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(move |(i, c)| (format!("{field}.initContainers[{i}]"), c, true));
    let main = spec.containers.iter().enumerate().map(move |(i, c)| (format!("{field}.containers[{i}]"), c, false));
    init.chain(main)
}

#[cfg(test)]
#[path = "podrules_tests.rs"]
mod tests;
