//! The Node authorizer and NodeRestriction admission for kubelets
//! (`system:node:<name>` in group `system:nodes`).
//!
//! Decisions (pure, over a [`NodeGraph`] snapshot):
//! - Nodes: read all; create (its own, checked by [`admit_create`]); update,
//!   patch, status and delete only its own.
//! - Leases: only its own, in `kube-node-lease`.
//! - Pods: get/list/watch all (as upstream, whose kubelets list with a
//!   `spec.nodeName` field selector the authorizer does not enforce);
//!   create only mirror pods bound to itself; status writes and deletes only
//!   of pods bound to it.
//! - Secrets, ConfigMaps, PVCs: `get` only of those a pod bound to it references.
//! - ServiceAccounts: `create` of `token` only for the ServiceAccount of a
//!   pod bound to it; NodeRestriction ([`admit_token_request`]) then wants
//!   the token bound to such a pod that runs as that ServiceAccount.
//! - Events: create/update/patch; Services, Endpoints, EndpointSlices: read;
//!   SubjectAccessReviews and TokenReviews: create (the kubelet API's checks).
//!
//! Everything else has no opinion here: RBAC still decides.

use serde_json::Value;

use super::attributes::{Request, ResourceAttrs};
use super::node_graph::{NodeGraph, RefKind};
use super::user::UserInfo;

/// The group of node identities.
pub const NODES_GROUP: &str = "system:nodes";
/// The user name prefix of node identities.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The namespace of node heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// The annotation that marks a mirror pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The node name of a node identity (`None` for any other user).
pub fn node_name(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX).filter(|n| !n.is_empty())?;
    user.groups.iter().any(|g| g == NODES_GROUP).then_some(name)
}

fn reads(verb: &str) -> bool {
    matches!(verb, "get" | "list" | "watch")
}

/// Whether the Node authorizer allows `node` the `request`.
pub fn authorize(node: &str, request: &Request, graph: &NodeGraph) -> bool {
    let Request::Resource(r) = request else { return false };
    let (verb, sub) = (r.verb.as_str(), r.subresource.as_str());
    match (r.group.as_str(), r.resource.as_str()) {
        ("", "nodes") => match verb {
            _ if reads(verb) && sub.is_empty() => true,
            "create" => sub.is_empty(),
            "get" | "update" | "patch" | "delete" => r.name == node && matches!(sub, "" | "status"),
            _ => false,
        },
        ("coordination.k8s.io", "leases") => {
            r.namespace == NODE_LEASE_NAMESPACE
                && sub.is_empty()
                && (verb == "create" || (r.name == node && matches!(verb, "get" | "update" | "patch" | "delete")))
        }
        ("", "pods") => match (verb, sub) {
            (_, "") if reads(verb) => true,
            ("create", "") => true,
            ("delete", "") | ("get" | "update" | "patch", "status") => graph.pod_on_node(node, &r.namespace, &r.name),
            _ => false,
        },
        ("", kind @ ("secrets" | "configmaps" | "persistentvolumeclaims")) => {
            let kind = match kind {
                "secrets" => RefKind::Secret,
                "configmaps" => RefKind::ConfigMap,
                _ => RefKind::Pvc,
            };
            // `list`/`watch` only of one named object (`metadata.name=`).
            reads(verb)
                && !r.name.is_empty()
                && sub.is_empty()
                && graph.node_references(node, kind, &r.namespace, &r.name)
        }
        ("", "serviceaccounts") => {
            verb == "create"
                && sub == "token"
                && graph.node_references(node, RefKind::ServiceAccount, &r.namespace, &r.name)
        }
        ("" | "events.k8s.io", "events") => matches!(verb, "create" | "update" | "patch"),
        ("", "services" | "endpoints") | ("discovery.k8s.io", "endpointslices") => reads(verb) && sub.is_empty(),
        ("authorization.k8s.io", "subjectaccessreviews") | ("authentication.k8s.io", "tokenreviews") => {
            verb == "create"
        }
        _ => false,
    }
}

/// NodeRestriction on what a node creates: its own Node and Lease, and
/// mirror pods bound to itself. `Err` is the reason for a 403.
pub fn admit_create(node: &str, r: &ResourceAttrs, body: &Value) -> Result<(), String> {
    let name = body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    match (r.group.as_str(), r.resource.as_str()) {
        ("", "nodes") | ("coordination.k8s.io", "leases") if name != node => {
            Err(format!("node {node:?} is not allowed to modify {} {name:?}", r.resource.trim_end_matches('s')))
        }
        ("", "pods") => {
            let mirror = body.pointer("/metadata/annotations").and_then(|a| a.get(MIRROR_ANNOTATION)).is_some();
            if !mirror {
                return Err(format!(
                    "pod does not have {MIRROR_ANNOTATION:?} annotation, node {node:?} can only create mirror pods"
                ));
            }
            match body.pointer("/spec/nodeName").and_then(Value::as_str) {
                Some(n) if n == node => Ok(()),
                _ => Err(format!("node {node:?} can only create pods with spec.nodeName set to itself")),
            }
        }
        _ => Ok(()),
    }
}

/// NodeRestriction on a node's TokenRequest for ServiceAccount
/// `namespace/service_account`: the token must be bound to a pod bound to
/// this node that runs as that ServiceAccount. `Err` is the reason for a 403.
pub fn admit_token_request(
    node: &str,
    namespace: &str,
    service_account: &str,
    body: &Value,
    graph: &NodeGraph,
) -> Result<(), String> {
    let bound = body.pointer("/spec/boundObjectRef").filter(|b| b.is_object());
    let field = |f: &str| bound.and_then(|b| b.get(f)).and_then(Value::as_str).unwrap_or_default().to_string();
    if bound.is_none() || field("kind") != "Pod" {
        return Err(format!("node {node:?} can only create tokens bound to a pod"));
    }
    let pod = field("name");
    match graph.pod(namespace, &pod) {
        Some(p) if p.node == node && p.service_account == service_account => Ok(()),
        Some(p) if p.node == node => Err(format!(
            "node {node:?} can only create tokens for the service account of pod {pod:?} ({:?})",
            p.service_account
        )),
        _ => Err(format!("node {node:?} can only create tokens bound to pods scheduled on it")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::auth::node_graph::PODS_PREFIX;

    fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Request {
        Request::Resource(ResourceAttrs::new(verb, group, resource, ns, name).on_subresource(sub))
    }

    #[test]
    fn nodes_reach_only_their_own_objects_and_referenced_secrets() {
        let mut graph = NodeGraph::default();
        let pod = json!({"metadata": {"namespace": "d", "name": "p"},
            "spec": {"nodeName": "n1", "volumes": [{"name": "v", "secret": {"secretName": "used"}}]}});
        graph.apply(&format!("{PODS_PREFIX}d/p"), Some(&pod));
        let lease = "coordination.k8s.io";
        let cases = [
            (res("get", "", "nodes", "", "", "n2"), true),
            (res("list", "", "nodes", "", "", ""), true),
            (res("patch", "", "nodes", "status", "", "n1"), true),
            (res("patch", "", "nodes", "", "", "n2"), false),
            (res("update", "", "nodes", "status", "", "n2"), false),
            (res("delete", "", "nodes", "", "", "n2"), false),
            (res("update", lease, "leases", "", NODE_LEASE_NAMESPACE, "n1"), true),
            (res("update", lease, "leases", "", NODE_LEASE_NAMESPACE, "n2"), false),
            (res("get", lease, "leases", "", "default", "n1"), false),
            (res("list", "", "pods", "", "", ""), true),
            (res("patch", "", "pods", "status", "d", "p"), true),
            (res("patch", "", "pods", "status", "d", "q"), false),
            (res("delete", "", "pods", "", "d", "p"), true),
            (res("update", "", "pods", "", "d", "p"), false),
            (res("get", "", "pods", "exec", "d", "p"), false),
            (res("get", "", "secrets", "", "d", "used"), true),
            (res("get", "", "secrets", "", "d", "unused"), false),
            (res("list", "", "secrets", "", "d", ""), false),
            (res("watch", "", "secrets", "", "d", "used"), true),
            (res("watch", "", "secrets", "", "d", "unused"), false),
            (res("get", "", "configmaps", "", "d", "used"), false),
            (res("create", "", "events", "", "d", ""), true),
            (res("watch", "", "services", "", "", ""), true),
            (res("create", "", "services", "", "d", ""), false),
            (res("get", "apps", "deployments", "", "d", "x"), false),
            (res("create", "", "serviceaccounts", "token", "d", "default"), true),
            (res("create", "", "serviceaccounts", "token", "d", "builder"), false),
            (res("create", "", "serviceaccounts", "token", "e", "default"), false),
            (res("get", "", "serviceaccounts", "", "d", "default"), false),
            (Request::get_path("/healthz"), false),
        ];
        for (request, want) in cases {
            assert_eq!(authorize("n1", &request, &graph), want, "{request:?}");
        }
    }

    #[test]
    fn a_node_gets_tokens_only_bound_to_its_pods_of_their_service_account() {
        let mut graph = NodeGraph::default();
        let pod = |name: &str, node: &str, sa: &str| json!({"metadata": {"namespace": "d", "name": name}, "spec": {"nodeName": node, "serviceAccountName": sa}});
        graph.apply(&format!("{PODS_PREFIX}d/mine"), Some(&pod("mine", "n1", "web")));
        graph.apply(&format!("{PODS_PREFIX}d/theirs"), Some(&pod("theirs", "n2", "web")));
        let ask = |kind: &str, name: &str| json!({"spec": {"boundObjectRef": {"kind": kind, "name": name}}});
        assert_eq!(admit_token_request("n1", "d", "web", &ask("Pod", "mine"), &graph), Ok(()));
        for (sa, body) in [
            ("web", ask("Pod", "theirs")),
            ("web", ask("Pod", "gone")),
            ("web", ask("Secret", "mine")),
            ("web", json!({"spec": {}})),
            ("other", ask("Pod", "mine")),
        ] {
            assert!(admit_token_request("n1", "d", sa, &body, &graph).is_err(), "{sa} {body}");
        }
    }

    #[test]
    fn node_identity_needs_prefix_and_group() {
        let user = |name: &str, groups: &[&str]| UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        assert_eq!(node_name(&user("system:node:n1", &[NODES_GROUP])), Some("n1"));
        assert_eq!(node_name(&user("system:node:n1", &[])), None);
        assert_eq!(node_name(&user("system:node:", &[NODES_GROUP])), None);
        assert_eq!(node_name(&user("alice", &[NODES_GROUP])), None);
    }

    #[test]
    fn node_restriction_limits_creates() {
        let create = |resource: &str| ResourceAttrs::new("create", "", resource, "d", "");
        assert!(admit_create("n1", &create("nodes"), &json!({"metadata": {"name": "n1"}})).is_ok());
        assert!(admit_create("n1", &create("nodes"), &json!({"metadata": {"name": "n2"}})).is_err());
        let mirror = json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "x"}}, "spec": {"nodeName": "n1"}});
        assert!(admit_create("n1", &create("pods"), &mirror).is_ok());
        let elsewhere = json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "x"}}, "spec": {"nodeName": "n2"}});
        assert!(admit_create("n1", &create("pods"), &elsewhere).is_err());
        assert!(admit_create("n1", &create("pods"), &json!({"spec": {"nodeName": "n1"}})).is_err());
        assert!(admit_create("n1", &create("events"), &json!({})).is_ok());
    }
}
