//! Field-number tables of batch/v1 Job and CronJob (from upstream's
//! `k8s.io/api/batch/v1/generated.proto`): what `kubectl create job`,
//! `kubectl create cronjob` and `kubectl create job --from=cronjob/...` send.
//! Status is skipped (a create carries none).

use super::tables::{LABEL_SELECTOR, OBJECT_META, POD_TEMPLATE};
use super::{Msg, Ty};

const JOB_SPEC: Msg = Msg {
    name: "JobSpec",
    fields: &[
        (1, "parallelism", Ty::Int, false),
        (2, "completions", Ty::Int, false),
        (3, "activeDeadlineSeconds", Ty::Int, false),
        (4, "selector", Ty::Msg(&LABEL_SELECTOR), false),
        (5, "manualSelector", Ty::Bool, false),
        (6, "template", Ty::Msg(&POD_TEMPLATE), false),
        (7, "backoffLimit", Ty::Int, false),
        (8, "ttlSecondsAfterFinished", Ty::Int, false),
        (9, "completionMode", Ty::Str, false),
        (10, "suspend", Ty::Bool, false),
        (14, "podReplacementPolicy", Ty::Str, false),
        (15, "managedBy", Ty::Str, false),
    ],
};
/// batch/v1 Job.
pub(super) const JOB: Msg = Msg {
    name: "Job",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "spec", Ty::Msg(&JOB_SPEC), false),
        (3, "status", Ty::Skip, false),
    ],
};
const JOB_TEMPLATE: Msg = Msg {
    name: "JobTemplateSpec",
    fields: &[(1, "metadata", Ty::Msg(&OBJECT_META), false), (2, "spec", Ty::Msg(&JOB_SPEC), false)],
};
const CRON_JOB_SPEC: Msg = Msg {
    name: "CronJobSpec",
    fields: &[
        (1, "schedule", Ty::Str, false),
        (2, "startingDeadlineSeconds", Ty::Int, false),
        (3, "concurrencyPolicy", Ty::Str, false),
        (4, "suspend", Ty::Bool, false),
        (5, "jobTemplate", Ty::Msg(&JOB_TEMPLATE), false),
        (6, "successfulJobsHistoryLimit", Ty::Int, false),
        (7, "failedJobsHistoryLimit", Ty::Int, false),
        (8, "timeZone", Ty::Str, false),
    ],
};
/// batch/v1 CronJob.
pub(super) const CRON_JOB: Msg = Msg {
    name: "CronJob",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "spec", Ty::Msg(&CRON_JOB_SPEC), false),
        (3, "status", Ty::Skip, false),
    ],
};
