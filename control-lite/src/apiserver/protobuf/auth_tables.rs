//! Field-number tables of the RBAC (`rbac.authorization.k8s.io/v1`) and
//! review (`authorization.k8s.io/v1`) messages `kubectl create role|...` and
//! `kubectl auth can-i` send.

use super::tables::{LABEL_SELECTOR, OBJECT_META};
use super::{Msg, Ty};

const POLICY_RULE: Msg = Msg {
    name: "PolicyRule",
    fields: &[
        (1, "verbs", Ty::Str, true),
        (2, "apiGroups", Ty::Str, true),
        (3, "resources", Ty::Str, true),
        (4, "resourceNames", Ty::Str, true),
        (5, "nonResourceURLs", Ty::Str, true),
    ],
};
const AGGREGATION_RULE: Msg =
    Msg { name: "AggregationRule", fields: &[(1, "clusterRoleSelectors", Ty::Msg(&LABEL_SELECTOR), true)] };
pub(super) const ROLE: Msg = Msg {
    name: "Role",
    fields: &[(1, "metadata", Ty::Msg(&OBJECT_META), false), (2, "rules", Ty::Msg(&POLICY_RULE), true)],
};
pub(super) const CLUSTER_ROLE: Msg = Msg {
    name: "ClusterRole",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "rules", Ty::Msg(&POLICY_RULE), true),
        (3, "aggregationRule", Ty::Msg(&AGGREGATION_RULE), false),
    ],
};
const SUBJECT: Msg = Msg {
    name: "Subject",
    fields: &[
        (1, "kind", Ty::Str, false),
        (2, "apiGroup", Ty::Str, false),
        (3, "name", Ty::Str, false),
        (4, "namespace", Ty::Str, false),
    ],
};
const ROLE_REF: Msg = Msg {
    name: "RoleRef",
    fields: &[(1, "apiGroup", Ty::Str, false), (2, "kind", Ty::Str, false), (3, "name", Ty::Str, false)],
};
/// RoleBinding and ClusterRoleBinding share their field numbers.
pub(super) const BINDING: Msg = Msg {
    name: "RoleBinding",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "subjects", Ty::Msg(&SUBJECT), true),
        (3, "roleRef", Ty::Msg(&ROLE_REF), false),
    ],
};
const RESOURCE_ATTRIBUTES: Msg = Msg {
    name: "ResourceAttributes",
    fields: &[
        (1, "namespace", Ty::Str, false),
        (2, "verb", Ty::Str, false),
        (3, "group", Ty::Str, false),
        (4, "version", Ty::Str, false),
        (5, "resource", Ty::Str, false),
        (6, "subresource", Ty::Str, false),
        (7, "name", Ty::Str, false),
        (8, "fieldSelector", Ty::Skip, false),
        (9, "labelSelector", Ty::Skip, false),
    ],
};
const NON_RESOURCE_ATTRIBUTES: Msg =
    Msg { name: "NonResourceAttributes", fields: &[(1, "path", Ty::Str, false), (2, "verb", Ty::Str, false)] };
const SELF_SAR_SPEC: Msg = Msg {
    name: "SelfSubjectAccessReviewSpec",
    fields: &[
        (1, "resourceAttributes", Ty::Msg(&RESOURCE_ATTRIBUTES), false),
        (2, "nonResourceAttributes", Ty::Msg(&NON_RESOURCE_ATTRIBUTES), false),
    ],
};
const SAR_SPEC: Msg = Msg {
    name: "SubjectAccessReviewSpec",
    fields: &[
        (1, "resourceAttributes", Ty::Msg(&RESOURCE_ATTRIBUTES), false),
        (2, "nonResourceAttributes", Ty::Msg(&NON_RESOURCE_ATTRIBUTES), false),
        (3, "user", Ty::Str, false),
        (4, "groups", Ty::Str, true),
        (5, "extra", Ty::Skip, true),
        (6, "uid", Ty::Str, false),
    ],
};
/// The status of a request is server-owned: accepted and dropped.
pub(super) const SELF_SAR: Msg = Msg {
    name: "SelfSubjectAccessReview",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "spec", Ty::Msg(&SELF_SAR_SPEC), false),
        (3, "status", Ty::Skip, false),
    ],
};
pub(super) const SAR: Msg = Msg {
    name: "SubjectAccessReview",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "spec", Ty::Msg(&SAR_SPEC), false),
        (3, "status", Ty::Skip, false),
    ],
};
pub(super) const LOCAL_SAR: Msg = Msg {
    name: "LocalSubjectAccessReview",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "spec", Ty::Msg(&SAR_SPEC), false),
        (3, "status", Ty::Skip, false),
    ],
};
const SELF_RULES_SPEC: Msg = Msg { name: "SelfSubjectRulesReviewSpec", fields: &[(1, "namespace", Ty::Str, false)] };
pub(super) const SELF_RULES_REVIEW: Msg = Msg {
    name: "SelfSubjectRulesReview",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "spec", Ty::Msg(&SELF_RULES_SPEC), false),
        (3, "status", Ty::Skip, false),
    ],
};

const BOUND_OBJECT_REFERENCE: Msg = Msg {
    name: "BoundObjectReference",
    fields: &[
        (1, "kind", Ty::Str, false),
        (2, "apiVersion", Ty::Str, false),
        (3, "name", Ty::Str, false),
        (4, "uid", Ty::Str, false),
    ],
};
const TOKEN_REQUEST_SPEC: Msg = Msg {
    name: "TokenRequestSpec",
    fields: &[
        (1, "audiences", Ty::Str, true),
        (3, "boundObjectRef", Ty::Msg(&BOUND_OBJECT_REFERENCE), false),
        (4, "expirationSeconds", Ty::Int, false),
    ],
};
/// authentication.k8s.io/v1 TokenRequest (`kubectl create token`).
pub(super) const TOKEN_REQUEST: Msg = Msg {
    name: "TokenRequest",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "spec", Ty::Msg(&TOKEN_REQUEST_SPEC), false),
        (3, "status", Ty::Skip, false),
    ],
};
/// authentication.k8s.io/v1 SelfSubjectReview (`kubectl auth whoami`); its
/// status is the server's.
pub(super) const SELF_SUBJECT_REVIEW: Msg = Msg {
    name: "SelfSubjectReview",
    fields: &[(1, "metadata", Ty::Msg(&OBJECT_META), false), (2, "status", Ty::Skip, false)],
};
