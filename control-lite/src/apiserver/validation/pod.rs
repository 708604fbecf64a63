//! Pod specs (pods and workload templates): containers, ports, env,
//! resources, probes, volumes and mounts, and the pod-level enums and numbers.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Toleration, Volume};
use serde_json::Value;

use super::meta::{is_dns1123_label, validate_env_name, validate_labels, validate_name, NameRule, DNS1123_LABEL_MSG};
use super::podrules::{containers_with_paths, validate_spec_rules, SpecOf};
use super::probes::{handler_count, probe_port, validate_ports, validate_probe};
use super::quantities::{validate_quantity, validate_requirements, validate_resource_list};
use super::{at_least, forbidden, invalid_value, one_of, required_because, Causes};
use crate::apiserver::schema::typed;
use crate::apiserver::status::Cause;

const RESTART_POLICIES: [&str; 3] = ["Always", "OnFailure", "Never"];
const DNS_POLICIES: [&str; 4] = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: [&str; 3] = ["Always", "IfNotPresent", "Never"];

/// A Pod object.
pub fn validate_pod(obj: &Value, out: &mut Causes) {
    match typed::<Pod>(obj) {
        Some(pod) => {
            validate_pod_spec(pod.spec.as_ref(), "spec", out);
            if let Some(spec) = pod.spec.as_ref() {
                validate_spec_rules(spec, "spec", SpecOf::Pod, out);
            }
        }
        None => out.push(Cause::invalid("spec", "", "must be a pod spec")),
    }
}

/// Checks a pod spec at `field`.
pub fn validate_pod_spec(spec: Option<&PodSpec>, field: &str, out: &mut Causes) {
    let Some(spec) = spec else {
        out.push(Cause::required(format!("{field}.containers")));
        return;
    };
    let volumes = validate_volumes(spec.volumes.as_deref().unwrap_or_default(), field, out);
    if spec.containers.is_empty() {
        out.push(Cause::required(format!("{field}.containers")));
    }
    if spec.host_network == Some(true) {
        for (i, c) in spec.containers.iter().enumerate() {
            for (j, p) in c.ports.iter().flatten().enumerate() {
                if p.host_port.is_some_and(|h| h != 0 && h != p.container_port) {
                    out.push(invalid_value(
                        format!("{field}.containers[{i}].ports[{j}].hostPort"),
                        p.host_port.unwrap_or_default(),
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    let mut names = HashSet::new();
    for (path, c, is_init) in containers_with_paths(spec, field) {
        validate_container(c, &path, is_init, &volumes, &mut names, out);
    }
    one_of(format!("{field}.restartPolicy"), spec.restart_policy.as_deref(), &RESTART_POLICIES, out);
    one_of(format!("{field}.dnsPolicy"), spec.dns_policy.as_deref(), &DNS_POLICIES, out);
    if spec.dns_policy.as_deref() == Some("None") && spec.dns_config.is_none() {
        out.push(Cause::required(format!("{field}.dnsConfig")));
    }
    if let Some(g) = spec.termination_grace_period_seconds {
        at_least(format!("{field}.terminationGracePeriodSeconds"), g, 0, out);
    }
    if let Some(d) = spec.active_deadline_seconds {
        at_least(format!("{field}.activeDeadlineSeconds"), d, 1, out);
    }
    for (value, which) in [(&spec.hostname, "hostname"), (&spec.subdomain, "subdomain")] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            validate_name(v, NameRule::Label, &format!("{field}.{which}"), out);
        }
    }
    if let Some(sa) = spec.service_account_name.as_deref().filter(|s| !s.is_empty()) {
        validate_name(sa, NameRule::Subdomain, &format!("{field}.serviceAccountName"), out);
    }
    if let Some(selector) = &spec.node_selector {
        validate_labels(selector, &format!("{field}.nodeSelector"), out);
    }
    // Pod-level resources (beta since 1.34): the same rules as a container's.
    validate_requirements(spec.resources.as_ref(), &format!("{field}.resources"), out);
    if let Some(overhead) = &spec.overhead {
        validate_resource_list(overhead, &format!("{field}.overhead"), out);
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        validate_toleration(t, &format!("{field}.tolerations[{i}]"), out);
    }
}

fn validate_toleration(t: &Toleration, field: &str, out: &mut Causes) {
    one_of(format!("{field}.operator"), t.operator.as_deref(), &["Exists", "Equal"], out);
    one_of(
        format!("{field}.effect"),
        t.effect.as_deref().filter(|e| !e.is_empty()),
        &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        out,
    );
    if t.operator.as_deref() == Some("Exists") && t.value.as_deref().is_some_and(|v| !v.is_empty()) {
        out.push(invalid_value(
            format!("{field}.operator"),
            "Exists",
            "value must be empty when `operator` is 'Exists'",
        ));
    }
    if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
        out.push(invalid_value(
            format!("{field}.effect"),
            t.effect.clone().unwrap_or_default(),
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
}

/// Volumes: unique DNS-label names and exactly one source. Returns the names.
fn validate_volumes(volumes: &[Volume], field: &str, out: &mut Causes) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let at = format!("{field}.volumes[{i}]");
        if v.name.is_empty() {
            out.push(Cause::required(format!("{at}.name")));
        } else if !is_dns1123_label(&v.name) {
            out.push(Cause::invalid(format!("{at}.name"), &v.name, DNS1123_LABEL_MSG));
        } else if !names.insert(v.name.clone()) {
            out.push(Cause::duplicate(format!("{at}.name"), &v.name));
        }
        let sources = serde_json::to_value(v)
            .ok()
            .and_then(|v| v.as_object().map(|m| m.iter().filter(|(k, v)| *k != "name" && !v.is_null()).count()))
            .unwrap_or(0);
        match sources {
            0 => out.push(required_because(at.clone(), "must specify a volume type")),
            1 => {}
            _ => out.push(forbidden(at.clone(), "may not specify more than 1 volume type")),
        }
        if let Some(limit) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref()) {
            validate_quantity("ephemeral-storage", limit, &format!("{at}.emptyDir.sizeLimit"), out);
        }
        one_of(
            format!("{at}.emptyDir.medium"),
            v.empty_dir.as_ref().and_then(|e| e.medium.as_deref()),
            &["", "Memory", "HugePages"],
            out,
        );
        if let Some(h) = &v.host_path {
            if h.path.is_empty() {
                out.push(Cause::required(format!("{at}.hostPath.path")));
            }
        }
        for (mode, path) in [
            (v.config_map.as_ref().and_then(|c| c.default_mode), "configMap.defaultMode"),
            (v.secret.as_ref().and_then(|c| c.default_mode), "secret.defaultMode"),
        ] {
            if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
                out.push(invalid_value(
                    format!("{at}.{path}"),
                    m,
                    "must be a number between 0 and 0777 (octal), both inclusive",
                ));
            }
        }
    }
    names
}

fn validate_container(
    c: &Container,
    path: &str,
    is_init: bool,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    out: &mut Causes,
) {
    if c.name.is_empty() {
        out.push(Cause::required(format!("{path}.name")));
    } else if !is_dns1123_label(&c.name) {
        out.push(Cause::invalid(format!("{path}.name"), &c.name, DNS1123_LABEL_MSG));
    } else if !names.insert(c.name.clone()) {
        out.push(Cause::duplicate(format!("{path}.name"), &c.name));
    }
    if c.image.as_deref().unwrap_or_default().trim().is_empty() {
        out.push(Cause::required(format!("{path}.image")));
    }
    one_of(format!("{path}.imagePullPolicy"), c.image_pull_policy.as_deref(), &PULL_POLICIES, out);
    one_of(
        format!("{path}.terminationMessagePolicy"),
        c.termination_message_policy.as_deref(),
        &["File", "FallbackToLogsOnError"],
        out,
    );
    validate_ports(c.ports.as_deref().unwrap_or_default(), path, out);
    for (i, e) in c.env.iter().flatten().enumerate() {
        validate_env_name(&e.name, &format!("{path}.env[{i}].name"), out);
        if let Some(from) = &e.value_from {
            let sources = [
                from.field_ref.is_some(),
                from.resource_field_ref.is_some(),
                from.config_map_key_ref.is_some(),
                from.secret_key_ref.is_some(),
            ]
            .into_iter()
            .filter(|s| *s)
            .count();
            if sources != 1 {
                out.push(invalid_value(
                    format!("{path}.env[{i}].valueFrom"),
                    "",
                    "must specify exactly one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                ));
            }
            if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
                out.push(invalid_value(
                    format!("{path}.env[{i}].valueFrom"),
                    "",
                    "may not be specified when `value` is not empty",
                ));
            }
        }
    }
    for (i, from) in c.env_from.iter().flatten().enumerate() {
        if from.config_map_ref.is_some() == from.secret_ref.is_some() {
            out.push(invalid_value(
                format!("{path}.envFrom[{i}]"),
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        }
    }
    validate_requirements(c.resources.as_ref(), &format!("{path}.resources"), out);
    let mut mount_paths = HashSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let at = format!("{path}.volumeMounts[{i}]");
        if m.name.is_empty() {
            out.push(Cause::required(format!("{at}.name")));
        } else if !volumes.contains(&m.name) {
            out.push(Cause {
                reason: "FieldValueNotFound",
                field: format!("{at}.name"),
                message: format!("Not found: {}", Value::from(m.name.as_str())),
            });
        }
        if m.mount_path.is_empty() {
            out.push(Cause::required(format!("{at}.mountPath")));
        } else if !mount_paths.insert(m.mount_path.clone()) {
            out.push(invalid_value(format!("{at}.mountPath"), m.mount_path.as_str(), "must be unique"));
        }
    }
    let probes = [
        (&c.liveness_probe, "livenessProbe", true),
        (&c.readiness_probe, "readinessProbe", false),
        (&c.startup_probe, "startupProbe", true),
    ];
    for (probe, name, single_success) in probes {
        let Some(p) = probe else { continue };
        let at = format!("{path}.{name}");
        if is_init && c.restart_policy.as_deref() != Some("Always") {
            out.push(forbidden(at, "may not be set for init containers without restartPolicy=Always"));
            continue;
        }
        validate_probe(p, &at, single_success, out);
    }
    if let Some(policy) = c.restart_policy.as_deref() {
        if is_init {
            one_of(format!("{path}.restartPolicy"), Some(policy), &["Always"], out);
        } else {
            out.push(forbidden(format!("{path}.restartPolicy"), "may not be set for non-init containers"));
        }
    }
    for (handler, name) in c.lifecycle.iter().flat_map(|l| [(&l.post_start, "postStart"), (&l.pre_stop, "preStop")]) {
        let Some(h) = handler else { continue };
        let count = [h.exec.is_some(), h.http_get.is_some(), h.tcp_socket.is_some(), h.sleep.is_some()]
            .into_iter()
            .filter(|x| *x)
            .count();
        if count != 1 {
            out.push(handler_count(format!("{path}.lifecycle.{name}"), count));
        }
        if let Some(s) = &h.sleep {
            at_least(format!("{path}.lifecycle.{name}.sleep.seconds"), s.seconds, 0, out);
        }
        if let Some(g) = &h.http_get {
            probe_port(&g.port, &format!("{path}.lifecycle.{name}.httpGet.port"), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(spec: Value) -> Vec<String> {
        let spec: PodSpec = serde_json::from_value(spec).expect("pod spec");
        let mut out = Vec::new();
        validate_pod_spec(Some(&spec), "spec", &mut out);
        out.into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn pod_spec_cases() {
        let c = |extra: Value| {
            let mut base = json!({"name": "c", "image": "i"});
            if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
                b.extend(e.clone());
            }
            base
        };
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"containers": [c(json!({}))]}), vec![]),
            (
                json!({"containers": [c(json!({"resources": {"requests": {"cpu": "abc"}}}))]}),
                vec!["spec.containers[0].resources.requests[cpu]"],
            ),
            (
                json!({"containers": [c(json!({"ports": [{"containerPort": 0, "protocol": "ICMP", "name": "Web"}]}))]}),
                vec![
                    "spec.containers[0].ports[0].containerPort",
                    "spec.containers[0].ports[0].protocol",
                    "spec.containers[0].ports[0].name",
                ],
            ),
            (
                json!({"containers": [c(json!({"livenessProbe": {"periodSeconds": 0}}))]}),
                vec!["spec.containers[0].livenessProbe", "spec.containers[0].livenessProbe.periodSeconds"],
            ),
            (
                json!({"containers": [c(json!({"readinessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}}))]}),
                vec!["spec.containers[0].readinessProbe"],
            ),
            (
                json!({"containers": [c(json!({"livenessProbe": {"httpGet": {"port": 70000}, "successThreshold": 2}}))]}),
                vec![
                    "spec.containers[0].livenessProbe.httpGet.port",
                    "spec.containers[0].livenessProbe.successThreshold",
                ],
            ),
            (
                json!({"containers": [c(json!({"volumeMounts": [{"name": "missing", "mountPath": "/x"}]}))]}),
                vec!["spec.containers[0].volumeMounts[0].name"],
            ),
            (
                json!({"containers": [c(json!({}))], "volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/"}}, {"name": "v", "emptyDir": {}}]}),
                vec!["spec.volumes[0]", "spec.volumes[1].name"],
            ),
            (
                json!({"containers": [c(json!({}))], "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1e999"}}]}),
                vec!["spec.volumes[0].emptyDir.sizeLimit"],
            ),
            (
                json!({"containers": [c(json!({"env": [{"name": "1A"}, {"name": ""}]}))]}),
                vec!["spec.containers[0].env[0].name", "spec.containers[0].env[1].name"],
            ),
            (
                json!({"containers": [c(json!({}))], "restartPolicy": "Sometimes", "dnsPolicy": "Nope", "terminationGracePeriodSeconds": -1}),
                vec!["spec.restartPolicy", "spec.dnsPolicy", "spec.terminationGracePeriodSeconds"],
            ),
            (json!({"containers": [c(json!({})), c(json!({}))]}), vec!["spec.containers[1].name"]),
            (json!({"containers": [c(json!({}))], "overhead": {"cpu": "x"}}), vec!["spec.overhead[cpu]"]),
            (
                json!({"containers": [c(json!({}))], "resources": {"limits": {"memory": "1e100"}}}),
                vec!["spec.resources.limits[memory]"],
            ),
            (
                json!({"containers": [c(json!({}))], "tolerations": [{"operator": "Maybe"}]}),
                vec!["spec.tolerations[0].operator"],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(check(spec.clone()), want, "{spec}");
        }
    }
}
