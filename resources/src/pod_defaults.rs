//! Pod spec defaulting as upstream's API defaults: what the apiserver fills
//! in on every write, and what the agent fills in for static pods (which
//! never pass through an API server). One definition, so a static pod and
//! an API pod with the same manifest run the same way.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe, ResourceRequirements};

/// Fills a pod spec's unset fields (also used for templates).
pub fn default_pod_spec(spec: &mut PodSpec) {
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.scheduler_name.get_or_insert_with(|| "default-scheduler".into());
    spec.enable_service_links.get_or_insert(true);
    spec.security_context.get_or_insert_with(Default::default);
    for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        default_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        // A volume without a source is an emptyDir (as upstream).
        let has_source = serde_json::to_value(&*v)
            .ok()
            .and_then(|j| j.as_object().map(|m| m.iter().any(|(k, val)| k != "name" && !val.is_null())))
            .unwrap_or(true);
        if !has_source {
            v.empty_dir = Some(Default::default());
        }
    }
}

/// Upstream's probe defaults; a zero reads as unset, as in Go.
fn default_probe(p: &mut Probe) {
    for (slot, default) in [
        (&mut p.timeout_seconds, 1),
        (&mut p.period_seconds, 10),
        (&mut p.success_threshold, 1),
        (&mut p.failure_threshold, 3),
    ] {
        if slot.is_none_or(|v| v == 0) {
            *slot = Some(default);
        }
    }
}

/// Requests default to limits for every resource with a limit and no request.
fn default_requests(r: &mut ResourceRequirements) {
    let Some(limits) = r.limits.as_ref().filter(|l| !l.is_empty()) else { return };
    let requests = r.requests.get_or_insert_with(BTreeMap::new);
    for (name, limit) in limits {
        requests.entry(name.clone()).or_insert_with(|| limit.clone());
    }
}

fn default_container(c: &mut Container) {
    let policy = pull_policy_for(c.image.as_deref().unwrap_or_default());
    c.image_pull_policy.get_or_insert_with(|| policy.into());
    c.termination_message_path.get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy.get_or_insert_with(|| "File".into());
    default_requests(c.resources.get_or_insert_with(Default::default));
    for p in [&mut c.liveness_probe, &mut c.readiness_probe, &mut c.startup_probe].into_iter().flatten() {
        default_probe(p);
    }
    for p in c.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent`.
pub fn pull_policy_for(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Volume;

    #[test]
    fn pull_policy_follows_the_tag() {
        let cases = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("127.0.0.1:5000/busybox", "Always"),
            ("127.0.0.1:5000/busybox:1", "IfNotPresent"),
            ("busybox@sha256:abc", "IfNotPresent"),
        ];
        for (image, want) in cases {
            assert_eq!(pull_policy_for(image), want, "{image}");
        }
    }

    #[test]
    fn a_bare_spec_gets_upstream_defaults() {
        let probe = Probe { period_seconds: Some(0), failure_threshold: Some(5), ..Default::default() };
        let mut spec = PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("r/app:1.0".into()),
                readiness_probe: Some(probe),
                ..Default::default()
            }],
            volumes: Some(vec![Volume { name: "scratch".into(), ..Default::default() }]),
            ..Default::default()
        };
        default_pod_spec(&mut spec);
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
        let p = c.readiness_probe.as_ref().expect("probe");
        assert_eq!((p.period_seconds, p.failure_threshold, p.timeout_seconds), (Some(10), Some(5), Some(1)));
        assert!(spec.volumes.as_ref().expect("volumes")[0].empty_dir.is_some());
    }
}
