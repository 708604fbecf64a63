//! Defaulting: the values upstream fills in so objects read as users expect.
//!
//! Pure functions over typed k8s-openapi structs, applied on every write.

use std::collections::BTreeMap;

use bosun_resources::pod_defaults::default_pod_spec;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    Namespace, NamespaceStatus, Node, Pod, PodSpec, PodStatus, Secret, Service, Toleration,
};
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
        Kind::Node => with::<Node>(obj, |n| stamp_no_execute_taints(n, jiff::Timestamp::now())),
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
            default_toleration_seconds(&mut pod);
            *obj = untyped(&pod);
        }
    }
}

/// Upstream's node strategy: a `NoExecute` taint without `timeAdded` gets
/// the time of the write that brought it, so the taint eviction controller
/// counts `tolerationSeconds` from one fixed instant (`kubectl taint` sends
/// none).
fn stamp_no_execute_taints(node: &mut Node, now: jiff::Timestamp) {
    let taints = node.spec.as_mut().and_then(|s| s.taints.as_mut()).into_iter().flatten();
    for taint in taints.filter(|t| t.effect == "NoExecute" && t.time_added.is_none()) {
        let second = jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
        taint.time_added = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(second));
    }
}

/// How long a pod stays on a not-ready or unreachable node by default.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Upstream's DefaultTolerationSeconds admission: a pod that says nothing
/// about the `not-ready` and `unreachable` NoExecute taints tolerates each
/// for [`DEFAULT_TOLERATION_SECONDS`], so a node that goes away takes its
/// pods with it after five minutes rather than at once or never.
fn default_toleration_seconds(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
        let covered = tolerations.iter().any(|t| {
            let key_ok = t.key.as_deref().is_none_or(|k| k.is_empty() || k == key);
            let effect_ok = t.effect.as_deref().is_none_or(|e| e.is_empty() || e == "NoExecute");
            key_ok && effect_ok
        });
        if !covered {
            tolerations.push(Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".to_string()),
                effect: Some("NoExecute".to_string()),
                toleration_seconds: Some(DEFAULT_TOLERATION_SECONDS),
                value: None,
            });
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

    #[test]
    fn no_execute_taints_get_their_time_added_once() {
        let mut node: Node = serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {"taints": [
            {"key": "a", "effect": "NoExecute"},
            {"key": "b", "effect": "NoExecute", "timeAdded": "2024-01-01T00:00:00Z"},
            {"key": "c", "effect": "NoSchedule"}
        ]}}))
        .expect("node");
        stamp_no_execute_taints(&mut node, "2026-01-01T00:00:00.7Z".parse().expect("time"));
        let times: Vec<Option<String>> = node
            .spec
            .and_then(|s| s.taints)
            .unwrap_or_default()
            .iter()
            .map(|t| t.time_added.as_ref().map(|t| t.0.to_string()))
            .collect();
        assert_eq!(times, [Some("2026-01-01T00:00:00Z".into()), Some("2024-01-01T00:00:00Z".into()), None]);
    }

    #[test]
    fn pods_tolerate_not_ready_and_unreachable_for_five_minutes_unless_they_say_otherwise() {
        let tolerations = |given: Value| {
            let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "i"}], "tolerations": given}});
            on_create(Kind::Pod, &mut p);
            p["spec"]["tolerations"].clone()
        };
        let default = |key: &str| {
            json!({"key": format!("node.kubernetes.io/{key}"), "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": 300})
        };
        assert_eq!(tolerations(json!([])), json!([default("not-ready"), default("unreachable")]));
        let own = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": 5});
        assert_eq!(tolerations(json!([own])), json!([own, default("not-ready")]));
        // Tolerating everything (no key, no effect) covers both.
        let all = json!({"operator": "Exists"});
        assert_eq!(tolerations(json!([all])), json!([all]));
        // A NoSchedule toleration of the key does not.
        let soft = json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"});
        assert_eq!(tolerations(json!([soft])), json!([soft, default("not-ready"), default("unreachable")]));
    }
}
