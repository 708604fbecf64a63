//! Table columns and cells of Jobs and CronJobs, as kubectl's printers make
//! them (Job: NAME STATUS COMPLETIONS DURATION AGE; CronJob: NAME SCHEDULE
//! TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE; wide adds containers, images
//! and the selector). Columns and cells of one kind sit side by side here.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::duration::human_duration;
use super::selectors::LabelSelector;

/// One column: (name, type, priority, description).
pub type Column = (&'static str, &'static str, u8, &'static str);

const NAME: Column = ("Name", "string", 0, "Name must be unique within a namespace.");
const AGE: Column =
    ("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created.");
const CONTAINERS: Column = ("Containers", "string", 1, "Names of each container in the template.");
const IMAGES: Column = ("Images", "string", 1, "Images referenced by each container in the template.");
const SELECTOR: Column = ("Selector", "string", 1, "Label selector for pods.");

/// Columns of a Job.
pub fn job_columns() -> Vec<Column> {
    vec![
        NAME,
        ("Status", "string", 0, "Status of the job."),
        ("Completions", "string", 0, "The completion status of the job."),
        ("Duration", "string", 0, "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ]
}

/// Columns of a CronJob.
pub fn cronjob_columns() -> Vec<Column> {
    vec![
        NAME,
        ("Schedule", "string", 0, "The schedule in Cron format."),
        ("Timezone", "string", 0, "The time zone the schedule is evaluated in."),
        ("Suspend", "boolean", 0, "Whether later executions are suspended."),
        ("Active", "integer", 0, "Number of running jobs."),
        ("Last Schedule", "string", 0, "When the last job was scheduled."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ]
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn i(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn time(v: &Value, ptr: &str) -> Option<Timestamp> {
    v.pointer(ptr).and_then(Value::as_str).and_then(|t| t.parse().ok())
}

fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    t.map_or_else(|| "<unknown>".into(), |t| human_duration(now.as_second().saturating_sub(t.as_second())))
}

fn has_condition(job: &Value, type_: &str) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| s(c, "/type") == type_ && s(c, "/status") == "True")
}

/// (containers, images, selector) of the pod template under `spec`.
fn template_cells(spec: &Value) -> [Value; 3] {
    let containers = spec.pointer("/template/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
    let selector = LabelSelector::from_api(spec.pointer("/selector").unwrap_or(&Value::Null)).render();
    let selector = if selector.is_empty() { "<none>".to_string() } else { selector };
    [json!(names.join(",")), json!(images.join(",")), json!(selector)]
}

/// Upstream `printJob`'s status word.
pub fn job_status(job: &Value) -> &'static str {
    if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if job.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

/// Cells of a Job row.
pub fn job_cells(job: &Value, age: Value, now: Timestamp) -> Vec<Value> {
    let succeeded = i(job, "/status/succeeded");
    let completions = match (job.pointer("/spec/completions").and_then(Value::as_i64), i(job, "/spec/parallelism")) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, p) if p > 1 => format!("{succeeded}/1 of {p}"),
        (None, _) => format!("{succeeded}/1"),
    };
    let duration = match (time(job, "/status/startTime"), time(job, "/status/completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => since(Some(start), now),
        (Some(start), Some(end)) => human_duration(end.as_second().saturating_sub(start.as_second())),
    };
    let [containers, images, selector] = template_cells(job.pointer("/spec").unwrap_or(&Value::Null));
    vec![
        json!(s(job, "/metadata/name")),
        json!(job_status(job)),
        json!(completions),
        json!(duration),
        age,
        containers,
        images,
        selector,
    ]
}

/// Cells of a CronJob row.
pub fn cronjob_cells(cj: &Value, age: Value, now: Timestamp) -> Vec<Value> {
    let zone = match s(cj, "/spec/timeZone") {
        "" => "<none>",
        z => z,
    };
    let suspend = if cj.pointer("/spec/suspend") == Some(&Value::Bool(true)) { "True" } else { "False" };
    let active = cj.pointer("/status/active").and_then(Value::as_array).map_or(0, Vec::len);
    let last = match time(cj, "/status/lastScheduleTime") {
        Some(t) => since(Some(t), now),
        None => "<none>".into(),
    };
    let [containers, images, selector] = template_cells(cj.pointer("/spec/jobTemplate/spec").unwrap_or(&Value::Null));
    vec![
        json!(s(cj, "/metadata/name")),
        json!(s(cj, "/spec/schedule")),
        json!(zone),
        json!(suspend),
        json!(active),
        json!(last),
        age,
        containers,
        images,
        selector,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T10:10:00Z".parse().expect("time")
    }

    #[test]
    fn job_rows_like_kubectl() {
        let cases = [
            (
                json!({"spec": {"completions": 3, "parallelism": 2}, "status": {"succeeded": 1,
                "startTime": "2026-01-01T10:09:00Z"}}),
                ["Running", "1/3", "60s"],
            ),
            (
                json!({"spec": {"completions": 1}, "status": {"succeeded": 1, "startTime": "2026-01-01T10:00:00Z",
                "completionTime": "2026-01-01T10:00:07Z", "conditions": [{"type": "Complete", "status": "True"}]}}),
                ["Complete", "1/1", "7s"],
            ),
            (
                json!({"spec": {"parallelism": 4}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}),
                ["Failed", "0/1 of 4", ""],
            ),
            (
                json!({"spec": {"completions": 2, "suspend": true}, "status": {"conditions": [
                {"type": "Suspended", "status": "True"}]}}),
                ["Suspended", "0/2", ""],
            ),
        ];
        for (job, [status, completions, duration]) in cases {
            let c = job_cells(&job, json!("1m"), now());
            assert_eq!(
                (c[1].as_str(), c[2].as_str(), c[3].as_str()),
                (Some(status), Some(completions), Some(duration))
            );
            assert_eq!(c.len(), job_columns().len());
        }
    }

    #[test]
    fn cronjob_row_like_kubectl() {
        let cj = json!({"metadata": {"name": "tick"}, "spec": {"schedule": "*/1 * * * *", "suspend": false,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "tick-1"}], "lastScheduleTime": "2026-01-01T10:09:00Z"}});
        let c = cronjob_cells(&cj, json!("5m"), now());
        let want = json!(["tick", "*/1 * * * *", "<none>", "False", 1, "60s", "5m", "c", "busybox", "<none>"]);
        assert_eq!(Value::from(c.clone()), want);
        assert_eq!(c.len(), cronjob_columns().len());
    }
}
