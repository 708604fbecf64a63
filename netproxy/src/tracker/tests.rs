//! Change tracker behaviour on sequences of watch events.

use super::*;
use crate::model::{Endpoint, SERVICE_NAME_LABEL};
use serde_json::json;
use std::net::Ipv4Addr;

fn svc(name: &str, cluster_ip: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": name},
        "spec": {"clusterIP": cluster_ip, "ports": [{"port": 80}]}
    }))
    .expect("valid Service json")
}

fn slice(name: &str, service: &str, ips: &[&str]) -> EndpointSlice {
    let endpoints: Vec<_> = ips.iter().map(|ip| json!({"addresses": [ip]})).collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": name, "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": "IPv4",
        "ports": [{"port": 8080}],
        "endpoints": endpoints
    }))
    .expect("valid EndpointSlice json")
}

fn name(service: &str) -> ServiceName {
    ServiceName::new("ns", service)
}

fn endpoint_ips(tracker: &ChangeTracker, service: &str) -> Vec<Ipv4Addr> {
    tracker
        .service_ports(&name(service))
        .into_iter()
        .flat_map(|(_, state)| state.endpoints)
        .map(|Endpoint { ip, .. }| ip)
        .collect()
}

fn synced_tracker() -> ChangeTracker {
    let mut tracker = ChangeTracker::new("");
    for event in [Event::Init, Event::InitDone] {
        tracker.service_event(event);
    }
    for event in [Event::Init, Event::InitDone] {
        tracker.slice_event(event);
    }
    tracker
}

fn dirty_names(tracker: &mut ChangeTracker) -> Vec<String> {
    tracker.take_dirty().into_iter().map(|n| n.name).collect()
}

#[test]
fn is_synced_only_after_both_initial_lists() {
    let mut tracker = ChangeTracker::new("");
    tracker.service_event(Event::Init);
    tracker.service_event(Event::InitApply(svc("a", "10.96.0.1")));
    assert!(!tracker.is_synced());
    tracker.service_event(Event::InitDone);
    assert!(!tracker.is_synced());
    tracker.slice_event(Event::Init);
    tracker.slice_event(Event::InitDone);
    assert!(tracker.is_synced());
    assert_eq!(dirty_names(&mut tracker), vec!["a"]);
}

#[test]
fn service_and_slice_events_mark_the_service_dirty_once_per_real_change() {
    let mut tracker = synced_tracker();
    tracker.service_event(Event::Apply(svc("a", "10.96.0.1")));
    tracker.slice_event(Event::Apply(slice("a-1", "a", &["10.244.0.2"])));
    assert_eq!(dirty_names(&mut tracker), vec!["a"]);
    assert_eq!(endpoint_ips(&tracker, "a"), vec![Ipv4Addr::new(10, 244, 0, 2)]);

    let mut relabelled = svc("a", "10.96.0.1");
    relabelled.metadata.labels = Some([("team".to_string(), "x".to_string())].into());
    tracker.service_event(Event::Apply(relabelled));
    tracker.slice_event(Event::Apply(slice("a-1", "a", &["10.244.0.2"])));
    assert!(!tracker.has_changes(), "no proxy-relevant change");
}

#[test]
fn slice_moving_to_another_service_dirties_both() {
    let mut tracker = synced_tracker();
    tracker.service_event(Event::Apply(svc("a", "10.96.0.1")));
    tracker.service_event(Event::Apply(svc("b", "10.96.0.2")));
    tracker.slice_event(Event::Apply(slice("s", "a", &["10.244.0.2"])));
    tracker.take_dirty();
    tracker.slice_event(Event::Apply(slice("s", "b", &["10.244.0.2"])));
    assert_eq!(dirty_names(&mut tracker), vec!["a", "b"]);
    assert!(endpoint_ips(&tracker, "a").is_empty());
    assert_eq!(endpoint_ips(&tracker, "b").len(), 1);
    assert_eq!(tracker.slice_count(&name("a")), 0);
}

#[test]
fn deleting_slice_or_turning_service_headless_removes_endpoints() {
    let mut tracker = synced_tracker();
    tracker.service_event(Event::Apply(svc("a", "10.96.0.1")));
    tracker.slice_event(Event::Apply(slice("a-1", "a", &["10.244.0.2"])));
    tracker.slice_event(Event::Apply(slice("a-2", "a", &["10.244.0.3"])));
    assert_eq!(endpoint_ips(&tracker, "a").len(), 2);
    tracker.take_dirty();
    tracker.slice_event(Event::Delete(slice("a-1", "a", &[])));
    assert_eq!(dirty_names(&mut tracker), vec!["a"]);
    assert_eq!(endpoint_ips(&tracker, "a"), vec![Ipv4Addr::new(10, 244, 0, 3)]);
    tracker.service_event(Event::Apply(svc("a", "None")));
    assert_eq!(dirty_names(&mut tracker), vec!["a"]);
    assert!(tracker.service_ports(&name("a")).is_empty(), "headless is not proxied");
}

#[test]
fn relist_replaces_the_cache_atomically_and_dirties_old_and_new() {
    let mut tracker = synced_tracker();
    tracker.service_event(Event::Apply(svc("old", "10.96.0.1")));
    tracker.slice_event(Event::Apply(slice("old-1", "old", &["10.244.0.2"])));
    tracker.take_dirty();
    tracker.service_event(Event::Init);
    tracker.service_event(Event::InitApply(svc("new", "10.96.0.2")));
    assert_eq!(tracker.service_ports(&name("old")).len(), 1, "old view kept until InitDone");
    tracker.service_event(Event::InitDone);
    assert_eq!(dirty_names(&mut tracker), vec!["new", "old"]);
    assert!(tracker.service_ports(&name("old")).is_empty());
    tracker.slice_event(Event::Init);
    tracker.slice_event(Event::InitApply(slice("new-1", "new", &["10.244.0.9"])));
    tracker.slice_event(Event::InitDone);
    assert_eq!(dirty_names(&mut tracker), vec!["new", "old"]);
    assert_eq!(endpoint_ips(&tracker, "new"), vec![Ipv4Addr::new(10, 244, 0, 9)]);
    tracker.mark_all_dirty();
    assert_eq!(dirty_names(&mut tracker), vec!["new"]);
}
