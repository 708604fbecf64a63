//! The shared results cache: the latest verdict of every probe of every
//! container, keyed by CRI container id. Written by probe workers, read by
//! the pod worker (status, kills) and by anything that needs "started".
//!
//! A std mutex, never held across an await.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::Container;

use super::spec::ProbeKind;
use super::state::ProbeResult;

/// Probe results of one pod's containers (cheap to clone; shared).
#[derive(Debug, Clone, Default)]
pub struct ProbeResults {
    inner: Arc<Mutex<HashMap<(String, ProbeKind), ProbeResult>>>,
}

impl ProbeResults {
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, ProbeKind), ProbeResult>> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets a result; true when it differs from what was stored.
    pub fn set(&self, container_id: &str, kind: ProbeKind, result: ProbeResult) -> bool {
        self.lock().insert((container_id.to_string(), kind), result) != Some(result)
    }

    /// The stored result (None before the probe's worker started).
    pub fn get(&self, container_id: &str, kind: ProbeKind) -> Option<ProbeResult> {
        self.lock().get(&(container_id.to_string(), kind)).copied()
    }

    /// Forgets every result of a container.
    pub fn forget(&self, container_id: &str) {
        self.lock().retain(|(id, _), _| id != container_id);
    }

    /// Whether the running container `container_id` of spec `container`
    /// has started: it has no startup probe, or that probe has succeeded.
    /// (The native-sidecar ordering waits on this.)
    pub fn started(&self, container: &Container, container_id: &str) -> bool {
        container.startup_probe.is_none() || self.get(container_id, ProbeKind::Startup) == Some(ProbeResult::Success)
    }

    /// Whether the running container is ready: started, and its readiness
    /// probe (if any) passes.
    pub fn ready(&self, container: &Container, container_id: &str) -> bool {
        self.started(container, container_id)
            && (container.readiness_probe.is_none()
                || self.get(container_id, ProbeKind::Readiness) == Some(ProbeResult::Success))
    }
}
