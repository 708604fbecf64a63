//! The kubelet API's `/runningpods`: the pods the runtime is running, as
//! upstream reports them (a `PodList` of minimal pods, name, namespace and
//! uid from the sandbox labels, one container per running container with
//! its name and image), built from the runtime's state alone, not from the
//! pods the agent was asked to run (that is `/pods`).

use std::collections::BTreeMap;

use bosun_proto::cri as api;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::labels;

fn label(labels: &std::collections::HashMap<String, String>, key: &str) -> Option<String> {
    labels.get(key).cloned()
}

/// Pods with a ready sandbox, each with its running containers (sorted by
/// namespace, name and container name; the input order does not matter).
/// Sandboxes and containers without the pod labels are not the agent's and are left out.
pub fn running_pods(sandboxes: &[api::PodSandbox], containers: &[api::Container]) -> Vec<Pod> {
    let mut pods: BTreeMap<(String, String, String), Vec<Container>> = BTreeMap::new();
    let ready = sandboxes.iter().filter(|s| s.state == api::PodSandboxState::SandboxReady as i32);
    for sandbox in ready {
        let (Some(ns), Some(name), Some(uid)) = (
            label(&sandbox.labels, labels::POD_NAMESPACE),
            label(&sandbox.labels, labels::POD_NAME),
            label(&sandbox.labels, labels::POD_UID),
        ) else {
            continue;
        };
        let mut running: Vec<Container> = containers
            .iter()
            .filter(|c| c.pod_sandbox_id == sandbox.id && c.state == api::ContainerState::ContainerRunning as i32)
            .filter_map(|c| {
                let name = label(&c.labels, labels::CONTAINER_NAME)?;
                let image =
                    c.image.as_ref().map(|i| i.image.clone()).filter(|i| !i.is_empty()).or(Some(c.image_ref.clone()));
                Some(Container { name, image, ..Default::default() })
            })
            .collect();
        running.sort_by(|a, b| a.name.cmp(&b.name));
        pods.entry((ns, name, uid)).or_default().extend(running);
    }
    pods.into_iter()
        .map(|((namespace, name, uid), containers)| Pod {
            metadata: ObjectMeta { name: Some(name), namespace: Some(namespace), uid: Some(uid), ..Default::default() },
            spec: Some(PodSpec { containers, ..Default::default() }),
            status: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn pod_labels(ns: &str, name: &str, uid: &str) -> HashMap<String, String> {
        HashMap::from([
            (labels::POD_NAMESPACE.to_string(), ns.to_string()),
            (labels::POD_NAME.to_string(), name.to_string()),
            (labels::POD_UID.to_string(), uid.to_string()),
        ])
    }

    fn sandbox(id: &str, ns: &str, name: &str, ready: bool) -> api::PodSandbox {
        let state = if ready { api::PodSandboxState::SandboxReady } else { api::PodSandboxState::SandboxNotready };
        api::PodSandbox {
            id: id.into(),
            state: state as i32,
            labels: pod_labels(ns, name, &format!("uid-{name}")),
            ..Default::default()
        }
    }

    fn container(sandbox: &str, name: &str, image: &str, running: bool) -> api::Container {
        let state = if running { api::ContainerState::ContainerRunning } else { api::ContainerState::ContainerExited };
        let mut labels = pod_labels("x", "x", "x");
        labels.insert(labels::CONTAINER_NAME.to_string(), name.to_string());
        api::Container {
            pod_sandbox_id: sandbox.into(),
            state: state as i32,
            labels,
            image: Some(api::ImageSpec { image: image.into(), ..Default::default() }),
            ..Default::default()
        }
    }

    /// (namespace, name, [(container, image)]) of one pod.
    type Summary = (String, String, Vec<(String, String)>);

    fn summary(pods: &[Pod]) -> Vec<Summary> {
        pods.iter()
            .map(|p| {
                let spec = p.spec.as_ref().expect("spec");
                (
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default(),
                    spec.containers.iter().map(|c| (c.name.clone(), c.image.clone().unwrap_or_default())).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn ready_sandboxes_with_their_running_containers() {
        let sandboxes = [
            sandbox("s2", "default", "web", true),
            sandbox("s1", "default", "db", true),
            sandbox("s3", "kube", "old", false),
        ];
        let containers = [
            container("s2", "sidecar", "busybox", true),
            container("s2", "app", "nginx", true),
            container("s2", "init", "busybox", false),
            container("s3", "gone", "busybox", true),
        ];
        let pods = running_pods(&sandboxes, &containers);
        let s = |v: &str| v.to_string();
        assert_eq!(
            summary(&pods),
            vec![
                (s("default"), s("db"), vec![]),
                (s("default"), s("web"), vec![(s("app"), s("nginx")), (s("sidecar"), s("busybox"))]),
            ]
        );
        assert_eq!(pods[1].metadata.uid.as_deref(), Some("uid-web"));
    }

    #[test]
    fn sandboxes_without_pod_labels_are_left_out() {
        let mut foreign = sandbox("f", "default", "x", true);
        foreign.labels.clear();
        assert!(running_pods(&[foreign], &[]).is_empty());
    }
}
