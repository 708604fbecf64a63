//! Field-number tables of policy/v1 PodDisruptionBudget and Eviction (from
//! upstream's `k8s.io/api/policy/v1/generated.proto` and the DeleteOptions
//! of `apimachinery/pkg/apis/meta/v1/generated.proto`): what
//! `kubectl create poddisruptionbudget` and `kubectl drain` send. Status is
//! skipped (a create carries none).

use super::tables::{LABEL_SELECTOR, OBJECT_META};
use super::{Msg, Ty};

const PDB_SPEC: Msg = Msg {
    name: "PodDisruptionBudgetSpec",
    fields: &[
        (1, "minAvailable", Ty::IntOrString, false),
        (2, "selector", Ty::Msg(&LABEL_SELECTOR), false),
        (3, "maxUnavailable", Ty::IntOrString, false),
        (4, "unhealthyPodEvictionPolicy", Ty::Str, false),
    ],
};
/// policy/v1 PodDisruptionBudget.
pub(super) const POD_DISRUPTION_BUDGET: Msg = Msg {
    name: "PodDisruptionBudget",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "spec", Ty::Msg(&PDB_SPEC), false),
        (3, "status", Ty::Skip, false),
    ],
};
const PRECONDITIONS: Msg =
    Msg { name: "Preconditions", fields: &[(1, "uid", Ty::Str, false), (2, "resourceVersion", Ty::Str, false)] };
const DELETE_OPTIONS: Msg = Msg {
    name: "DeleteOptions",
    fields: &[
        (1, "gracePeriodSeconds", Ty::OptInt, false),
        (2, "preconditions", Ty::Msg(&PRECONDITIONS), false),
        (3, "orphanDependents", Ty::Bool, false),
        (4, "propagationPolicy", Ty::Str, false),
        (5, "dryRun", Ty::Str, true),
        (6, "ignoreStoreReadErrorWithClusterBreakingPotential", Ty::Bool, false),
    ],
};
/// policy/v1 Eviction.
pub(super) const EVICTION: Msg = Msg {
    name: "Eviction",
    fields: &[(1, "metadata", Ty::Msg(&OBJECT_META), false), (2, "deleteOptions", Ty::Msg(&DELETE_OPTIONS), false)],
};
