//! Upstream's default ClusterRoles and ClusterRoleBindings (a subset sized to
//! what this cluster serves), created at start when absent and never
//! overwritten: an administrator's edits to them stay. The TLS bootstrap
//! bindings are kubeadm's (bootstrap tokens may create node client CSRs,
//! which are then auto-approved; nodes may renew their own).

use serde_json::{json, Value};

use super::user::{AUTHENTICATED, MASTERS};

pub use crate::auth::user::UNAUTHENTICATED;

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const AGGREGATE_PREFIX: &str = "rbac.authorization.k8s.io/aggregate-to-";

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn urls(urls: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": ["get"]})
}

fn meta(name: &str) -> Value {
    json!({"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta(name), "rules": rules})
}

/// admin/edit/view also aggregate the ClusterRoles labelled
/// `rbac.authorization.k8s.io/aggregate-to-<name>: "true"`.
fn aggregating(name: &str, rules: Vec<Value>) -> Value {
    let mut role = cluster_role(name, rules);
    role["aggregationRule"] =
        json!({"clusterRoleSelectors": [{"matchLabels": {format!("{AGGREGATE_PREFIX}{name}"): "true"}}]});
    role
}

const VIEW_CORE: &[&str] = &[
    "pods",
    "pods/log",
    "pods/status",
    "configmaps",
    "endpoints",
    "persistentvolumeclaims",
    "services",
    "services/status",
    "serviceaccounts",
    "namespaces",
    "namespaces/status",
    "events",
    "limitranges",
    "resourcequotas",
    "replicationcontrollers",
];
const VIEW_APPS: &[&str] = &[
    "deployments",
    "deployments/status",
    "deployments/scale",
    "replicasets",
    "replicasets/status",
    "replicasets/scale",
    "daemonsets",
    "daemonsets/status",
    "statefulsets",
    "statefulsets/status",
    "statefulsets/scale",
    "controllerrevisions",
];
const EDIT_CORE: &[&str] = &[
    "pods",
    "pods/attach",
    "pods/exec",
    "pods/portforward",
    "pods/resize",
    "pods/eviction",
    "configmaps",
    "endpoints",
    "persistentvolumeclaims",
    "secrets",
    "serviceaccounts",
    "services",
    "replicationcontrollers",
];
const EDIT_APPS: &[&str] = &[
    "deployments",
    "deployments/scale",
    "replicasets",
    "replicasets/scale",
    "daemonsets",
    "statefulsets",
    "statefulsets/scale",
];
const BATCH_VIEW: &[&str] = &["jobs", "jobs/status", "cronjobs", "cronjobs/status"];
const BATCH_EDIT: &[&str] = &["jobs", "cronjobs"];
const POLICY_VIEW: &[&str] = &["poddisruptionbudgets", "poddisruptionbudgets/status"];

fn view_rules() -> Vec<Value> {
    vec![
        rule(&[""], VIEW_CORE, READ),
        rule(&["apps"], VIEW_APPS, READ),
        rule(&["batch"], BATCH_VIEW, READ),
        rule(&["policy"], POLICY_VIEW, READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(&["events.k8s.io"], &["events"], READ),
        rule(&["coordination.k8s.io"], &["leases"], READ),
    ]
}

fn edit_rules() -> Vec<Value> {
    let mut rules = view_rules();
    rules.push(rule(&[""], &["secrets"], READ));
    rules.push(rule(&[""], EDIT_CORE, WRITE));
    rules.push(rule(&["apps"], EDIT_APPS, WRITE));
    rules.push(rule(&["batch"], BATCH_EDIT, WRITE));
    rules.push(rule(&["policy"], &["poddisruptionbudgets"], WRITE));
    rules.push(rule(&["discovery.k8s.io"], &["endpointslices"], WRITE));
    rules.push(rule(&["coordination.k8s.io"], &["leases"], WRITE));
    rules.push(rule(&["", "events.k8s.io"], &["events"], WRITE));
    rules
}

fn admin_rules() -> Vec<Value> {
    let mut rules = edit_rules();
    // Not `*`: `escalate` and `bind` would let a namespace admin grant what it does not hold.
    rules.push(rule(
        &["rbac.authorization.k8s.io"],
        &["roles", "rolebindings"],
        &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
    ));
    rules.push(rule(&["authorization.k8s.io"], &["localsubjectaccessreviews"], &["create"]));
    rules
}

/// What a kubelet may do (the Node authorizer's rules, for reference and for
/// bindings an administrator makes; not bound by default, as upstream).
fn node_rules() -> Vec<Value> {
    vec![
        rule(&[""], &["nodes"], &["create", "get", "list", "watch", "patch", "update"]),
        rule(&[""], &["nodes/status"], &["patch", "update"]),
        rule(&[""], &["pods"], &["get", "list", "watch", "create", "delete"]),
        rule(&[""], &["pods/status"], &["patch", "update"]),
        rule(&[""], &["services", "endpoints"], READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(&["", "events.k8s.io"], &["events"], &["create", "patch", "update"]),
        rule(&["coordination.k8s.io"], &["leases"], &["create", "delete", "get", "patch", "update"]),
        rule(&[""], &["secrets", "configmaps", "persistentvolumeclaims"], &["get"]),
        rule(&["authorization.k8s.io"], &["subjectaccessreviews"], &["create"]),
        // Tokens for its pods' ServiceAccounts (the Node authorizer narrows it).
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        // Client certificate rotation.
        rule(&[CERTIFICATES], &["certificatesigningrequests"], CSR_VERBS),
    ]
}

const CERTIFICATES: &str = "certificates.k8s.io";
const CSR_VERBS: &[&str] = &["create", "get", "list", "watch"];
/// The role a bootstrap token needs to ask for a node's client certificate.
pub const NODE_BOOTSTRAPPER: &str = "system:node-bootstrapper";
/// Whoever may create `certificatesigningrequests/nodeclient` gets a
/// node client CSR auto-approved (`controllers::csr`).
pub const NODE_CLIENT_APPROVER: &str = "system:certificates.k8s.io:certificatesigningrequests:nodeclient";
/// Same for a node renewing its own client certificate (`selfnodeclient`).
pub const SELF_NODE_CLIENT_APPROVER: &str = "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient";

fn certificate_roles() -> Vec<Value> {
    vec![
        cluster_role(NODE_BOOTSTRAPPER, vec![rule(&[CERTIFICATES], &["certificatesigningrequests"], CSR_VERBS)]),
        cluster_role(
            NODE_CLIENT_APPROVER,
            vec![rule(&[CERTIFICATES], &["certificatesigningrequests/nodeclient"], &["create"])],
        ),
        cluster_role(
            SELF_NODE_CLIENT_APPROVER,
            vec![rule(&[CERTIFICATES], &["certificatesigningrequests/selfnodeclient"], &["create"])],
        ),
    ]
}

/// The default ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let discovery = ["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", "/version", "/version/"];
    let health = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    let mut roles = certificate_roles();
    roles.extend(vec![
        cluster_role(
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), json!({"nonResourceURLs": ["*"], "verbs": ["*"]})],
        ),
        aggregating("admin", admin_rules()),
        aggregating("edit", edit_rules()),
        aggregating("view", view_rules()),
        cluster_role(
            "system:basic-user",
            vec![
                rule(&["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"], &["create"]),
                rule(&["authentication.k8s.io"], &["selfsubjectreviews"], &["create"]),
            ],
        ),
        cluster_role("system:discovery", vec![urls(&discovery), urls(&health)]),
        cluster_role("system:public-info-viewer", vec![urls(&health)]),
        cluster_role(
            "system:service-account-issuer-discovery",
            vec![urls(&[
                "/.well-known/openid-configuration",
                "/.well-known/openid-configuration/",
                "/openid/v1/jwks",
                "/openid/v1/jwks/",
            ])],
        ),
        cluster_role("system:node", node_rules()),
        cluster_role(
            "system:kubelet-api-admin",
            vec![
                rule(&[""], &["nodes"], &["get", "list", "watch", "proxy"]),
                rule(
                    &[""],
                    &[
                        "nodes/proxy",
                        "nodes/log",
                        "nodes/stats",
                        "nodes/metrics",
                        "nodes/spec",
                        "nodes/pods",
                        "nodes/healthz",
                    ],
                    &["*"],
                ),
            ],
        ),
        cluster_role(
            "system:kube-scheduler",
            vec![
                rule(&[""], &["pods", "nodes", "namespaces", "services", "persistentvolumeclaims"], READ),
                rule(&[""], &["pods"], &["delete"]),
                rule(&[""], &["pods/binding"], &["create"]),
                rule(&[""], &["pods/status"], &["patch", "update"]),
                rule(&["apps"], &["replicasets"], READ),
                rule(&["scheduling.k8s.io"], &["priorityclasses"], READ),
                rule(&["", "events.k8s.io"], &["events"], &["create", "patch", "update"]),
                rule(&["coordination.k8s.io"], &["leases"], &["*"]),
            ],
        ),
        cluster_role(
            "system:kube-controller-manager",
            vec![
                rule(&["*"], &["*"], READ),
                rule(&["", "apps", "discovery.k8s.io", "events.k8s.io", "coordination.k8s.io"], &["*"], WRITE),
            ],
        ),
    ]);
    roles
}

fn binding(name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects})
}

fn group(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name})
}

fn user(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name})
}

/// The default ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", "cluster-admin", vec![group(MASTERS)]),
        binding("system:basic-user", "system:basic-user", vec![group(AUTHENTICATED)]),
        binding("system:discovery", "system:discovery", vec![group(AUTHENTICATED)]),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![group(AUTHENTICATED), group(UNAUTHENTICATED)],
        ),
        binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            vec![group(super::sa_token::SERVICE_ACCOUNTS_GROUP)],
        ),
        binding("system:kube-scheduler", "system:kube-scheduler", vec![user("system:kube-scheduler")]),
        binding(
            "system:kube-apiserver-kubelet-client",
            "system:kubelet-api-admin",
            vec![user(super::serving::KUBELET_CLIENT_USER)],
        ),
        binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            vec![user("system:kube-controller-manager")],
        ),
        // TLS bootstrapping, as kubeadm binds it: bootstrap tokens may ask
        // for node client certificates, which are auto-approved; nodes may
        // renew their own.
        binding(
            "system:node-bootstrapper",
            NODE_BOOTSTRAPPER,
            vec![group(super::bootstrap_token::GROUP), group(super::node::NODES_GROUP)],
        ),
        binding("bosun:node-autoapprove-bootstrap", NODE_CLIENT_APPROVER, vec![group(super::bootstrap_token::GROUP)]),
        binding(
            "bosun:node-autoapprove-certificate-rotation",
            SELF_NODE_CLIENT_APPROVER,
            vec![group(super::node::NODES_GROUP)],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::attributes::{Request, ResourceAttrs};
    use crate::auth::rbac::{RbacSnapshot, STORE_PREFIX};
    use crate::auth::user::{UserInfo, ANONYMOUS};

    fn snapshot() -> RbacSnapshot {
        let mut objs: Vec<(String, Value)> = Vec::new();
        for r in cluster_roles() {
            objs.push((format!("{STORE_PREFIX}clusterroles/{}", r["metadata"]["name"].as_str().unwrap_or("")), r));
        }
        for b in cluster_role_bindings() {
            let key = format!("{STORE_PREFIX}clusterrolebindings/{}", b["metadata"]["name"].as_str().unwrap_or(""));
            objs.push((key, b));
        }
        let rb = json!({"metadata": {"name": "v", "namespace": "team"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "viewer"}]});
        objs.push((format!("{STORE_PREFIX}rolebindings/team/v"), rb));
        let eb = json!({"metadata": {"name": "e", "namespace": "team"}, "roleRef": {"kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "User", "name": "editor"}]});
        objs.push((format!("{STORE_PREFIX}rolebindings/team/e"), eb));
        RbacSnapshot::build(objs.iter().map(|(k, v)| (k.as_str(), v)))
    }

    #[test]
    fn edit_may_evict_and_manage_budgets_view_may_only_read_them() {
        let snap = snapshot();
        let user = |name: &str| UserInfo { name: name.into(), uid: String::new(), groups: vec![AUTHENTICATED.into()] };
        let (viewer, editor) = (user("viewer"), user("editor"));
        let evict = || {
            let mut attrs = ResourceAttrs::new("create", "", "pods", "team", "web-1");
            attrs.subresource = "eviction".into();
            Request::Resource(attrs)
        };
        let pdb =
            |verb: &str| Request::Resource(ResourceAttrs::new(verb, "policy", "poddisruptionbudgets", "team", ""));
        let cases = [
            (&viewer, evict(), false),
            (&editor, evict(), true),
            (&viewer, pdb("list"), true),
            (&viewer, pdb("create"), false),
            (&editor, pdb("create"), true),
            (&editor, pdb("delete"), true),
        ];
        for (u, r, want) in cases {
            assert_eq!(snap.allows(u, &r).is_some(), want, "{} {r:?}", u.name);
        }
    }

    #[test]
    fn defaults_grant_discovery_health_and_view() {
        let snap = snapshot();
        let user = |name: &str, groups: &[&str]| UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        let anon = user(ANONYMOUS, &[UNAUTHENTICATED]);
        let viewer = user("viewer", &[AUTHENTICATED]);
        let res = |verb: &str, resource: &str| Request::Resource(ResourceAttrs::new(verb, "", resource, "team", ""));
        let batch =
            |verb: &str, resource: &str| Request::Resource(ResourceAttrs::new(verb, "batch", resource, "team", ""));
        let ssar =
            Request::Resource(ResourceAttrs::new("create", "authorization.k8s.io", "selfsubjectaccessreviews", "", ""));
        let cases = [
            (&anon, Request::get_path("/healthz"), true),
            (&anon, Request::get_path("/version"), true),
            (&anon, Request::get_path("/api"), false),
            (&anon, res("list", "pods"), false),
            (&viewer, Request::get_path("/apis/apps/v1"), true),
            (&viewer, ssar, true),
            (&viewer, res("list", "pods"), true),
            (&viewer, res("create", "pods"), false),
            (&viewer, res("get", "secrets"), false),
            (&viewer, batch("list", "cronjobs"), true),
            (&viewer, batch("create", "jobs"), false),
        ];
        for (u, r, want) in cases {
            assert_eq!(snap.allows(u, &r).is_some(), want, "{} {r:?}", u.name);
        }
    }
}
