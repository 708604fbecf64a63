//! The apiserver's request series: what a request is labelled with
//! ([`RequestLabels`], decided from the request's `Call`, pure) and the
//! handle the pipeline records into ([`ApiMetrics`]).

use std::time::Duration;

use axum::http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::apiserver::http::call::{Call, Class, Verb};

/// What a request is counted as. Requests refused before their call is
/// decided (an unknown path, a bad method) keep the method's verb and an
/// empty resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// Upstream's verb: `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`,
    /// `DELETE`, `DELETECOLLECTION`, `CONNECT`.
    pub verb: &'static str,
    /// The resource's plural name (empty for non-resource paths).
    pub resource: &'static str,
    /// The subresource (empty for none).
    pub subresource: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabels {
    verb: &'static str,
    resource: &'static str,
    subresource: &'static str,
    code: u16,
}

/// A request's verb as upstream names it, from its method alone.
pub fn verb_of(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

impl RequestLabels {
    /// Labels of a request known only by its method.
    pub fn of_method(method: &Method) -> Self {
        Self { verb: verb_of(method), resource: "", subresource: "" }
    }

    /// Labels of a decided call.
    pub fn of_call(call: &Call) -> Self {
        let Call::Resource(verb, target) = call else {
            return Self { verb: "GET", resource: "", subresource: "" };
        };
        let verb = match verb {
            Verb::Get | Verb::GetScale | Verb::Log => "GET",
            Verb::List => "LIST",
            Verb::Watch => "WATCH",
            Verb::Create | Verb::Bind | Verb::CreateToken | Verb::Evict => "POST",
            Verb::Update(_) | Verb::UpdateScale | Verb::Finalize => "PUT",
            Verb::Patch(_) | Verb::PatchScale => "PATCH",
            Verb::Delete => "DELETE",
            Verb::DeleteCollection => "DELETECOLLECTION",
            Verb::Stream(_) => "CONNECT",
        };
        Self { verb, resource: target.info.plural, subresource: target.sub.map(|s| s.path()).unwrap_or_default() }
    }
}

type NewHistogram = fn() -> Histogram;

fn request_buckets() -> Histogram {
    // 1 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// What the request pipeline records.
#[derive(Clone, Debug)]
pub struct ApiMetrics {
    requests: Family<CodeLabels, Counter>,
    duration: Family<RequestLabels, Histogram, NewHistogram>,
    inflight: Family<[(&'static str, &'static str); 1], Gauge>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(request_buckets),
            inflight: Family::default(),
        }
    }
}

/// Holds a request in `apiserver_current_inflight_requests` until dropped.
#[derive(Debug)]
pub struct InflightGuard(Option<Gauge>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if let Some(gauge) = &self.0 {
            gauge.dec();
        }
    }
}

impl ApiMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "apiserver_request",
            "Requests, by verb, resource, subresource and HTTP response code",
            self.requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency in seconds (to the response head), by verb, resource and subresource",
            self.duration.clone(),
        );
        registry.register(
            "apiserver_current_inflight_requests",
            "Requests holding an in-flight slot, by kind (readOnly, mutating)",
            self.inflight.clone(),
        );
    }

    /// One request answered with `code` after `elapsed`.
    pub fn record_request(&self, labels: RequestLabels, code: u16, elapsed: Duration) {
        let RequestLabels { verb, resource, subresource } = labels;
        self.requests.get_or_create(&CodeLabels { verb, resource, subresource, code }).inc();
        self.duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// Counts a request of `class` in flight until the guard drops
    /// (exempt requests, which hold no slot, are not counted).
    pub fn inflight(&self, class: Class) -> InflightGuard {
        let kind = match class {
            Class::Exempt => return InflightGuard(None),
            Class::ReadOnly => "readOnly",
            Class::Mutating => "mutating",
        };
        let gauge = self.inflight.get_or_create_owned(&[("request_kind", kind)]);
        gauge.inc();
        InflightGuard(Some(gauge))
    }
}

/// `apiserver_longrunning_requests{verb="WATCH"}`: the watches being
/// served, read at scrape from the apiserver's own count.
#[derive(Debug)]
pub struct OpenWatches(pub std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl prometheus_client::collector::Collector for OpenWatches {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        let open = self.0.load(std::sync::atomic::Ordering::Relaxed);
        let gauge = prometheus_client::metrics::gauge::ConstGauge::new(i64::try_from(open).unwrap_or(i64::MAX));
        let help = "Long-running requests being served, by verb";
        let mut metric =
            encoder.encode_descriptor("apiserver_longrunning_requests", help, None, gauge.metric_type())?;
        let labels = [("verb", "WATCH")];
        gauge.encode(metric.encode_family(&labels)?)
    }
}
