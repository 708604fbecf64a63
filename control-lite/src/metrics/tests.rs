//! Labels decided from calls, and what the scrape shows.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use prometheus_client::registry::Registry;

use super::*;
use crate::apiserver::http::call::{Call, Class};
use crate::apiserver::http::path::{parse_path, Route};

fn labels(method: Method, path: &str, watch: bool) -> RequestLabels {
    let route = parse_path(path).expect("a served path");
    RequestLabels::of_call(&Call::decide(&method, route, watch).expect("an allowed call"))
}

fn label(verb: &'static str, resource: &'static str, subresource: &'static str) -> RequestLabels {
    RequestLabels { verb, resource, subresource }
}

#[test]
fn requests_are_labelled_with_upstream_verbs_resources_and_subresources() {
    let cases = [
        (Method::GET, "/api/v1/namespaces/default/pods/web", false, label("GET", "pods", "")),
        (Method::GET, "/api/v1/namespaces/default/pods", false, label("LIST", "pods", "")),
        (Method::GET, "/api/v1/pods", true, label("WATCH", "pods", "")),
        (Method::POST, "/apis/apps/v1/namespaces/default/deployments", false, label("POST", "deployments", "")),
        (Method::PUT, "/api/v1/namespaces/default/pods/web/status", false, label("PUT", "pods", "status")),
        (Method::PATCH, "/api/v1/nodes/n1/status", false, label("PATCH", "nodes", "status")),
        (Method::POST, "/api/v1/namespaces/default/pods/web/binding", false, label("POST", "pods", "binding")),
        (Method::DELETE, "/api/v1/namespaces/default/pods", false, label("DELETECOLLECTION", "pods", "")),
        (Method::GET, "/api/v1/namespaces/default/pods/web/exec", false, label("CONNECT", "pods", "exec")),
        (Method::GET, "/healthz", false, label("GET", "", "")),
    ];
    for (method, path, watch, want) in cases {
        assert_eq!(labels(method.clone(), path, watch), want, "{method} {path} watch={watch}");
    }
    assert_eq!(RequestLabels::of_method(&Method::DELETE), label("DELETE", "", ""));
    assert_eq!(parse_path("/metrics"), Some(Route::Metrics));
}

#[test]
fn scrape_shows_requests_by_code_inflight_store_and_scheduler() {
    let mut registry = Registry::default();
    let metrics = register(&mut registry);
    registry.register_collector(Box::new(OpenWatches(Arc::new(AtomicUsize::new(2)))));
    let list = label("LIST", "pods", "");
    metrics.api.record_request(list, 200, Duration::from_millis(3));
    metrics.api.record_request(list, 200, Duration::from_millis(5));
    metrics.api.record_request(label("POST", "pods", ""), 409, Duration::from_millis(2));
    let reading = metrics.api.inflight(Class::ReadOnly);
    let exempt = metrics.api.inflight(Class::Exempt);
    metrics.store_commit.observe(0.002);
    metrics.scheduler.record_attempt(ScheduleResult::Scheduled, Duration::from_millis(4));
    metrics.scheduler.record_attempt(ScheduleResult::Unschedulable, Duration::from_millis(1));
    let text = bosun_metrics::render(&registry);
    for want in [
        "apiserver_request_total{verb=\"LIST\",resource=\"pods\",subresource=\"\",code=\"200\"} 2",
        "apiserver_request_total{verb=\"POST\",resource=\"pods\",subresource=\"\",code=\"409\"} 1",
        "# TYPE apiserver_request_duration_seconds histogram",
        "apiserver_request_duration_seconds_count{verb=\"LIST\",resource=\"pods\",subresource=\"\"} 2",
        "apiserver_current_inflight_requests{request_kind=\"readOnly\"} 1",
        "apiserver_longrunning_requests{verb=\"WATCH\"} 2",
        "bosun_store_commit_duration_seconds_count 1",
        "scheduler_schedule_attempts_total{result=\"scheduled\"} 1",
        "scheduler_schedule_attempts_total{result=\"unschedulable\"} 1",
        "scheduler_scheduling_attempt_duration_seconds_count{result=\"scheduled\"} 1",
        "process_open_fds ",
    ] {
        assert!(text.contains(want), "{want:?} missing from\n{text}");
    }
    drop((reading, exempt));
    let text = bosun_metrics::render(&registry);
    assert!(text.contains("apiserver_current_inflight_requests{request_kind=\"readOnly\"} 0"), "{text}");
    assert!(!text.contains("request_kind=\"exempt\""), "{text}");
}
