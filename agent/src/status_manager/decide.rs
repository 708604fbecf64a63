//! The status manager's decisions, without I/O: whether a pod's status
//! needs a write, and how long to wait before retrying a failed one.

use std::time::Duration;

use k8s_openapi::api::core::v1::PodStatus;

/// The status a worker computed for one pod, and what it saw of the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    /// Pod UID (the write is refused if the pod was re-created).
    pub uid: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// `resourceVersion` of the pod the status was computed from.
    pub seen_version: Option<String>,
    /// The status that pod object showed (what the API last showed us).
    pub api_status: Option<PodStatus>,
    /// The status the worker computed.
    pub status: PodStatus,
}

impl StatusUpdate {
    /// The update for `status` computed from `pod`.
    pub fn of(pod: &k8s_openapi::api::core::v1::Pod, status: PodStatus) -> Self {
        StatusUpdate {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            seen_version: pod.metadata.resource_version.clone(),
            api_status: pod.status.clone(),
            status,
        }
    }
}

/// A status the manager wrote, and the pod version it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// `resourceVersion` of the pod the written status was computed from.
    pub seen_version: Option<String>,
    /// What was written.
    pub status: PodStatus,
}

/// Whether `update` must be written, given what the manager last wrote for
/// the pod. Nothing is written when the API already shows the status, or
/// when the manager wrote exactly this status for the same pod version
/// (the watch has not delivered our own write yet, so the worker's view of
/// the API still lags).
pub fn needs_write(update: &StatusUpdate, last_written: Option<&Written>) -> bool {
    if update.api_status.as_ref() == Some(&update.status) {
        return false;
    }
    let just_written = last_written.is_some_and(|w| w.seen_version == update.seen_version && w.status == update.status);
    !just_written
}

/// Retry delays of failed writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { base: Duration::from_millis(200), max: Duration::from_secs(10) }
    }
}

impl RetryPolicy {
    /// Delay before the next attempt after `failures` failures in a row
    /// (`base`, doubled per failure, capped at `max`).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base.saturating_mul(1u32 << doublings).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(phase: &str) -> PodStatus {
        PodStatus { phase: Some(phase.to_string()), ..PodStatus::default() }
    }

    fn update(seen: &str, api: Option<&str>, computed: &str) -> StatusUpdate {
        StatusUpdate {
            uid: "u".into(),
            namespace: "default".into(),
            name: "web".into(),
            seen_version: Some(seen.into()),
            api_status: api.map(status),
            status: status(computed),
        }
    }

    fn written(seen: &str, phase: &str) -> Written {
        Written { seen_version: Some(seen.into()), status: status(phase) }
    }

    #[test]
    fn decides_writes_from_what_the_api_showed_and_what_was_written() {
        // (update, last written, write?)
        let cases = [
            (update("1", None, "Pending"), None, true),
            (update("1", Some("Pending"), "Pending"), None, false),
            (update("1", Some("Pending"), "Running"), None, true),
            // Written already for this pod version: the watch lags behind us.
            (update("1", Some("Pending"), "Running"), Some(written("1", "Running")), false),
            // A newer pod still shows something else: someone overwrote it.
            (update("2", Some("Pending"), "Running"), Some(written("1", "Running")), true),
            // Same version, but the status moved on since our write.
            (update("1", Some("Pending"), "Succeeded"), Some(written("1", "Running")), true),
            // The API shows our write: nothing to do.
            (update("2", Some("Running"), "Running"), Some(written("1", "Running")), false),
        ];
        for (i, (update, last, want)) in cases.iter().enumerate() {
            assert_eq!(needs_write(update, last.as_ref()), *want, "case {i}");
        }
    }

    #[test]
    fn retry_delay_doubles_and_is_capped() {
        let policy = RetryPolicy { base: Duration::from_millis(100), max: Duration::from_secs(1) };
        let delays: Vec<u128> = [1, 2, 3, 4, 5, 100, u32::MAX].iter().map(|f| policy.delay(*f).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(policy.delay(0), Duration::from_millis(100));
    }
}
