//! Kubernetes Events about pods and the node (`Pulling`, `Pulled`, `Created`,
//! `Started`, `Killing`, `BackOff`, `Failed`, ...), sent through a buffered
//! recorder: `record` only queues (a pod worker never waits for the API);
//! one task per agent correlates and posts. Correlation (a repeat bumps
//! `count` and `lastTimestamp` on the existing Event; similar events are
//! combined; per-object spam is rate-limited) lives in `bosun-events`,
//! shared with the control plane; the agent's key also leaves out every
//! standalone number (back-off seconds, restart counts, exit codes), so a
//! crash loop is one `BackOff` Event with a growing count.
//!
//! Must not: fail the caller. Events are best effort; errors are logged.

use std::sync::Mutex;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};

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
            Self::Normal => bosun_events::NORMAL,
            Self::Warning => bosun_events::WARNING,
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
        field_path: container.map(|c| {
            let init = pod.spec.iter().flat_map(|s| s.init_containers.iter().flatten()).any(|i| i.name == c);
            let list = if init { "initContainers" } else { "containers" };
            format!("spec.{list}{{{c}}}")
        }),
    }
}

/// Where events go.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    /// Records one event about `object`.
    async fn record(&self, object: &ObjectReference, type_: EventType, reason: &str, message: &str);
}

/// Posts core/v1 Events through the API as component `kubelet`; repeats,
/// similar events and spam are correlated by `bosun-events`.
pub struct KubeEvents {
    recorder: bosun_events::Recorder,
}

impl KubeEvents {
    /// Recorder posting as component `kubelet` on `host`. Must be called
    /// inside a tokio runtime (it starts the posting task).
    pub fn new(client: kube::Client, host: &str) -> Self {
        let config = bosun_events::correlator::Config { ignore_numbers: true, ..Default::default() };
        Self { recorder: bosun_events::Recorder::with_config(client, "kubelet", Some(host), config) }
    }
}

#[async_trait::async_trait]
impl EventSink for KubeEvents {
    async fn record(&self, object: &ObjectReference, type_: EventType, reason: &str, message: &str) {
        self.recorder.record(object.clone(), type_.as_str(), reason, message);
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
