//! Kubernetes Events about pods and the node (`Pulling`, `Pulled`, `Created`,
//! `Started`, `Killing`, `BackOff`, `Failed`, ...). A repeat of the same
//! (object, reason, message) bumps `count` and `lastTimestamp` on the
//! existing Event instead of creating a new one.
//!
//! Must not: fail the caller. Events are best effort; errors are logged.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Normal.
    Normal,
    /// Warning.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// Reference to a pod, optionally to one of its containers.
pub fn pod_reference(pod: &Pod, container: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path: container.map(|c| format!("spec.containers{{{c}}}")),
    }
}

/// Where events go.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    /// Records one event about `object`.
    async fn record(&self, object: &ObjectReference, type_: EventType, reason: &str, message: &str);
}

#[derive(Debug, Clone)]
struct Posted {
    name: String,
    count: i32,
}

/// Posts core/v1 Events through the API, aggregating repeats.
pub struct KubeEvents {
    client: kube::Client,
    host: String,
    posted: Mutex<HashMap<String, Posted>>,
}

/// Bound on remembered events (older ones are forgotten, so a repeat much
/// later creates a new Event).
const MAX_REMEMBERED: usize = 4096;

impl KubeEvents {
    /// Recorder posting as component `kubelet` on `host`.
    pub fn new(client: kube::Client, host: &str) -> Self {
        Self { client, host: host.to_string(), posted: Mutex::new(HashMap::new()) }
    }

    fn remembered(&self, key: &str) -> Option<Posted> {
        self.posted.lock().ok()?.get(key).cloned()
    }

    fn remember(&self, key: String, posted: Posted) {
        if let Ok(mut map) = self.posted.lock() {
            if map.len() >= MAX_REMEMBERED {
                map.clear();
            }
            map.insert(key, posted);
        }
    }

    async fn post(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        let key = format!(
            "{}|{}|{}|{reason}|{message}",
            object.uid.as_deref().unwrap_or_default(),
            object.field_path.as_deref().unwrap_or_default(),
            type_.as_str()
        );
        let now = Time(Timestamp::now());
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Some(mut seen) = self.remembered(&key) {
            seen.count += 1;
            let patch = serde_json::json!({ "count": seen.count, "lastTimestamp": now });
            match events.patch(&seen.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    self.remember(key, seen);
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let name = format!("{}.{:x}", object.name.as_deref().unwrap_or("object"), Timestamp::now().as_nanosecond());
        let event = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace.clone()), ..Default::default() },
            involved_object: object.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(type_.as_str().to_string()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            source: Some(EventSource { component: Some("kubelet".into()), host: Some(self.host.clone()) }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.host.clone()),
            ..Default::default()
        };
        events.create(&PostParams::default(), &event).await?;
        self.remember(key, Posted { name, count: 1 });
        Ok(())
    }
}

#[async_trait::async_trait]
impl EventSink for KubeEvents {
    async fn record(&self, object: &ObjectReference, type_: EventType, reason: &str, message: &str) {
        if let Err(error) = self.post(object, type_, reason, message).await {
            tracing::warn!(%error, reason, object = ?object.name, "event not recorded");
        }
    }
}

/// Recording fake of [`EventSink`].
#[derive(Debug, Default)]
pub struct FakeEvents {
    /// `(object name, type, reason, message)` in order.
    pub recorded: Mutex<Vec<(String, EventType, String, String)>>,
}

impl FakeEvents {
    /// Reasons recorded so far, in order.
    pub fn reasons(&self) -> Vec<String> {
        self.recorded.lock().map(|r| r.iter().map(|e| e.2.clone()).collect()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl EventSink for FakeEvents {
    async fn record(&self, object: &ObjectReference, type_: EventType, reason: &str, message: &str) {
        if let Ok(mut recorded) = self.recorded.lock() {
            let name = object.name.clone().unwrap_or_default();
            recorded.push((name, type_, reason.to_string(), message.to_string()));
        }
    }
}
