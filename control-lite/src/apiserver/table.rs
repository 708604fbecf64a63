//! Server-side printing: `meta.k8s.io/v1` Table columns per kind and the
//! Table/row assembly; the cells themselves come from `cells`.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::cells::cells;
use super::crd;
use super::registry::{Kind, ResourceInfo};

/// One column: (name, type, priority, description).
pub type Column = (&'static str, &'static str, u8, &'static str);

const NAME: Column = ("Name", "string", 0, "Name must be unique within a namespace.");
const AGE: Column =
    ("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created.");

pub(super) fn columns(kind: Kind) -> Vec<Column> {
    match kind {
        Kind::Pod => vec![
            NAME,
            ("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            ("Status", "string", 0, "The aggregate status of the containers in this pod."),
            ("Restarts", "string", 0, "The number of times the containers in this pod have been restarted."),
            AGE,
            ("IP", "string", 1, "IP address allocated to the pod."),
            ("Node", "string", 1, "Name of the node this pod runs on."),
            ("Nominated Node", "string", 1, "Name of the node nominated by the scheduler."),
            ("Readiness Gates", "string", 1, "Pod readiness gates."),
        ],
        Kind::Deployment => vec![
            NAME,
            ("Ready", "string", 0, "Number of the pod with ready state"),
            (
                "Up-to-date",
                "integer",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            (
                "Available",
                "integer",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            ("Containers", "string", 1, "Names of each container in the template."),
            ("Images", "string", 1, "Images referenced by each container in the template."),
            ("Selector", "string", 1, "Label selector for pods."),
        ],
        Kind::ReplicaSet => vec![
            NAME,
            ("Desired", "integer", 0, "Number of desired pods."),
            ("Current", "integer", 0, "Number of actual replicas."),
            ("Ready", "integer", 0, "Number of ready replicas."),
            AGE,
            ("Containers", "string", 1, "Names of each container in the template."),
            ("Images", "string", 1, "Images referenced by each container in the template."),
            ("Selector", "string", 1, "Label selector for pods."),
        ],
        Kind::DaemonSet | Kind::StatefulSet | Kind::ControllerRevision => super::apps::columns(kind),
        Kind::Job => super::batch_printers::job_columns(),
        Kind::CertificateSigningRequest => super::certificates::columns(),
        Kind::CronJob => super::batch_printers::cronjob_columns(),
        Kind::PodDisruptionBudget => super::policy::pdb_columns(),
        Kind::Service => vec![
            NAME,
            ("Type", "string", 0, "The type of service."),
            ("Cluster-IP", "string", 0, "IP address assigned to the service."),
            ("External-IP", "string", 0, "External IP addresses of the service."),
            ("Port(s)", "string", 0, "The ports the service listens on."),
            AGE,
            (
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        Kind::EndpointSlice => vec![
            NAME,
            ("AddressType", "string", 0, "The type of address carried by this EndpointSlice."),
            ("Ports", "string", 0, "Ports of this EndpointSlice."),
            ("Endpoints", "string", 0, "Endpoint addresses of this EndpointSlice."),
            AGE,
        ],
        Kind::Endpoints => vec![NAME, ("Endpoints", "string", 0, "Endpoint addresses."), AGE],
        Kind::Node => vec![
            NAME,
            ("Status", "string", 0, "The status of the node."),
            ("Roles", "string", 0, "The roles of the node."),
            AGE,
            ("Version", "string", 0, "Kubelet version reported by the node."),
            ("Internal-IP", "string", 1, "Internal IP of the node."),
            ("External-IP", "string", 1, "External IP of the node."),
            ("OS-Image", "string", 1, "OS image reported by the node."),
            ("Kernel-Version", "string", 1, "Kernel version reported by the node."),
            ("Container-Runtime", "string", 1, "Container runtime reported by the node."),
        ],
        Kind::Namespace => vec![NAME, ("Status", "string", 0, "The status of the namespace."), AGE],
        Kind::Event => vec![
            ("Last Seen", "string", 0, "Time of the last occurrence."),
            ("Type", "string", 0, "Type of this event."),
            ("Reason", "string", 0, "Short, machine understandable string."),
            ("Object", "string", 0, "The object this event is about."),
            ("Message", "string", 0, "A human-readable description."),
            ("Count", "integer", 1, "Number of occurrences."),
            ("Name", "string", 1, "Name of the event."),
        ],
        Kind::EventV1 => vec![
            ("Last Seen", "string", 0, "Time of the last occurrence."),
            ("Type", "string", 0, "Type of this event."),
            ("Reason", "string", 0, "Short, machine understandable string."),
            ("Object", "string", 0, "The object this event is about."),
            ("Message", "string", 0, "A human-readable description."),
        ],
        Kind::ConfigMap => vec![NAME, ("Data", "integer", 0, "Number of data entries."), AGE],
        Kind::Secret => vec![
            NAME,
            ("Type", "string", 0, "The type of the secret."),
            ("Data", "integer", 0, "Number of data entries."),
            AGE,
        ],
        Kind::Lease => vec![NAME, ("Holder", "string", 0, "Holder identity of the lease."), AGE],
        Kind::ServiceAccount => vec![NAME, ("Secrets", "integer", 0, "Number of secrets."), AGE],
        Kind::PriorityClass => vec![
            NAME,
            ("Value", "integer", 0, "The priority of pods of this class."),
            ("Global-Default", "boolean", 0, "Whether pods without a class get this one."),
            AGE,
            ("PreemptionPolicy", "string", 1, "Whether pods of this class preempt others."),
        ],
        Kind::Role | Kind::ClusterRole => vec![NAME, ("Created At", "string", 0, "When the role was created.")],
        Kind::CustomResourceDefinition => vec![NAME, ("Created At", "date", 0, "When the definition was created.")],
        Kind::RoleBinding | Kind::ClusterRoleBinding => vec![
            NAME,
            ("Role", "string", 0, "The role bound."),
            AGE,
            ("Users", "string", 1, "Users bound."),
            ("Groups", "string", 1, "Groups bound."),
            ("ServiceAccounts", "string", 1, "ServiceAccounts bound."),
        ],
        Kind::SelfSubjectAccessReview
        | Kind::SubjectAccessReview
        | Kind::LocalSubjectAccessReview
        | Kind::SelfSubjectRulesReview
        | Kind::TokenReview
        | Kind::SelfSubjectReview
        | Kind::Custom => vec![NAME, AGE],
    }
}

/// How each row carries its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

/// One row with its object (custom resources with printer columns: their cells).
fn row(info: &ResourceInfo, obj: &Value, include: IncludeObject, now: Timestamp) -> Value {
    let object = match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        }),
    };
    let cells = match info.custom.filter(|c| !c.columns.is_empty()) {
        Some(c) => {
            let name = json!(obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default());
            std::iter::once(name).chain(c.columns.iter().map(|col| crd::columns::cell(col, obj, now))).collect()
        }
        None => cells(info.kind, obj, now),
    };
    json!({"cells": cells, "object": object})
}

/// A full Table of `objects`; `with_columns` false leaves columnDefinitions empty (watch events after the first).
pub fn table(
    info: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    resource_version: &str,
    with_columns: bool,
) -> Value {
    let now = Timestamp::now();
    let custom = info.custom.filter(|c| !c.columns.is_empty());
    let columns: Vec<Value> = if let (true, Some(c)) = (with_columns, custom) {
        let name = json!({"name": NAME.0, "type": NAME.1, "format": "name", "description": NAME.3, "priority": 0});
        std::iter::once(name).chain(c.columns.iter().map(crd::columns::definition)).collect()
    } else if with_columns {
        columns(info.kind)
            .into_iter()
            .map(|(name, ty, priority, description)| {
                let format = if name == "Name" { "name" } else { "" };
                json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows: Vec<Value> = objects.iter().map(|o| row(info, o, include, now)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::{by_kind, RESOURCES};

    #[test]
    fn every_kind_has_as_many_cells_as_columns() {
        let obj = json!({"metadata": {"name": "x", "creationTimestamp": "2020-01-01T00:00:00Z"}});
        for r in RESOURCES {
            assert_eq!(cells(r.kind, &obj, Timestamp::now()).len(), columns(r.kind).len(), "{}", r.plural);
        }
    }

    #[test]
    fn service_and_deployment_rows() {
        let svc = json!({"metadata": {"name": "web"}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10",
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "nodePort": 30443, "protocol": "TCP"}],
            "selector": {"app": "web"}}});
        let c = cells(Kind::Service, &svc, Timestamp::now());
        assert_eq!(c[2], "10.96.0.10");
        assert_eq!(c[3], "<none>");
        assert_eq!(c[4], "80/TCP,443:30443/TCP");
        assert_eq!(c[6], "app=web");
        let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}, "status": {"readyReplicas": 2}});
        let c = cells(Kind::Deployment, &d, Timestamp::now());
        assert_eq!(c[1], "2/3");
        assert_eq!(c[6], "nginx");
        let t = table(by_kind(Kind::Deployment), &[d], IncludeObject::Metadata, "7", true);
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
