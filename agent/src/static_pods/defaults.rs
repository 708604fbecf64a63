//! The API server's Pod defaults that the agent relies on, for static pods
//! (which never pass through an API server). Mirrors control-lite's
//! defaulting for the fields the agent reads.

use k8s_openapi::api::core::v1::{PodSpec, Probe};

/// Fills unset fields with upstream's defaults.
pub fn fill(spec: &mut PodSpec) {
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.enable_service_links.get_or_insert(true);
    spec.security_context.get_or_insert_with(Default::default);
    for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        let image = c.image.clone().unwrap_or_default();
        let tag = image.rsplit('/').next().and_then(|last| last.split_once(':')).map(|(_, tag)| tag.to_string());
        let always = !image.contains('@') && tag.as_deref().is_none_or(|t| t == "latest");
        c.image_pull_policy.get_or_insert_with(|| if always { "Always" } else { "IfNotPresent" }.into());
        c.termination_message_path.get_or_insert_with(|| "/dev/termination-log".into());
        c.termination_message_policy.get_or_insert_with(|| "File".into());
        for p in [&mut c.liveness_probe, &mut c.readiness_probe, &mut c.startup_probe].into_iter().flatten() {
            probe(p);
        }
    }
}

/// A zero reads as unset, as in Go.
fn probe(p: &mut Probe) {
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
