//! The prober: startup, liveness and readiness probes of a pod's
//! containers, each on its own timer in its own task, so a slow probe never
//! blocks the pod worker.
//!
//! - `spec`: kinds and timing (defaults, bounds), pure.
//! - `state`: thresholds and gating (initial delay, startup first), pure.
//! - `results`: the shared cache of verdicts by container id.
//! - `view`: what the verdicts mean for status (`ready`, `started`) and
//!   which containers to kill, pure.
//! - `worker`: one task per probe per container attempt.
//!
//! [`PodProber`] keeps one set of workers per running container attempt of
//! one pod (a restarted container gets fresh workers and results) and wakes
//! the pod worker when a result changes. Must not: kill or restart
//! containers itself; the pod worker acts on [`kills`].

mod results;
mod spec;
mod state;
mod view;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use results::ProbeResults;
pub use spec::{ProbeKind, Timing};
pub use state::{gate, Gate, ProbeResult, ProbeState, Step};
pub use view::{container_probes, kills, probed_containers, startup_pending, ContainerProbes, Kill};

use crate::events::{pod_reference, EventSink};
use crate::handlers::{self, Target};
use crate::observed::{ObservedPod, RunState};
use crate::runtime::Runtime;
use worker::ProbeWorker;

/// The probe workers of one pod.
pub struct PodProber {
    runtime: Arc<dyn Runtime>,
    events: Arc<dyn EventSink>,
    wake: Arc<Notify>,
    token: CancellationToken,
    results: ProbeResults,
    /// Workers by container id (one token for all probes of that attempt).
    workers: HashMap<String, CancellationToken>,
}

impl PodProber {
    /// A prober waking `wake` on changes; stops when `token` is cancelled.
    pub fn new(
        runtime: Arc<dyn Runtime>,
        events: Arc<dyn EventSink>,
        wake: Arc<Notify>,
        token: CancellationToken,
    ) -> Self {
        PodProber { runtime, events, wake, token, results: ProbeResults::default(), workers: HashMap::new() }
    }

    /// The shared results.
    pub fn results(&self) -> &ProbeResults {
        &self.results
    }

    /// Starts workers for newly running probed containers and stops those
    /// of attempts no longer running.
    pub fn sync(&mut self, pod: &Pod, observed: &ObservedPod) {
        let sandbox = observed.ready_sandbox();
        let pod_ip = sandbox.and_then(|s| s.ips.first()).map(String::as_str);
        let mut wanted = Vec::new();
        for container in view::probed_containers(pod) {
            if ProbeKind::ALL.iter().all(|k| k.of(container).is_none()) {
                continue;
            }
            let running = observed.latest(&container.name).filter(|c| {
                c.state == RunState::Running && Some(c.sandbox_id.as_str()) == sandbox.map(|s| s.id.as_str())
            });
            let Some(observed_container) = running else { continue };
            wanted.push(observed_container.id.clone());
            if self.workers.contains_key(&observed_container.id) {
                continue;
            }
            let token = self.token.child_token();
            for kind in ProbeKind::ALL {
                let Some(probe) = kind.of(container) else { continue };
                let worker = ProbeWorker {
                    kind,
                    timing: Timing::of(probe, kind),
                    action: handlers::from_probe(probe, container, pod_ip),
                    target: Target { runtime: self.runtime.clone(), container_id: observed_container.id.clone() },
                    container: container.clone(),
                    started_at: observed_container.started_at,
                    results: self.results.clone(),
                    wake: self.wake.clone(),
                    events: self.events.clone(),
                    reference: pod_reference(pod, Some(&container.name)),
                };
                tokio::spawn(worker.run(token.clone()));
            }
            self.workers.insert(observed_container.id.clone(), token);
        }
        let gone: Vec<String> = self.workers.keys().filter(|id| !wanted.contains(id)).cloned().collect();
        for id in gone {
            if let Some(token) = self.workers.remove(&id) {
                token.cancel();
            }
            self.results.forget(&id);
        }
    }

    /// Stops every worker (the pod is terminating).
    pub fn stop_all(&mut self) {
        for (id, token) in self.workers.drain() {
            token.cancel();
            self.results.forget(&id);
        }
    }
}

impl Drop for PodProber {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
