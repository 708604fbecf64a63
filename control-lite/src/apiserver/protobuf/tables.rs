//! Field-number tables of the supported protobuf messages (from the upstream
//! `generated.proto` files). Only what the supported kubectl generators send.

use super::{Msg, Ty};

pub(super) const TYPE_META: Msg =
    Msg { name: "TypeMeta", fields: &[(1, "apiVersion", Ty::Str, false), (2, "kind", Ty::Str, false)] };
pub(super) const OWNER_REF: Msg = Msg {
    name: "OwnerReference",
    fields: &[
        (1, "kind", Ty::Str, false),
        (3, "name", Ty::Str, false),
        (4, "uid", Ty::Str, false),
        (5, "apiVersion", Ty::Str, false),
        (6, "controller", Ty::Bool, false),
        (7, "blockOwnerDeletion", Ty::Bool, false),
    ],
};
pub(super) const OBJECT_META: Msg = Msg {
    name: "ObjectMeta",
    fields: &[
        (1, "name", Ty::Str, false),
        (2, "generateName", Ty::Str, false),
        (3, "namespace", Ty::Str, false),
        (4, "selfLink", Ty::Str, false),
        (5, "uid", Ty::Str, false),
        (6, "resourceVersion", Ty::Str, false),
        (7, "generation", Ty::Int, false),
        (8, "creationTimestamp", Ty::Time, false),
        (9, "deletionTimestamp", Ty::Time, false),
        (10, "deletionGracePeriodSeconds", Ty::Int, false),
        (11, "labels", Ty::MapStr, false),
        (12, "annotations", Ty::MapStr, false),
        (13, "ownerReferences", Ty::Msg(&OWNER_REF), true),
        (14, "finalizers", Ty::Str, true),
        (17, "managedFields", Ty::Skip, true),
    ],
};
pub(super) const NAMESPACE_SPEC: Msg = Msg { name: "NamespaceSpec", fields: &[(1, "finalizers", Ty::Str, true)] };
pub(super) const NAMESPACE_STATUS: Msg =
    Msg { name: "NamespaceStatus", fields: &[(1, "phase", Ty::Str, false), (2, "conditions", Ty::Skip, true)] };
pub(super) const NAMESPACE: Msg = Msg {
    name: "Namespace",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "spec", Ty::Msg(&NAMESPACE_SPEC), false),
        (3, "status", Ty::Msg(&NAMESPACE_STATUS), false),
    ],
};
pub(super) const CONFIG_MAP: Msg = Msg {
    name: "ConfigMap",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "data", Ty::MapStr, false),
        (3, "binaryData", Ty::MapBytes, false),
        (4, "immutable", Ty::Bool, false),
    ],
};
pub(super) const SECRET: Msg = Msg {
    name: "Secret",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "data", Ty::MapBytes, false),
        (3, "type", Ty::Str, false),
        (4, "stringData", Ty::MapStr, false),
        (5, "immutable", Ty::Bool, false),
    ],
};
pub(super) const OBJECT_REF: Msg = Msg {
    name: "ObjectReference",
    fields: &[
        (1, "kind", Ty::Str, false),
        (2, "namespace", Ty::Str, false),
        (3, "name", Ty::Str, false),
        (4, "uid", Ty::Str, false),
        (5, "apiVersion", Ty::Str, false),
        (6, "resourceVersion", Ty::Str, false),
        (7, "fieldPath", Ty::Str, false),
    ],
};
pub(super) const LOCAL_REF: Msg = Msg { name: "LocalObjectReference", fields: &[(1, "name", Ty::Str, false)] };
/// k8s.io/api/scheduling/v1 PriorityClass.
pub(super) const PRIORITY_CLASS: Msg = Msg {
    name: "PriorityClass",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "value", Ty::Int, false),
        (3, "globalDefault", Ty::Bool, false),
        (4, "description", Ty::Str, false),
        (5, "preemptionPolicy", Ty::Str, false),
    ],
};

pub(super) const SERVICE_ACCOUNT: Msg = Msg {
    name: "ServiceAccount",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "secrets", Ty::Msg(&OBJECT_REF), true),
        (3, "imagePullSecrets", Ty::Msg(&LOCAL_REF), true),
        (4, "automountServiceAccountToken", Ty::Bool, false),
    ],
};
pub(super) const SELECTOR_REQ: Msg = Msg {
    name: "LabelSelectorRequirement",
    fields: &[(1, "key", Ty::Str, false), (2, "operator", Ty::Str, false), (3, "values", Ty::Str, true)],
};
pub(super) const LABEL_SELECTOR: Msg = Msg {
    name: "LabelSelector",
    fields: &[(1, "matchLabels", Ty::MapStr, false), (2, "matchExpressions", Ty::Msg(&SELECTOR_REQ), true)],
};
pub(super) const CONTAINER_PORT: Msg = Msg {
    name: "ContainerPort",
    fields: &[
        (1, "name", Ty::Str, false),
        (2, "hostPort", Ty::Int, false),
        (3, "containerPort", Ty::Int, false),
        (4, "protocol", Ty::Str, false),
        (5, "hostIP", Ty::Str, false),
    ],
};
pub(super) const ENV_VAR: Msg =
    Msg { name: "EnvVar", fields: &[(1, "name", Ty::Str, false), (2, "value", Ty::Str, false)] };
pub(super) const RESOURCES: Msg = Msg {
    name: "ResourceRequirements",
    fields: &[(1, "limits", Ty::MapQuantity, false), (2, "requests", Ty::MapQuantity, false)],
};
pub(super) const CONTAINER: Msg = Msg {
    name: "Container",
    fields: &[
        (1, "name", Ty::Str, false),
        (2, "image", Ty::Str, false),
        (3, "command", Ty::Str, true),
        (4, "args", Ty::Str, true),
        (5, "workingDir", Ty::Str, false),
        (6, "ports", Ty::Msg(&CONTAINER_PORT), true),
        (7, "env", Ty::Msg(&ENV_VAR), true),
        (8, "resources", Ty::Msg(&RESOURCES), false),
        (13, "terminationMessagePath", Ty::Str, false),
        (14, "imagePullPolicy", Ty::Str, false),
        (16, "stdin", Ty::Bool, false),
        (17, "stdinOnce", Ty::Bool, false),
        (18, "tty", Ty::Bool, false),
        (20, "terminationMessagePolicy", Ty::Str, false),
    ],
};
pub(super) const POD_SECURITY_CONTEXT: Msg = Msg {
    name: "PodSecurityContext",
    fields: &[
        (2, "runAsUser", Ty::Int, false),
        (3, "runAsNonRoot", Ty::Bool, false),
        (5, "fsGroup", Ty::Int, false),
        (6, "runAsGroup", Ty::Int, false),
    ],
};
pub(super) const POD_SPEC: Msg = Msg {
    name: "PodSpec",
    fields: &[
        (2, "containers", Ty::Msg(&CONTAINER), true),
        (3, "restartPolicy", Ty::Str, false),
        (4, "terminationGracePeriodSeconds", Ty::Int, false),
        (6, "dnsPolicy", Ty::Str, false),
        (7, "nodeSelector", Ty::MapStr, false),
        (8, "serviceAccountName", Ty::Str, false),
        (9, "serviceAccount", Ty::Str, false),
        (10, "nodeName", Ty::Str, false),
        (11, "hostNetwork", Ty::Bool, false),
        (12, "hostPID", Ty::Bool, false),
        (13, "hostIPC", Ty::Bool, false),
        (14, "securityContext", Ty::Msg(&POD_SECURITY_CONTEXT), false),
        (16, "hostname", Ty::Str, false),
        (17, "subdomain", Ty::Str, false),
        (19, "schedulerName", Ty::Str, false),
        (20, "initContainers", Ty::Msg(&CONTAINER), true),
        (24, "priorityClassName", Ty::Str, false),
        (30, "enableServiceLinks", Ty::Bool, false),
    ],
};
pub(super) const POD_TEMPLATE: Msg = Msg {
    name: "PodTemplateSpec",
    fields: &[(1, "metadata", Ty::Msg(&OBJECT_META), false), (2, "spec", Ty::Msg(&POD_SPEC), false)],
};
pub(super) const ROLLING_UPDATE: Msg = Msg {
    name: "RollingUpdateDeployment",
    fields: &[(1, "maxUnavailable", Ty::IntOrString, false), (2, "maxSurge", Ty::IntOrString, false)],
};
pub(super) const STRATEGY: Msg = Msg {
    name: "DeploymentStrategy",
    fields: &[(1, "type", Ty::Str, false), (2, "rollingUpdate", Ty::Msg(&ROLLING_UPDATE), false)],
};
pub(super) const DEPLOYMENT_SPEC: Msg = Msg {
    name: "DeploymentSpec",
    fields: &[
        (1, "replicas", Ty::Int, false),
        (2, "selector", Ty::Msg(&LABEL_SELECTOR), false),
        (3, "template", Ty::Msg(&POD_TEMPLATE), false),
        (4, "strategy", Ty::Msg(&STRATEGY), false),
        (5, "minReadySeconds", Ty::Int, false),
        (6, "revisionHistoryLimit", Ty::Int, false),
        (7, "paused", Ty::Bool, false),
        (9, "progressDeadlineSeconds", Ty::Int, false),
    ],
};
pub(super) const DEPLOYMENT: Msg = Msg {
    name: "Deployment",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "spec", Ty::Msg(&DEPLOYMENT_SPEC), false),
        (3, "status", Ty::Skip, false),
    ],
};
pub(super) const UNKNOWN: Msg = Msg {
    name: "Unknown",
    fields: &[
        (1, "typeMeta", Ty::Msg(&TYPE_META), false),
        (2, "raw", Ty::Skip, false),
        (3, "contentEncoding", Ty::Str, false),
        (4, "contentType", Ty::Str, false),
    ],
};
