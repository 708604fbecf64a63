//! Defaulting: the values upstream fills in so objects read as users expect.
//!
//! Pure functions over typed k8s-openapi structs, applied on every write.

use std::collections::BTreeMap;

use bosun_resources::pod_defaults::default_pod_spec;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, NamespaceStatus, Pod, PodSpec, PodStatus, Secret, Service};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::registry::Kind;
use super::schema::{typed, untyped};

/// Applies defaults for `kind` to `obj` in place (no-op if it does not type-check).
pub fn apply(kind: Kind, obj: &mut Value) {
    fn with<T: serde::de::DeserializeOwned + serde::Serialize>(obj: &mut Value, f: impl FnOnce(&mut T)) {
        if let Some(mut t) = typed::<T>(obj) {
            f(&mut t);
            *obj = untyped(&t);
        }
    }
    match kind {
        Kind::Pod => with::<Pod>(obj, default_pod),
        Kind::Deployment => with::<Deployment>(obj, default_deployment),
        Kind::ReplicaSet => with::<ReplicaSet>(obj, default_replicaset),
        Kind::DaemonSet => with(obj, super::apps::default_daemonset),
        Kind::StatefulSet => with(obj, super::apps::default_statefulset),
        Kind::Service => with::<Service>(obj, default_service),
        Kind::Job => with::<Job>(obj, super::batch::default_job),
        Kind::CronJob => with::<CronJob>(obj, super::batch::default_cronjob),
        Kind::Namespace => with::<Namespace>(obj, default_namespace),
        Kind::PriorityClass => with::<PriorityClass>(obj, |c| {
            c.preemption_policy.get_or_insert_with(|| super::priority::DEFAULT_PREEMPTION_POLICY.into());
        }),
        Kind::Secret => with::<Secret>(obj, |s| {
            s.type_.get_or_insert_with(|| "Opaque".into());
        }),
        _ => {}
    }
}

/// Create-time defaults that later writes must not reset (pod phase, a Job's selector).
pub fn on_create(kind: Kind, obj: &mut Value) {
    if kind == Kind::Job {
        if let Some(mut job) = typed::<Job>(obj) {
            super::batch::generate_selector(&mut job);
            *obj = untyped(&job);
        }
    }
    if kind == Kind::Pod {
        if let Some(mut pod) = typed::<Pod>(obj) {
            let qos = bosun_resources::pod_qos_class(pod.spec.as_ref()).to_string();
            let status = pod.status.get_or_insert_with(PodStatus::default);
            status.phase.get_or_insert_with(|| "Pending".into());
            status.qos_class.get_or_insert(qos);
            *obj = untyped(&pod);
        }
    }
}

fn default_pod(pod: &mut Pod) {
    default_pod_spec(pod.spec.get_or_insert_with(PodSpec::default));
}

fn default_deployment(d: &mut Deployment) {
    let spec = d.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    let strategy = spec.strategy.get_or_insert_with(DeploymentStrategy::default);
    let kind = strategy.type_.get_or_insert_with(|| "RollingUpdate".into()).clone();
    if kind == "RollingUpdate" {
        let ru = strategy.rolling_update.get_or_insert_with(RollingUpdateDeployment::default);
        ru.max_surge.get_or_insert_with(|| IntOrString::String("25%".into()));
        ru.max_unavailable.get_or_insert_with(|| IntOrString::String("25%".into()));
    }
    default_pod_spec(spec.template.spec.get_or_insert_with(PodSpec::default));
}

fn default_replicaset(rs: &mut ReplicaSet) {
    let spec = rs.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    if let Some(template) = spec.template.as_mut() {
        default_pod_spec(template.spec.get_or_insert_with(PodSpec::default));
    }
}

fn default_service(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(Default::default);
    let kind = spec.type_.get_or_insert_with(|| "ClusterIP".into()).clone();
    spec.session_affinity.get_or_insert_with(|| "None".into());
    for p in spec.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
        p.target_port.get_or_insert(IntOrString::Int(p.port));
    }
    if kind != "ExternalName" {
        spec.ip_families.get_or_insert_with(|| vec!["IPv4".into()]);
        spec.ip_family_policy.get_or_insert_with(|| "SingleStack".into());
        spec.internal_traffic_policy.get_or_insert_with(|| "Cluster".into());
    }
}

fn default_namespace(ns: &mut Namespace) {
    let name = ns.metadata.name.clone().unwrap_or_default();
    ns.metadata.labels.get_or_insert_with(BTreeMap::new).entry("kubernetes.io/metadata.name".into()).or_insert(name);
    let status = ns.status.get_or_insert_with(NamespaceStatus::default);
    status.phase.get_or_insert_with(|| "Active".into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_gets_upstream_defaults() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1", "ports": [{"containerPort": 80}]}]}}}});
        apply(Kind::Deployment, &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["containers"][0]["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(pod["containers"][0]["ports"][0]["protocol"], "TCP");
    }

    #[test]
    fn service_and_pod_defaults() {
        let mut s = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80}]}});
        apply(Kind::Service, &mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(s["spec"]["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        apply(Kind::Pod, &mut p);
        on_create(Kind::Pod, &mut p);
        assert_eq!(p["spec"]["containers"][0]["resources"]["requests"], json!({"cpu": "1", "memory": "1Gi"}));
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["status"]["qosClass"], "Guaranteed");
        let mut b = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        on_create(Kind::Pod, &mut b);
        assert_eq!(b["status"]["qosClass"], "BestEffort");
    }
}
