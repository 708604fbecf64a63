//! Table tests of the `Progressing` condition and the progress deadline.

use super::*;

fn at(s: &str) -> jiff::Timestamp {
    s.parse().expect("time")
}

fn cond(status: &str, reason: &str, updated: &str) -> DeploymentCondition {
    DeploymentCondition {
        type_: "Progressing".to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(String::new()),
        last_transition_time: Some(Time(at("2024-01-01T00:00:00Z"))),
        last_update_time: Some(Time(at(updated))),
    }
}

struct Case {
    name: &'static str,
    previous: Option<DeploymentCondition>,
    paused: bool,
    complete: bool,
    created: bool,
    progressed: bool,
    deadline: i32,
    now: &'static str,
    /// status, reason, lastUpdateTime, requeue seconds
    want: (&'static str, &'static str, &'static str, Option<u64>),
}

const T0: &str = "2024-01-01T00:00:10Z";

fn base(name: &'static str, previous: Option<DeploymentCondition>) -> Case {
    Case {
        name,
        previous,
        paused: false,
        complete: false,
        created: false,
        progressed: false,
        deadline: 600,
        now: "2024-01-01T00:01:00Z",
        want: ("", "", "", None),
    }
}

#[test]
fn progressing_condition_table() {
    let updated = || Some(cond("True", "ReplicaSetUpdated", T0));
    let cases = vec![
        Case {
            created: true,
            want: ("True", "NewReplicaSetCreated", "2024-01-01T00:01:00Z", Some(601)),
            ..base("created", updated())
        },
        Case {
            want: ("True", "FoundNewReplicaSet", "2024-01-01T00:01:00Z", Some(601)),
            ..base("first sync finds RS", None)
        },
        Case {
            progressed: true,
            want: ("True", "ReplicaSetUpdated", "2024-01-01T00:01:00Z", Some(601)),
            ..base("progress moves lastUpdateTime", updated())
        },
        Case {
            want: ("True", "ReplicaSetUpdated", T0, Some(551)),
            ..base("no progress keeps time, requeues at deadline", updated())
        },
        Case {
            deadline: 50,
            want: ("True", "ReplicaSetUpdated", T0, Some(1)),
            ..base("deadline exactly now is not exceeded", updated())
        },
        Case {
            deadline: 3,
            want: ("False", TIMED_OUT, "2024-01-01T00:01:00Z", None),
            ..base("stalled past deadline", updated())
        },
        Case {
            deadline: 3,
            want: ("False", TIMED_OUT, T0, None),
            ..base("timed out stays timed out", Some(cond("False", TIMED_OUT, T0)))
        },
        Case {
            deadline: 3,
            progressed: true,
            want: ("True", "ReplicaSetUpdated", "2024-01-01T00:01:00Z", Some(4)),
            ..base("progress after time out recovers", Some(cond("False", TIMED_OUT, T0)))
        },
        Case {
            deadline: 3,
            want: ("True", COMPLETE, T0, None),
            ..base("complete never times out", Some(cond("True", COMPLETE, T0)))
        },
        Case { complete: true, want: ("True", COMPLETE, "2024-01-01T00:01:00Z", None), ..base("completes", updated()) },
        Case { deadline: i32::MAX, want: ("True", "ReplicaSetUpdated", T0, None), ..base("no deadline", updated()) },
        Case { paused: true, want: ("Unknown", PAUSED, "2024-01-01T00:01:00Z", None), ..base("paused", updated()) },
        Case {
            paused: true,
            deadline: 3,
            want: ("Unknown", PAUSED, T0, None),
            ..base("paused stays, no time out", Some(cond("Unknown", PAUSED, T0)))
        },
        Case {
            want: ("Unknown", RESUMED, "2024-01-01T00:01:00Z", Some(601)),
            ..base("resumed", Some(cond("Unknown", PAUSED, T0)))
        },
    ];
    for case in cases {
        let seen = Seen {
            previous: case.previous.as_ref(),
            paused: case.paused,
            complete: case.complete,
            created: case.created,
            progressed: case.progressed,
            deadline_seconds: case.deadline,
            new_name: "web-1",
        };
        let (c, requeue) = progressing(&seen, at(case.now));
        let got =
            (c.status.as_str(), c.reason.as_deref().unwrap_or_default(), c.last_update_time.map(|t| t.0), requeue);
        let (status, reason, updated, secs) = case.want;
        assert_eq!(got, (status, reason, Some(at(updated)), secs.map(Duration::from_secs)), "{}", case.name);
    }
}

#[test]
fn time_out_message_is_what_kubectl_prints_from() {
    let previous = cond("True", "ReplicaSetUpdated", T0);
    let seen = Seen {
        previous: Some(&previous),
        paused: false,
        complete: false,
        created: false,
        progressed: false,
        deadline_seconds: 3,
        new_name: "web-1",
    };
    let (c, _) = progressing(&seen, at("2024-01-01T00:00:14Z"));
    assert_eq!(c.message.as_deref(), Some("ReplicaSet \"web-1\" has timed out progressing."));
    assert_eq!(c.last_transition_time.map(|t| t.0), Some(at("2024-01-01T00:00:14Z")));
}
