//! Posting core/v1 Events about objects ("Scheduled", "FailedScheduling",
//! "SuccessfulCreate", ...), the kind `kubectl describe` shows.
//!
//! Owns: naming the component and referencing the object. Correlation
//! (repeats update one Event; similar ones are combined; spam is
//! rate-limited) and posting live in `bosun-events`, shared with the agent.
//! Events are best effort: queued, never awaited, never an error.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{Client, Resource, ResourceExt};

pub use bosun_events::{NORMAL, WARNING};

/// Posts events on behalf of one component.
#[derive(Clone, Debug)]
pub struct Recorder {
    inner: bosun_events::Recorder,
}

impl Recorder {
    /// A recorder whose events name `component` as their source. Must be
    /// called inside a tokio runtime (it starts the posting task).
    pub fn new(client: Client, component: &'static str) -> Self {
        Recorder { inner: bosun_events::Recorder::new(client, component, None) }
    }

    /// Queues an event about `obj`.
    pub async fn publish<K>(&self, obj: &K, type_: &str, reason: &str, message: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        self.record(reference(obj), type_, reason, message);
    }

    /// Queues an event about the object `involved` refers to.
    pub fn record(&self, involved: ObjectReference, type_: &str, reason: &str, message: &str) {
        self.inner.record(involved, type_, reason, message);
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
