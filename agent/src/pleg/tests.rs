use std::collections::HashMap;

use bosun_proto::containerd::{events, types::Envelope};
use prost::Message as _;

use super::*;

fn envelope(namespace: &str, topic: &str, payload: Vec<u8>) -> Envelope {
    Envelope {
        timestamp: None,
        namespace: namespace.to_string(),
        topic: topic.to_string(),
        event: Some(prost_types::Any { type_url: String::new(), value: payload }),
    }
}

fn exit(container_id: &str, id: &str) -> Vec<u8> {
    events::TaskExit { container_id: container_id.into(), id: id.into(), ..Default::default() }.encode_to_vec()
}

fn event(id: &str, change: Change) -> ContainerEvent {
    ContainerEvent { container_id: id.to_string(), change }
}

#[test]
fn decodes_the_four_task_topics_of_the_cri_namespace() {
    let start = events::TaskStart { container_id: "c1".into(), pid: 7 }.encode_to_vec();
    let oom = events::TaskOom { container_id: "c1".into() }.encode_to_vec();
    let delete = events::TaskDelete { container_id: "c1".into(), id: "c1".into(), ..Default::default() };
    let cases = [
        (envelope("k8s.io", "/tasks/start", start), Some(Change::Started)),
        (envelope("k8s.io", "/tasks/exit", exit("c1", "c1")), Some(Change::Exited)),
        (envelope("k8s.io", "/tasks/exit", exit("c1", "")), Some(Change::Exited)),
        (envelope("k8s.io", "/tasks/oom", oom), Some(Change::Oom)),
        (envelope("k8s.io", "/tasks/delete", delete.encode_to_vec()), Some(Change::Deleted)),
    ];
    for (envelope, want) in cases {
        assert_eq!(decode(&envelope).map(|e| e.change), want, "{}", envelope.topic);
        assert_eq!(decode(&envelope).map(|e| e.container_id), Some("c1".to_string()));
    }
}

#[test]
fn skips_exec_exits_other_namespaces_other_topics_and_garbage() {
    let skipped = [
        envelope("k8s.io", "/tasks/exit", exit("c1", "exec-42")),
        envelope("default", "/tasks/exit", exit("c1", "c1")),
        envelope("k8s.io", "/tasks/exec-started", exit("c1", "c1")),
        envelope("k8s.io", "/tasks/exit", vec![0xff, 0xff, 0xff]),
        envelope("k8s.io", "/tasks/exit", exit("", "")),
        Envelope { event: None, ..envelope("k8s.io", "/tasks/exit", Vec::new()) },
    ];
    for envelope in skipped {
        assert_eq!(decode(&envelope), None, "{envelope:?}");
    }
}

#[test]
fn filters_name_each_topic_in_the_cri_namespace() {
    assert_eq!(
        filters(),
        vec![
            "topic==\"/tasks/start\",namespace==k8s.io",
            "topic==\"/tasks/exit\",namespace==k8s.io",
            "topic==\"/tasks/oom\",namespace==k8s.io",
            "topic==\"/tasks/delete\",namespace==k8s.io",
        ]
    );
}

#[test]
fn routes_known_containers_to_their_pod_and_unknown_ones_to_a_relist() {
    let owners: HashMap<String, String> = [("c1".to_string(), "pod-a".to_string())].into();
    assert_eq!(
        route(&event("c1", Change::Exited), &owners),
        Route::WakeWhenExited { uid: "pod-a".into(), container_id: "c1".into() }
    );
    for change in [Change::Started, Change::Oom, Change::Deleted] {
        assert_eq!(route(&event("c1", change), &owners), Route::Wake("pod-a".into()));
    }
    assert_eq!(route(&event("sandbox-9", Change::Started), &owners), Route::Relist);
}

#[test]
fn event_latency_is_receipt_minus_containerd_stamp() {
    let at = |seconds, nanos| Envelope {
        timestamp: Some(prost_types::Timestamp { seconds, nanos }),
        ..envelope("k8s.io", "/tasks/exit", Vec::new())
    };
    let now = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_001, 500_000_000);
    let latency = |e: &Envelope| event_latency(e, now).map(|d| d.as_millis());
    assert_eq!(latency(&at(1_700_000_001, 250_000_000)), Some(250));
    // A stamp from the future (clock skew) is no latency, not a panic.
    assert_eq!(latency(&at(1_700_000_009, 0)), Some(0));
    // Invalid or missing stamps are not measured.
    assert_eq!(latency(&at(-1, 0)), None);
    assert_eq!(latency(&at(1, -5)), None);
    assert_eq!(latency(&at(1, 1_000_000_000)), None);
    assert_eq!(latency(&envelope("k8s.io", "/tasks/exit", Vec::new())), None);
}
