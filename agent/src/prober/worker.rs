//! One probe of one container on its own timer: wait out the initial delay
//! (and the startup probe), probe every period, count outcomes, publish a
//! changed result and wake the pod worker. Every failed probe is an
//! `Unhealthy` Warning Event. Stops on its cancellation token, after a
//! liveness/startup failure (the container is about to be killed; the next
//! attempt gets a fresh worker) and after a startup success.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ObjectReference};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::results::ProbeResults;
use super::spec::{ProbeKind, Timing};
use super::state::{gate, Gate, ProbeState};
use crate::events::{EventSink, EventType};
use crate::handlers::{self, Action, Outcome, Target};

/// Everything one probe worker needs.
pub(super) struct ProbeWorker {
    pub kind: ProbeKind,
    pub timing: Timing,
    pub action: Result<Action, handlers::Error>,
    pub target: Target,
    pub container: Container,
    pub started_at: Option<Timestamp>,
    pub results: ProbeResults,
    pub wake: Arc<Notify>,
    pub events: Arc<dyn EventSink>,
    pub reference: ObjectReference,
}

fn running_for(started_at: Option<Timestamp>) -> Duration {
    let Some(started) = started_at else { return Duration::ZERO };
    let nanos = Timestamp::now().as_nanosecond().saturating_sub(started.as_nanosecond()).max(0);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl ProbeWorker {
    pub async fn run(self, token: CancellationToken) {
        let id = self.target.container_id.clone();
        let mut state = ProbeState::new(self.kind, self.timing);
        if self.results.set(&id, self.kind, state.result()) {
            self.wake.notify_one();
        }
        loop {
            let started = self.results.started(&self.container, &id);
            let wait = match gate(self.kind, &self.timing, running_for(self.started_at), started) {
                Gate::Wait(wait) => Some(wait),
                Gate::AwaitStartup => Some(self.timing.period),
                Gate::Probe => None,
            };
            if let Some(wait) = wait {
                if sleep_or_cancel(&token, wait).await {
                    return;
                }
                continue;
            }
            let outcome = match &self.action {
                Ok(action) => tokio::select! {
                    () = token.cancelled() => return,
                    outcome = handlers::run(action, &self.target, self.timing.timeout) => outcome,
                },
                Err(error) => Outcome::Failure(error.to_string()),
            };
            if let Outcome::Failure(message) = &outcome {
                let message = format!("{} probe failed: {message}", self.kind.as_str());
                self.events.record(&self.reference, EventType::Warning, "Unhealthy", &message).await;
            }
            let step = state.record(outcome.is_success());
            if let Some(result) = step.changed {
                tracing::info!(container = %self.container.name, id = %id, probe = self.kind.as_str(), ?result, "probe result changed");
                if self.results.set(&id, self.kind, result) {
                    self.wake.notify_one();
                }
            }
            if step.stop || sleep_or_cancel(&token, self.timing.period).await {
                return;
            }
        }
    }
}

/// Sleeps; true when cancelled instead.
async fn sleep_or_cancel(token: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        () = token.cancelled() => true,
        () = tokio::time::sleep(wait) => false,
    }
}
