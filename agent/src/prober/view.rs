//! What the probe results mean for the pod, pure: each container's `ready`
//! and `started` for the status, and which containers to kill.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, Pod};

use super::results::ProbeResults;
use super::spec::ProbeKind;
use super::state::ProbeResult;
use crate::observed::{ObservedPod, RunState};

/// Probe-derived flags of one container for its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerProbes {
    /// `containerStatuses[].ready`.
    pub ready: bool,
    /// `containerStatuses[].started`.
    pub started: bool,
}

/// A container whose liveness or startup probe failed: to be killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    /// Container name.
    pub name: String,
    /// CRI id.
    pub id: String,
    /// The probe that failed.
    pub kind: ProbeKind,
}

impl Kill {
    /// The Killing Event's message.
    pub fn message(&self) -> String {
        format!("Container {} failed {} probe, will be restarted", self.name, self.kind.as_str().to_lowercase())
    }
}

/// The containers probes apply to: app containers and native sidecars
/// (init containers with `restartPolicy: Always`), whose names are unique
/// within the pod.
pub fn probed_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    let sidecars = spec
        .into_iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    sidecars.chain(spec.into_iter().flat_map(|s| s.containers.iter()))
}

/// `ready`/`started` of every probed container whose newest attempt runs in
/// the ready sandbox; containers not running are neither.
pub fn container_probes(
    pod: &Pod,
    observed: &ObservedPod,
    results: &ProbeResults,
) -> BTreeMap<String, ContainerProbes> {
    let sandbox = observed.ready_sandbox().map(|s| s.id.as_str());
    let mut out = BTreeMap::new();
    for container in probed_containers(pod) {
        let running = observed
            .latest(&container.name)
            .filter(|c| c.state == RunState::Running && Some(c.sandbox_id.as_str()) == sandbox);
        let flags = match running {
            Some(c) => {
                ContainerProbes { ready: results.ready(container, &c.id), started: results.started(container, &c.id) }
            }
            None => ContainerProbes { ready: false, started: false },
        };
        out.insert(container.name.clone(), flags);
    }
    out
}

/// Ids of running probed containers whose startup probe has not passed
/// yet (a native sidecar in this set holds back the next init container).
pub fn startup_pending(pod: &Pod, observed: &ObservedPod, results: &ProbeResults) -> BTreeSet<String> {
    probed_containers(pod)
        .filter_map(|container| {
            let c = observed.latest(&container.name).filter(|c| c.state == RunState::Running)?;
            (!results.started(container, &c.id)).then(|| c.id.clone())
        })
        .collect()
}

/// Running containers whose liveness or startup probe has failed.
pub fn kills(pod: &Pod, observed: &ObservedPod, results: &ProbeResults) -> Vec<Kill> {
    let mut out = Vec::new();
    for container in probed_containers(pod) {
        let Some(c) = observed.latest(&container.name).filter(|c| c.state == RunState::Running) else {
            continue;
        };
        for kind in [ProbeKind::Startup, ProbeKind::Liveness] {
            if results.get(&c.id, kind) == Some(ProbeResult::Failure) {
                out.push(Kill { name: container.name.clone(), id: c.id.clone(), kind });
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodSpec, Probe};

    use super::*;
    use crate::observed::{ObservedContainer, ObservedSandbox};

    fn pod() -> Pod {
        let probe = Some(Probe::default());
        Pod {
            spec: Some(PodSpec {
                containers: vec![
                    Container { name: "plain".into(), ..Default::default() },
                    Container { name: "probed".into(), readiness_probe: probe.clone(), ..Default::default() },
                    Container {
                        name: "slow".into(),
                        startup_probe: probe.clone(),
                        liveness_probe: probe,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn running(name: &str) -> ObservedContainer {
        ObservedContainer {
            id: format!("{name}-1"),
            sandbox_id: "s".into(),
            name: name.into(),
            attempt: 0,
            state: RunState::Running,
            created_at: None,
            started_at: None,
            finished_at: None,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image: String::new(),
            image_ref: String::new(),
            log_path: String::new(),
            spec_hash: None,
            termination: None,
        }
    }

    fn observed() -> ObservedPod {
        ObservedPod {
            sandboxes: vec![ObservedSandbox { id: "s".into(), attempt: 0, ready: true, created_at: 1, ips: vec![] }],
            containers: vec![running("plain"), running("probed"), running("slow")],
            images: BTreeMap::new(),
        }
    }

    #[test]
    fn readiness_and_startup_results_decide_ready_and_started() {
        let results = ProbeResults::default();
        let view = container_probes(&pod(), &observed(), &results);
        assert_eq!(view["plain"], ContainerProbes { ready: true, started: true });
        assert_eq!(view["probed"], ContainerProbes { ready: false, started: true }, "no result yet: not ready");
        assert_eq!(view["slow"], ContainerProbes { ready: false, started: false });
        results.set("probed-1", ProbeKind::Readiness, ProbeResult::Success);
        results.set("slow-1", ProbeKind::Startup, ProbeResult::Success);
        let view = container_probes(&pod(), &observed(), &results);
        assert_eq!(view["probed"], ContainerProbes { ready: true, started: true });
        assert_eq!(view["slow"], ContainerProbes { ready: true, started: true });
        let mut stopped = observed();
        stopped.containers[1].state = RunState::Exited;
        assert!(!container_probes(&pod(), &stopped, &results)["probed"].ready);
    }

    #[test]
    fn failed_liveness_or_startup_kills_the_running_container() {
        let results = ProbeResults::default();
        results.set("slow-1", ProbeKind::Liveness, ProbeResult::Success);
        results.set("probed-1", ProbeKind::Readiness, ProbeResult::Failure);
        assert!(kills(&pod(), &observed(), &results).is_empty(), "readiness failures never kill");
        results.set("slow-1", ProbeKind::Liveness, ProbeResult::Failure);
        let kill = kills(&pod(), &observed(), &results);
        assert_eq!(kill, vec![Kill { name: "slow".into(), id: "slow-1".into(), kind: ProbeKind::Liveness }]);
        assert_eq!(kill[0].message(), "Container slow failed liveness probe, will be restarted");
        let mut exited = observed();
        exited.containers[2].state = RunState::Exited;
        assert!(kills(&pod(), &exited, &results).is_empty());
    }

    #[test]
    fn native_sidecars_are_probed_and_plain_init_containers_are_not() {
        let mut p = pod();
        let probe = Some(Probe::default());
        p.spec.as_mut().unwrap().init_containers = Some(vec![
            Container { name: "init".into(), readiness_probe: probe.clone(), ..Default::default() },
            Container {
                name: "sidecar".into(),
                restart_policy: Some("Always".into()),
                startup_probe: probe,
                ..Default::default()
            },
        ]);
        let names: Vec<&str> = probed_containers(&p).map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["sidecar", "plain", "probed", "slow"]);
        let mut obs = observed();
        obs.containers.push(running("sidecar"));
        let results = ProbeResults::default();
        assert!(!container_probes(&p, &obs, &results)["sidecar"].started);
        assert_eq!(
            startup_pending(&p, &obs, &results),
            BTreeSet::from(["sidecar-1".to_string(), "slow-1".to_string()])
        );
        results.set("sidecar-1", ProbeKind::Startup, ProbeResult::Success);
        assert!(container_probes(&p, &obs, &results)["sidecar"].started);
        assert_eq!(startup_pending(&p, &obs, &results), BTreeSet::from(["slow-1".to_string()]));
    }
}
