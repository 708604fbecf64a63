//! Posting core/v1 Events about objects ("Scheduled", "FailedScheduling",
//! "SuccessfulCreate", ...), the kind `kubectl describe` shows.
//!
//! Owns: rendering an `Event` for an object and creating it. Failures to post
//! an event are logged, never propagated: events are best effort.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};

/// Event type of normal, informational events.
pub const NORMAL: &str = "Normal";
/// Event type of warnings.
pub const WARNING: &str = "Warning";

/// Posts events on behalf of one component.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: &'static str,
}

impl Recorder {
    /// A recorder whose events name `component` as their source.
    pub fn new(client: Client, component: &'static str) -> Self {
        Recorder { client, component }
    }

    /// Posts an event about `obj`; logs and swallows any failure.
    pub async fn publish<K>(&self, obj: &K, type_: &str, reason: &str, message: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        let event = render(reference(obj), self.component, type_, reason, message, jiff::Timestamp::now());
        let namespace = event.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(error) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(component = self.component, reason, %error, "could not post event");
        }
    }
}

/// An `ObjectReference` to `obj`.
pub fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).to_string()),
        kind: Some(K::kind(&()).to_string()),
        name: Some(obj.name_any()),
        namespace: obj.namespace(),
        uid: obj.uid(),
        resource_version: obj.resource_version(),
        ..ObjectReference::default()
    }
}

/// Renders the event (pure). Its name is `<object>.<hex nanoseconds>`, like
/// upstream's recorder, so repeated events never collide.
pub fn render(
    involved: ObjectReference,
    component: &str,
    type_: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> Event {
    let name = format!("{}.{:x}", involved.name.as_deref().unwrap_or("object"), now.as_nanosecond());
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
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(component.to_string()),
        action: Some(reason.to_string()),
        source: Some(EventSource { component: Some(component.to_string()), host: None }),
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
        let event = render(involved, "default-scheduler", WARNING, "FailedScheduling", "no", now);
        assert_eq!(event.metadata.name.as_deref(), Some("web-1.ff"));
        assert_eq!(event.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.reason.as_deref(), Some("FailedScheduling"));
        assert_eq!(event.source.and_then(|s| s.component).as_deref(), Some("default-scheduler"));
    }
}
