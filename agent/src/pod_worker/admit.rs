//! Applying node admission ([`crate::admission`]): a pod this node cannot
//! run is never started; it is marked Failed (reason, message, Ready=False
//! condition) and gets one Warning Event with the same reason.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use super::{Error, Outcome, PodWorker};
use crate::admission::{admit, rejected_status};
use crate::events::{pod_reference, EventType};
use crate::observed::ObservedPod;

impl PodWorker {
    /// `Some` when the pod is refused and was handled here. A pod being
    /// deleted, or one with anything in the runtime, takes the normal path.
    pub(super) async fn refuse_unadmitted(
        &mut self,
        pod: &Pod,
        observed: &ObservedPod,
    ) -> Result<Option<Outcome>, Error> {
        if pod.metadata.deletion_timestamp.is_some() || !observed.sandboxes.is_empty() {
            return Ok(None);
        }
        let Err(refusal) = admit(pod) else { return Ok(None) };
        let status = rejected_status(pod, &refusal, Timestamp::now());
        let announced = self.refusal_announced || pod.status.as_ref().is_some_and(|s| s.reason == status.reason);
        if !announced {
            self.refusal_announced = true;
            tracing::info!(pod = %super::pod_key(pod), reason = refusal.reason.as_str(), message = %refusal.message, "pod refused");
            let reference = pod_reference(pod, None);
            self.deps.events.record(&reference, EventType::Warning, refusal.reason.as_str(), &refusal.message).await;
        }
        self.deps.status.set(pod, status);
        Ok(Some(Outcome::Continue(self.deps.timing.steady)))
    }
}
