//! The resource table: one [`ResourceInfo`] row per served resource.
//!
//! Everything that differs between resources (group, names, scope,
//! subresources, the typed struct behind it) is data here; handlers, discovery,
//! OpenAPI and table printing read it. Adding a resource is a row plus a
//! [`Kind`] variant.

/// The closed set of kinds this apiserver serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// core/v1 Namespace.
    Namespace,
    /// core/v1 Pod.
    Pod,
    /// core/v1 Node.
    Node,
    /// core/v1 Service.
    Service,
    /// core/v1 Endpoints.
    Endpoints,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 ControllerRevision (DaemonSet and StatefulSet history).
    ControllerRevision,
    /// batch/v1 Job.
    Job,
    /// batch/v1 CronJob.
    CronJob,
    /// policy/v1 PodDisruptionBudget.
    PodDisruptionBudget,
    /// core/v1 Event.
    Event,
    /// events.k8s.io/v1 Event (kube-rs `Recorder`); stored apart from core events.
    EventV1,
    /// core/v1 ConfigMap.
    ConfigMap,
    /// core/v1 Secret.
    Secret,
    /// coordination.k8s.io/v1 Lease.
    Lease,
    /// core/v1 ServiceAccount.
    ServiceAccount,
    /// scheduling.k8s.io/v1 PriorityClass.
    PriorityClass,
    /// rbac.authorization.k8s.io/v1 Role.
    Role,
    /// rbac.authorization.k8s.io/v1 ClusterRole.
    ClusterRole,
    /// rbac.authorization.k8s.io/v1 RoleBinding.
    RoleBinding,
    /// rbac.authorization.k8s.io/v1 ClusterRoleBinding.
    ClusterRoleBinding,
    /// authorization.k8s.io/v1 SelfSubjectAccessReview (create-only, not stored).
    SelfSubjectAccessReview,
    /// authorization.k8s.io/v1 SubjectAccessReview (create-only, not stored).
    SubjectAccessReview,
    /// authorization.k8s.io/v1 LocalSubjectAccessReview (namespaced, create-only, not stored).
    LocalSubjectAccessReview,
    /// authentication.k8s.io/v1 TokenReview (create-only, not stored).
    TokenReview,
    /// authorization.k8s.io/v1 SelfSubjectRulesReview (create-only, not stored).
    SelfSubjectRulesReview,
    /// authentication.k8s.io/v1 SelfSubjectReview (`kubectl auth whoami`; create-only, not stored).
    SelfSubjectReview,
    /// apiextensions.k8s.io/v1 CustomResourceDefinition.
    CustomResourceDefinition,
    /// A custom resource served from a stored CRD (rows built at runtime, `super::crd`).
    Custom,
    /// certificates.k8s.io/v1 CertificateSigningRequest (see `certificates`).
    CertificateSigningRequest,
}

/// Subresources a resource may expose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subresource {
    /// `/status`: writes only `.status`.
    Status,
    /// `/scale`: autoscaling/v1 Scale view of `.spec.replicas`.
    Scale,
    /// `/log`: proxied to the node's kubelet endpoint.
    Log,
    /// `/binding`: assigns a pod to a node.
    Binding,
    /// `/finalize`: writes a namespace's `spec.finalizers` (the namespace controller's handle).
    Finalize,
    /// `pods/exec`: an upgraded stream proxied to the node's kubelet.
    Exec,
    /// `pods/attach`: an upgraded stream proxied to the node's kubelet.
    Attach,
    /// `pods/portforward`: an upgraded stream proxied to the node's kubelet.
    PortForward,
    /// `pods/resize`: writes only the containers' cpu/memory resources (in-place resize).
    Resize,
    /// `serviceaccounts/token`: TokenRequest, issues a token (create only).
    Token,
    /// `pods/eviction`: a policy/v1 Eviction, a delete that respects PodDisruptionBudgets (create only).
    Eviction,
    /// `certificatesigningrequests/approval`: writes only the Approved/Denied conditions.
    Approval,
}

impl Subresource {
    /// The URL segment of the subresource.
    pub fn path(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Log => "log",
            Subresource::Binding => "binding",
            Subresource::Finalize => "finalize",
            Subresource::Exec => "exec",
            Subresource::Attach => "attach",
            Subresource::PortForward => "portforward",
            Subresource::Resize => "resize",
            Subresource::Token => "token",
            Subresource::Eviction => "eviction",
            Subresource::Approval => "approval",
        }
    }

    /// Parses a URL segment.
    pub fn parse(s: &str) -> Option<Subresource> {
        [
            Subresource::Status,
            Subresource::Scale,
            Subresource::Log,
            Subresource::Binding,
            Subresource::Finalize,
            Subresource::Exec,
            Subresource::Attach,
            Subresource::PortForward,
            Subresource::Resize,
            Subresource::Token,
            Subresource::Eviction,
            Subresource::Approval,
        ]
        .into_iter()
        .find(|sub| sub.path() == s)
    }
}

/// Static description of one resource (custom resources' rows are built
/// from their CRDs and interned, `super::crd::intern`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ResourceInfo {
    /// Which kind (selects typed hooks).
    pub kind: Kind,
    /// API group ("" for core).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind name, e.g. `Deployment`.
    pub kind_name: &'static str,
    /// Plural resource name, e.g. `deployments`.
    pub plural: &'static str,
    /// Singular resource name.
    pub singular: &'static str,
    /// Namespaced or cluster scoped.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Served subresources.
    pub subresources: &'static [Subresource],
    /// A custom resource's schema, columns and scale paths (`None` for built-ins).
    pub custom: Option<&'static super::crd::Custom>,
}

const ALL: &[&str] = &["all"];

/// Every served resource.
pub const RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        kind: Kind::Namespace,
        group: "",
        version: "v1",
        kind_name: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        custom: None,
        subresources: &[Subresource::Status, Subresource::Finalize],
    },
    ResourceInfo {
        kind: Kind::Pod,
        group: "",
        version: "v1",
        kind_name: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        categories: ALL,
        custom: None,
        subresources: &[
            Subresource::Status,
            Subresource::Log,
            Subresource::Binding,
            Subresource::Exec,
            Subresource::Attach,
            Subresource::PortForward,
            Subresource::Resize,
            Subresource::Eviction,
        ],
    },
    ResourceInfo {
        kind: Kind::Node,
        group: "",
        version: "v1",
        kind_name: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        custom: None,
        subresources: &[Subresource::Status],
    },
    ResourceInfo {
        kind: Kind::Service,
        group: "",
        version: "v1",
        kind_name: "Service",
        plural: "services",
        singular: "service",
        namespaced: true,
        short_names: &["svc"],
        categories: ALL,
        custom: None,
        subresources: &[Subresource::Status],
    },
    ResourceInfo {
        kind: Kind::Endpoints,
        group: "",
        version: "v1",
        kind_name: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::EndpointSlice,
        group: "discovery.k8s.io",
        version: "v1",
        kind_name: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::Deployment,
        group: "apps",
        version: "v1",
        kind_name: "Deployment",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: ALL,
        custom: None,
        subresources: &[Subresource::Status, Subresource::Scale],
    },
    ResourceInfo {
        kind: Kind::ReplicaSet,
        group: "apps",
        version: "v1",
        kind_name: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        namespaced: true,
        short_names: &["rs"],
        categories: ALL,
        custom: None,
        subresources: &[Subresource::Status, Subresource::Scale],
    },
    ResourceInfo {
        kind: Kind::DaemonSet,
        group: "apps",
        version: "v1",
        kind_name: "DaemonSet",
        plural: "daemonsets",
        singular: "daemonset",
        namespaced: true,
        short_names: &["ds"],
        categories: ALL,
        custom: None,
        subresources: &[Subresource::Status],
    },
    ResourceInfo {
        kind: Kind::Job,
        group: "batch",
        version: "v1",
        kind_name: "Job",
        plural: "jobs",
        singular: "job",
        namespaced: true,
        short_names: &[],
        categories: ALL,
        custom: None,
        subresources: &[Subresource::Status],
    },
    ResourceInfo {
        kind: Kind::StatefulSet,
        group: "apps",
        version: "v1",
        kind_name: "StatefulSet",
        plural: "statefulsets",
        singular: "statefulset",
        namespaced: true,
        short_names: &["sts"],
        categories: ALL,
        custom: None,
        subresources: &[Subresource::Status, Subresource::Scale],
    },
    ResourceInfo {
        kind: Kind::ControllerRevision,
        group: "apps",
        version: "v1",
        kind_name: "ControllerRevision",
        plural: "controllerrevisions",
        singular: "controllerrevision",
        namespaced: true,
        short_names: &[],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::CronJob,
        group: "batch",
        version: "v1",
        kind_name: "CronJob",
        plural: "cronjobs",
        singular: "cronjob",
        namespaced: true,
        short_names: &["cj"],
        categories: ALL,
        custom: None,
        subresources: &[Subresource::Status],
    },
    ResourceInfo {
        kind: Kind::PodDisruptionBudget,
        group: "policy",
        version: "v1",
        kind_name: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        namespaced: true,
        short_names: &["pdb"],
        categories: &[],
        custom: None,
        subresources: &[Subresource::Status],
    },
    ResourceInfo {
        kind: Kind::Event,
        group: "",
        version: "v1",
        kind_name: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::EventV1,
        group: "events.k8s.io",
        version: "v1",
        kind_name: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::ConfigMap,
        group: "",
        version: "v1",
        kind_name: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::Secret,
        group: "",
        version: "v1",
        kind_name: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::Lease,
        group: "coordination.k8s.io",
        version: "v1",
        kind_name: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::ServiceAccount,
        group: "",
        version: "v1",
        kind_name: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        custom: None,
        subresources: &[Subresource::Token],
    },
    ResourceInfo {
        kind: Kind::PriorityClass,
        group: "scheduling.k8s.io",
        version: "v1",
        kind_name: "PriorityClass",
        plural: "priorityclasses",
        singular: "priorityclass",
        namespaced: false,
        short_names: &["pc"],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::Role,
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind_name: "Role",
        plural: "roles",
        singular: "role",
        namespaced: true,
        short_names: &[],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::ClusterRole,
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind_name: "ClusterRole",
        plural: "clusterroles",
        singular: "clusterrole",
        namespaced: false,
        short_names: &[],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::RoleBinding,
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind_name: "RoleBinding",
        plural: "rolebindings",
        singular: "rolebinding",
        namespaced: true,
        short_names: &[],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::ClusterRoleBinding,
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind_name: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        namespaced: false,
        short_names: &[],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::SelfSubjectAccessReview,
        group: "authorization.k8s.io",
        version: "v1",
        kind_name: "SelfSubjectAccessReview",
        plural: "selfsubjectaccessreviews",
        singular: "",
        namespaced: false,
        short_names: &[],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::SubjectAccessReview,
        group: "authorization.k8s.io",
        version: "v1",
        kind_name: "SubjectAccessReview",
        plural: "subjectaccessreviews",
        singular: "",
        namespaced: false,
        short_names: &[],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::LocalSubjectAccessReview,
        group: "authorization.k8s.io",
        version: "v1",
        kind_name: "LocalSubjectAccessReview",
        plural: "localsubjectaccessreviews",
        singular: "",
        namespaced: true,
        short_names: &[],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::TokenReview,
        group: "authentication.k8s.io",
        version: "v1",
        kind_name: "TokenReview",
        plural: "tokenreviews",
        singular: "",
        namespaced: false,
        short_names: &[],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::SelfSubjectRulesReview,
        group: "authorization.k8s.io",
        version: "v1",
        kind_name: "SelfSubjectRulesReview",
        plural: "selfsubjectrulesreviews",
        singular: "",
        namespaced: false,
        short_names: &[],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::SelfSubjectReview,
        group: "authentication.k8s.io",
        version: "v1",
        kind_name: "SelfSubjectReview",
        plural: "selfsubjectreviews",
        singular: "",
        namespaced: false,
        short_names: &[],
        categories: &[],
        custom: None,
        subresources: &[],
    },
    ResourceInfo {
        kind: Kind::CustomResourceDefinition,
        group: "apiextensions.k8s.io",
        version: "v1",
        kind_name: "CustomResourceDefinition",
        plural: "customresourcedefinitions",
        singular: "customresourcedefinition",
        namespaced: false,
        short_names: &["crd", "crds"],
        categories: &["api-extensions"],
        custom: None,
        subresources: &[Subresource::Status],
    },
    ResourceInfo {
        kind: Kind::CertificateSigningRequest,
        group: "certificates.k8s.io",
        version: "v1",
        kind_name: "CertificateSigningRequest",
        plural: "certificatesigningrequests",
        singular: "certificatesigningrequest",
        namespaced: false,
        short_names: &["csr"],
        categories: &[],
        custom: None,
        subresources: &[Subresource::Status, Subresource::Approval],
    },
];

impl ResourceInfo {
    /// `apiVersion` string: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether this is a review: created and answered, never stored (`create` is its only verb).
    pub fn is_review(&self) -> bool {
        matches!(
            self.kind,
            Kind::SelfSubjectAccessReview
                | Kind::SubjectAccessReview
                | Kind::LocalSubjectAccessReview
                | Kind::SelfSubjectRulesReview
                | Kind::TokenReview
                | Kind::SelfSubjectReview
        )
    }

    /// Whether `/status` is served (and main-resource writes keep `.status`).
    pub fn has_status(&self) -> bool {
        self.has_subresource(Subresource::Status)
    }

    /// Whether the subresource is served.
    pub fn has_subresource(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// `deployments.apps` / `pods`: how upstream names the resource in messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps` / `Pod`: how upstream names the kind in 422 messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind_name.to_string()
        } else {
            format!("{}.{}", self.kind_name, self.group)
        }
    }

    /// Whether the row is a custom resource's (built from a CRD).
    pub fn is_custom(&self) -> bool {
        self.kind == Kind::Custom
    }

    fn group_segment(&self) -> &'static str {
        if self.group.is_empty() {
            "core"
        } else {
            self.group
        }
    }

    /// Store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("/registry/{}/{}/{}/{}", self.group_segment(), self.plural, ns, name),
            _ => format!("/registry/{}/{}/{}", self.group_segment(), self.plural, name),
        }
    }

    /// Store prefix of a list (one namespace or all).
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => {
                format!("/registry/{}/{}/{}/", self.group_segment(), self.plural, ns)
            }
            _ => format!("/registry/{}/{}/", self.group_segment(), self.plural),
        }
    }
}

/// Finds a resource by group, version and plural.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource by group, version and plural among the built-in rows, then `custom`.
pub fn lookup_in(
    custom: &[&'static ResourceInfo],
    group: &str,
    version: &str,
    plural: &str,
) -> Option<&'static ResourceInfo> {
    lookup(group, version, plural)
        .or_else(|| custom.iter().copied().find(|r| r.group == group && r.version == version && r.plural == plural))
}

/// The built-in rows followed by `custom`, in discovery order.
pub fn all_with(custom: &[&'static ResourceInfo]) -> Vec<&'static ResourceInfo> {
    RESOURCES.iter().chain(custom.iter().copied()).collect()
}

/// Finds the resource of a kind.
pub fn by_kind(kind: Kind) -> &'static ResourceInfo {
    // Every Kind variant but `Custom` has exactly one row (checked by a test).
    RESOURCES.iter().find(|r| r.kind == kind).unwrap_or(&RESOURCES[0])
}

/// Served group/versions, core first, in discovery order.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    group_versions_of(&all_with(&[]))
}

/// The group/versions of `rows`, in their order.
pub fn group_versions_of(rows: &[&'static ResourceInfo]) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in rows {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row_and_names_are_unique() {
        let mut plurals = std::collections::HashSet::new();
        for r in RESOURCES {
            assert_eq!(by_kind(r.kind).plural, r.plural);
            assert!(plurals.insert((r.group, r.plural)), "duplicate {}", r.plural);
        }
    }

    #[test]
    fn keys_and_prefixes_nest() {
        let d = lookup("apps", "v1", "deployments").expect("deployments");
        assert_eq!(d.key(Some("default"), "web"), "/registry/apps/deployments/default/web");
        assert!(d.key(Some("default"), "web").starts_with(&d.prefix(Some("default"))));
        assert!(d.key(Some("default"), "web").starts_with(&d.prefix(None)));
        let n = lookup("", "v1", "nodes").expect("nodes");
        assert_eq!(n.key(None, "n1"), "/registry/core/nodes/n1");
        assert_eq!(d.qualified_kind(), "Deployment.apps");
        assert_eq!(n.qualified_plural(), "nodes");
    }
}
