//! apps/v1 DaemonSet, StatefulSet and ControllerRevision: defaults and Table
//! printers, one definition per kind (the rules live in
//! `validation::apps`, the controllers in `controllers::{daemonset,
//! statefulset}`).

use bosun_resources::pod_defaults::default_pod_spec;
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetUpdateStrategy, RollingUpdateDaemonSet, RollingUpdateStatefulSetStrategy, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use super::cells::{selector_of, template_containers};
use super::registry::Kind;
use super::table::Column;

/// Whether `kind` is one of this module's workloads (spec with generation, status reset on create).
pub fn is_apps_workload(kind: Kind) -> bool {
    matches!(kind, Kind::DaemonSet | Kind::StatefulSet)
}

/// Upstream's DaemonSet defaults: RollingUpdate with maxUnavailable 1 and maxSurge 0, history 10.
pub fn default_daemonset(ds: &mut DaemonSet) {
    let spec = ds.spec.get_or_insert_with(Default::default);
    spec.revision_history_limit.get_or_insert(10);
    let strategy = spec.update_strategy.get_or_insert_with(DaemonSetUpdateStrategy::default);
    if strategy.type_.get_or_insert_with(|| "RollingUpdate".into()) == "RollingUpdate" {
        let ru = strategy.rolling_update.get_or_insert_with(RollingUpdateDaemonSet::default);
        ru.max_unavailable.get_or_insert(IntOrString::Int(1));
        ru.max_surge.get_or_insert(IntOrString::Int(0));
    }
    default_pod_spec(spec.template.spec.get_or_insert_with(PodSpec::default));
}

/// Upstream's StatefulSet defaults: 1 replica, OrderedReady, RollingUpdate
/// with partition 0, history 10, claims retained.
pub fn default_statefulset(sts: &mut StatefulSet) {
    let spec = sts.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    spec.revision_history_limit.get_or_insert(10);
    spec.pod_management_policy.get_or_insert_with(|| "OrderedReady".into());
    let strategy = spec.update_strategy.get_or_insert_with(StatefulSetUpdateStrategy::default);
    if strategy.type_.get_or_insert_with(|| "RollingUpdate".into()) == "RollingUpdate" {
        strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateStatefulSetStrategy::default)
            .partition
            .get_or_insert(0);
    }
    let retention = spec
        .persistent_volume_claim_retention_policy
        .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
    retention.when_deleted.get_or_insert_with(|| "Retain".into());
    retention.when_scaled.get_or_insert_with(|| "Retain".into());
    default_pod_spec(spec.template.spec.get_or_insert_with(PodSpec::default));
}

const NAME: Column = ("Name", "string", 0, "Name must be unique within a namespace.");
const AGE: Column =
    ("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created.");
const CONTAINERS: Column = ("Containers", "string", 1, "Names of each container in the template.");
const IMAGES: Column = ("Images", "string", 1, "Images referenced by each container in the template.");

/// Table columns as kubectl prints them.
pub fn columns(kind: Kind) -> Vec<Column> {
    match kind {
        Kind::DaemonSet => vec![
            NAME,
            ("Desired", "integer", 0, "The desired number of nodes that should be running the daemon pod."),
            ("Current", "integer", 0, "The number of nodes running at least one daemon pod that should."),
            ("Ready", "integer", 0, "The number of nodes that should be running the daemon pod and have one ready."),
            ("Up-to-date", "integer", 0, "The total number of nodes that are running the updated daemon pod."),
            (
                "Available",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one available.",
            ),
            (
                "Node Selector",
                "string",
                0,
                "NodeSelector is a selector which must be true for the pod to fit on a node.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            ("Selector", "string", 1, "A label query over pods that are managed by the daemon set."),
        ],
        Kind::ControllerRevision => vec![
            NAME,
            ("Controller", "string", 0, "Controller of the object."),
            ("Revision", "integer", 0, "Revision of the ControllerRevision."),
            AGE,
        ],
        _ => vec![NAME, ("Ready", "string", 0, "Number of the pod with ready state"), AGE, CONTAINERS, IMAGES],
    }
}

/// The cells of one row, `name` and `age` already rendered.
pub fn cells(kind: Kind, obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let int = |ptr: &str| obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0);
    let (containers, images) = template_containers(obj);
    match kind {
        Kind::DaemonSet => {
            let node_selector: Vec<String> = obj
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
                .unwrap_or_default();
            let node_selector = if node_selector.is_empty() { "<none>".to_string() } else { node_selector.join(",") };
            vec![
                name,
                json!(int("/status/desiredNumberScheduled")),
                json!(int("/status/currentNumberScheduled")),
                json!(int("/status/numberReady")),
                json!(int("/status/updatedNumberScheduled")),
                json!(int("/status/numberAvailable")),
                json!(node_selector),
                age,
                json!(containers),
                json!(images),
                json!(selector_of(obj)),
            ]
        }
        Kind::ControllerRevision => {
            let owners = obj.pointer("/metadata/ownerReferences").and_then(Value::as_array);
            let controller = owners
                .into_iter()
                .flatten()
                .find(|o| o.get("controller") == Some(&Value::Bool(true)))
                .map(|o| {
                    let text = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default();
                    let group = text("apiVersion").split_once('/').map(|(g, _)| g).unwrap_or_default();
                    let kind = text("kind").to_lowercase();
                    let kind = if group.is_empty() { kind } else { format!("{kind}.{group}") };
                    format!("{kind}/{}", text("name"))
                })
                .unwrap_or_else(|| "<none>".into());
            vec![name, json!(controller), json!(int("/revision")), age]
        }
        _ => vec![
            name,
            json!(format!("{}/{}", int("/status/readyReplicas"), int("/spec/replicas"))),
            age,
            json!(containers),
            json!(images),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::defaults;

    #[test]
    fn daemonset_and_statefulset_get_upstream_defaults() {
        let mut ds = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        defaults::apply(Kind::DaemonSet, &mut ds);
        assert_eq!(ds.pointer("/spec/updateStrategy/type"), Some(&json!("RollingUpdate")));
        assert_eq!(ds.pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable"), Some(&json!(1)));
        assert_eq!(ds.pointer("/spec/updateStrategy/rollingUpdate/maxSurge"), Some(&json!(0)));
        assert_eq!(ds.pointer("/spec/revisionHistoryLimit"), Some(&json!(10)));
        let mut sts = json!({"metadata": {"name": "s"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "updateStrategy": {"type": "OnDelete"},
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        defaults::apply(Kind::StatefulSet, &mut sts);
        assert_eq!(sts.pointer("/spec/replicas"), Some(&json!(1)));
        assert_eq!(sts.pointer("/spec/podManagementPolicy"), Some(&json!("OrderedReady")));
        assert_eq!(sts.pointer("/spec/updateStrategy/rollingUpdate"), None);
        assert_eq!(sts.pointer("/spec/revisionHistoryLimit"), Some(&json!(10)));
        assert_eq!(sts.pointer("/spec/template/spec/restartPolicy"), Some(&json!("Always")));
    }

    #[test]
    fn printers_have_one_cell_per_column() {
        let ds = json!({"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"},
                "containers": [{"name": "c", "image": "i"}]}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                "updatedNumberScheduled": 2, "numberAvailable": 1}});
        let cells_ds = cells(Kind::DaemonSet, &ds, json!("d"), json!("1m"));
        assert_eq!(cells_ds.len(), columns(Kind::DaemonSet).len());
        assert_eq!(cells_ds[1..7], [json!(2), json!(2), json!(1), json!(2), json!(1), json!("disk=ssd")]);
        let sts = json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 2}});
        let cells_sts = cells(Kind::StatefulSet, &sts, json!("s"), json!("1m"));
        assert_eq!(cells_sts.len(), columns(Kind::StatefulSet).len());
        assert_eq!(cells_sts[1], json!("2/3"));
        let rev = json!({"revision": 2, "metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "u", "controller": true}]}});
        let cells_rev = cells(Kind::ControllerRevision, &rev, json!("agent-abc"), json!("1m"));
        assert_eq!(cells_rev.len(), columns(Kind::ControllerRevision).len());
        assert_eq!(cells_rev[1..3], [json!("daemonset.apps/agent"), json!(2)]);
    }
}
