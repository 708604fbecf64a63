use super::*;
use crate::render;
use k8s_openapi::api::core::v1::EventSource;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).expect("time")
}

fn pod(name: &str) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".to_string()),
        name: Some(name.to_string()),
        namespace: Some("default".to_string()),
        uid: Some(format!("uid-{name}")),
        ..ObjectReference::default()
    }
}

fn source() -> EventSource {
    EventSource { component: Some("default-scheduler".to_string()), host: None }
}

fn event(object: &str, reason: &str, message: &str, now: Timestamp) -> Event {
    render(pod(object), &source(), "Warning", reason, message, now)
}

/// Runs `events` through a correlator, summarizing each decision as
/// ("create" | "update <count>" | "skip", message).
fn run(config: Config, events: &[(&str, &str, &str, i64)]) -> Vec<(String, String)> {
    let mut correlator = Correlator::new(config);
    events
        .iter()
        .map(|(object, reason, message, secs)| {
            match correlator.correlate(event(object, reason, message, at(*secs)), at(*secs)).action {
                Action::Create(e) => ("create".to_string(), e.message.unwrap_or_default()),
                Action::Update(u) => (format!("update {}", u.count), u.message),
                Action::Skip => ("skip".to_string(), String::new()),
            }
        })
        .collect()
}

fn summary(rows: &[(&str, &str)]) -> Vec<(String, String)> {
    rows.iter().map(|(a, m)| (a.to_string(), m.to_string())).collect()
}

#[test]
fn identical_events_update_one_event_and_others_get_their_own() {
    let got = run(
        Config::default(),
        &[
            ("a", "FailedScheduling", "0/1 nodes", 0),
            ("a", "FailedScheduling", "0/1 nodes", 15),
            ("b", "FailedScheduling", "0/1 nodes", 15),
            ("a", "FailedScheduling", "0/1 nodes", 30),
            ("a", "FailedScheduling", "0/2 nodes", 45),
            ("a", "Scheduled", "0/1 nodes", 60),
        ],
    );
    let want = summary(&[
        ("create", "0/1 nodes"),
        ("update 2", "0/1 nodes"),
        ("create", "0/1 nodes"),
        ("update 3", "0/1 nodes"),
        ("create", "0/2 nodes"),
        ("create", "0/1 nodes"),
    ]);
    assert_eq!(got, want);
}

#[test]
fn updates_keep_the_first_events_name_and_namespace() {
    let mut correlator = Correlator::default();
    let first = correlator.correlate(event("a", "BackOff", "m", at(0)), at(0));
    let Action::Create(created) = first.action else { panic!("create expected") };
    let second = correlator.correlate(event("a", "BackOff", "m", at(9)), at(9));
    let Action::Update(update) = second.action else { panic!("update expected") };
    assert_eq!(Some(update.name.clone()), created.metadata.name);
    assert_eq!(update.namespace, "default");
    assert_eq!(update.last_timestamp, Time(at(9)));
    assert_eq!(update.patch()["count"], 2);
    assert_eq!(first.key, second.key);
}

#[test]
fn messages_differing_only_in_durations_are_identical() {
    let got = run(
        Config::default(),
        &[
            ("a", "BackOff", "back-off 10s restarting failed container=app", 0),
            ("a", "BackOff", "back-off 20s restarting failed container=app", 10),
            ("a", "BackOff", "back-off 5m0s restarting failed container=app", 40),
        ],
    );
    let want = summary(&[
        ("create", "back-off 10s restarting failed container=app"),
        ("update 2", "back-off 20s restarting failed container=app"),
        ("update 3", "back-off 5m0s restarting failed container=app"),
    ]);
    assert_eq!(got, want);
}

#[test]
fn only_duration_tokens_are_normalized() {
    let cases = [
        ("back-off 10s restarting", "back-off # restarting"),
        ("waited 1m30s, then 200ms and 1.5h", "waited #, then # and #"),
        ("0/3 nodes are available: 3 Insufficient cpu.", "0/3 nodes are available: 3 Insufficient cpu."),
        ("Created pod: web-7d9f-x2s4m", "Created pod: web-7d9f-x2s4m"),
        ("Scaled up replica set web-5s from 0 to 10", "Scaled up replica set web-5s from 0 to 10"),
        ("node-1 10 seconds 12sx", "node-1 10 seconds 12sx"),
        ("", ""),
    ];
    for (message, want) in cases {
        assert_eq!(without_durations(message), want, "{message}");
    }
}

#[test]
fn similar_events_are_combined_after_the_threshold() {
    let config = Config { max_similar: 3, ..Config::default() };
    let got = run(
        config,
        &[
            ("a", "SuccessfulCreate", "Created pod: p1", 0),
            ("a", "SuccessfulCreate", "Created pod: p2", 1),
            ("a", "SuccessfulCreate", "Created pod: p3", 2),
            ("a", "SuccessfulCreate", "Created pod: p4", 3),
            ("a", "SuccessfulCreate", "Created pod: p1", 4),
            ("b", "SuccessfulCreate", "Created pod: p9", 5),
        ],
    );
    let want = summary(&[
        ("create", "Created pod: p1"),
        ("create", "Created pod: p2"),
        ("create", "(combined from similar events): Created pod: p3"),
        ("update 2", "(combined from similar events): Created pod: p4"),
        ("update 3", "(combined from similar events): Created pod: p1"),
        ("create", "Created pod: p9"),
    ]);
    assert_eq!(got, want);
}

#[test]
fn similar_events_outside_the_window_start_over() {
    let config = Config { max_similar: 2, similar_window: Duration::from_secs(60), ..Config::default() };
    let got = run(config, &[("a", "R", "one", 0), ("a", "R", "two", 100)]);
    assert_eq!(got, summary(&[("create", "one"), ("create", "two")]));
}

#[test]
fn each_object_gets_a_burst_then_one_event_per_refill_interval() {
    let config = Config { burst: 2, refill_every: Duration::from_secs(60), ..Config::default() };
    let got = run(
        config,
        &[
            ("a", "R", "m", 0),
            ("a", "R", "m", 1),
            ("a", "R", "m", 2),
            ("b", "R", "m", 3),
            ("a", "R", "m", 61),
            ("a", "R", "m", 62),
            ("a", "R", "m", 300),
            ("a", "R", "m", 301),
        ],
    );
    let want = summary(&[
        ("create", "m"),
        ("update 2", "m"),
        ("skip", ""),
        ("create", "m"),
        ("update 3", "m"),
        ("skip", ""),
        ("update 4", "m"),
        ("update 5", "m"),
    ]);
    assert_eq!(got, want);
}

#[test]
fn clocks_going_backwards_and_zero_limits_do_not_panic() {
    let config = Config {
        burst: 0,
        refill_every: Duration::ZERO,
        max_similar: 0,
        similar_window: Duration::ZERO,
        cache_size: 0,
        ignore_numbers: true,
    };
    let got = run(config, &[("a", "R", "m", 10), ("a", "R", "m", 0)]);
    assert_eq!(got, summary(&[("skip", ""), ("skip", "")]));
    let config = Config { refill_every: Duration::ZERO, max_similar: 0, cache_size: 0, ..Config::default() };
    let got = run(config, &[("a", "R", "m", 10), ("a", "R", "m", 0)]);
    assert_eq!(got[0].0, "create");
    assert_eq!(got[1].0, "update 2");
}

#[test]
fn forgotten_events_are_created_again_and_caches_stay_bounded() {
    let mut correlator = Correlator::new(Config { cache_size: 8, ..Config::default() });
    let first = correlator.correlate(event("a", "R", "m", at(0)), at(0));
    correlator.forget(&first.key);
    assert!(matches!(correlator.correlate(event("a", "R", "m", at(1)), at(1)).action, Action::Create(_)));
    for i in 0..100 {
        correlator.correlate(event(&format!("p{i}"), "R", "m", at(2)), at(2));
    }
    assert!(correlator.seen.len() <= 8 && correlator.similar.len() <= 8 && correlator.buckets.len() <= 8);
}

#[test]
fn with_ignore_numbers_standalone_numbers_are_normalized() {
    let cases = [
        ("back-off 20s restarting failed container", "back-off # restarting failed container"),
        ("container exited with code 137, restart count 5", "container exited with code #, restart count #"),
        ("restartCount=5 (was 4)", "restartCount=# (was #)"),
        (
            "Successfully pulled image \"127.0.0.1:5000/busybox:1.36\" in 1.2s. Image size: 1234 bytes.",
            "Successfully pulled image \"127.0.0.1:5000/busybox:1.36\" in #. Image size: # bytes.",
        ),
        ("0/3 nodes are available: 3 Insufficient cpu.", "0/3 nodes are available: # Insufficient cpu."),
        (
            "Back-off restarting failed container app in pod default/crash-1",
            "Back-off restarting failed container app in pod default/crash-1",
        ),
        ("pod 10.244.0.5 on node-2, version 1.2.3", "pod 10.244.0.5 on node-2, version 1.2.3"),
        ("scaled to 10.", "scaled to #."),
    ];
    for (message, want) in cases {
        assert_eq!(without_numbers(message), want, "{message}");
    }
}

#[test]
fn with_ignore_numbers_repeats_differing_in_counts_update_one_event() {
    let config = Config { ignore_numbers: true, ..Config::default() };
    let got = run(
        config,
        &[
            ("a", "BackOff", "back-off 10s restarting failed container app, restart count 1", 0),
            ("a", "BackOff", "back-off 20s restarting failed container app, restart count 2", 10),
            ("a", "BackOff", "back-off 40s restarting failed container app, restart count 3", 30),
        ],
    );
    let want = summary(&[
        ("create", "back-off 10s restarting failed container app, restart count 1"),
        ("update 2", "back-off 20s restarting failed container app, restart count 2"),
        ("update 3", "back-off 40s restarting failed container app, restart count 3"),
    ]);
    assert_eq!(got, want);
}
