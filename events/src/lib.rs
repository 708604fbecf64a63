//! bosun-events: Kubernetes Events as both planes post them.
//!
//! Owns: rendering a core/v1 `Event` (`render`), correlating repeats so a
//! flapping object updates one Event instead of creating thousands
//! (`correlator`: pure dedup, aggregation of similar events, a per-object
//! spam filter, bounded caches), and a thin kube-rs `Recorder` that queues
//! events and writes the correlator's decisions in one background task.
//! Must not: know about pods, controllers or the scheduler (callers pass
//! the involved object, type, reason and message), or fail its callers:
//! events are best effort.

pub mod correlator;
pub mod lru;
mod recorder;

pub use recorder::Recorder;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};

/// Event type of normal, informational events.
pub const NORMAL: &str = "Normal";
/// Event type of warnings.
pub const WARNING: &str = "Warning";

/// Renders a new event (pure), named `<object>.<hex nanoseconds>` like
/// upstream's recorder, in the object's namespace (`default` if none).
pub fn render(
    involved: ObjectReference,
    source: &EventSource,
    type_: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> Event {
    let name = format!("{}.{:x}", involved.name.as_deref().unwrap_or("object"), now.as_nanosecond());
    let component = source.component.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(involved.namespace.clone().unwrap_or_else(|| "default".to_string())),
            ..ObjectMeta::default()
        },
        involved_object: involved,
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some(type_.to_string()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        reporting_instance: Some(source.host.clone().unwrap_or_else(|| component.clone())),
        reporting_component: Some(component),
        action: Some(reason.to_string()),
        source: Some(source.clone()),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_named_after_object_and_time_in_its_namespace() {
        let involved = ObjectReference {
            kind: Some("Pod".to_string()),
            name: Some("web-1".to_string()),
            namespace: Some("shop".to_string()),
            ..ObjectReference::default()
        };
        let now = jiff::Timestamp::from_nanosecond(255).expect("time");
        let source = EventSource { component: Some("default-scheduler".to_string()), host: None };
        let event = render(involved, &source, WARNING, "FailedScheduling", "no", now);
        assert_eq!(event.metadata.name.as_deref(), Some("web-1.ff"));
        assert_eq!(event.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.reason.as_deref(), Some("FailedScheduling"));
        assert_eq!(event.count, Some(1));
        assert_eq!(event.reporting_instance.as_deref(), Some("default-scheduler"));
        assert_eq!(event.source.and_then(|s| s.component).as_deref(), Some("default-scheduler"));
    }
}
