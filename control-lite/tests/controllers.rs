//! End-to-end tests of the scheduler and controllers against the real
//! in-process apiserver (127.0.0.1:0, temporary store). No agent runs: the
//! test plays the kubelet by marking bound pods Running/Ready with an IP and
//! by removing pods marked for deletion. IPs are API data only; no traffic
//! is sent anywhere.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

mod support;

const NS: &str = "default";

use support::Plane as Cluster;

impl Cluster {
    /// Plays the kubelet for `node`: bound pods become Running/Ready with
    /// an IP; pods marked for deletion are removed.
    fn fake_kubelet(&mut self, node: &'static str, subnet: u8) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let client = self.client.clone();
        let token = self.token.clone();
        self.tasks.push(tokio::spawn(async move {
            let mut next_ip = 2u16;
            while !token.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let Ok(list) = pods.list(&ListParams::default()).await else { continue };
                for pod in list.items {
                    if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
                        continue;
                    }
                    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
                    if pod.metadata.deletion_timestamp.is_some() {
                        let _ = api.delete(&pod.name_any(), &DeleteParams::default().grace_period(0)).await;
                        continue;
                    }
                    if pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).is_some() {
                        continue;
                    }
                    let ip = format!("10.244.{subnet}.{next_ip}");
                    next_ip += 1;
                    let now = jiff::Timestamp::now().to_string();
                    let status = json!({"status": {
                        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                        "conditions": [
                            {"type": "PodScheduled", "status": "True"},
                            {"type": "Ready", "status": "True", "lastTransitionTime": now}
                        ]
                    }});
                    let _ = api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await;
                }
            }
        }));
    }
}

/// Polls `check` until it yields `Some`, for up to 30 s.
async fn eventually<T, F, Fut>(what: &str, check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    support::eventually(what, Duration::from_secs(30), check).await
}

async fn create_node(client: &Client, name: &str, cpu: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {}
    }))?;
    nodes.create(&PostParams::default(), &node).await?;
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}]
    }});
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(())
}

/// A node lease renewed now.
fn lease(node: &str) -> Lease {
    Lease {
        metadata: kube::api::ObjectMeta { name: Some(node.to_string()), ..Default::default() },
        spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
            holder_identity: Some(node.to_string()),
            renew_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now())),
            ..Default::default()
        }),
    }
}

fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
}

/// Pods of app=web that are not being deleted.
async fn web_pods(client: &Client) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let list = pods.list(&ListParams::default().labels("app=web")).await?;
    Ok(list.items.into_iter().filter(is_active).collect())
}

/// Ready endpoint addresses of the web Service's slices, sorted.
async fn ready_endpoints(client: &Client) -> Result<Vec<String>> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    let list = slices.list(&ListParams::default().labels("kubernetes.io/service-name=web")).await?;
    let mut ips: Vec<String> = list
        .items
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .flat_map(|e| e.addresses.clone())
        .collect();
    ips.sort();
    Ok(ips)
}

async fn pod_ips(client: &Client) -> Result<Vec<String>> {
    let mut ips: Vec<String> =
        web_pods(client).await?.iter().filter_map(|p| p.status.as_ref().and_then(|s| s.pod_ip.clone())).collect();
    ips.sort();
    Ok(ips)
}

/// Waits until the Deployment reports `replicas` updated and available pods
/// and the Service's slice lists exactly the pods' IPs.
async fn wait_rolled_out(client: &Client, replicas: i32) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    eventually(&format!("deployment at {replicas} available replicas"), || async {
        let d = deployments.get("web").await?;
        let s = d.status.clone().unwrap_or_default();
        let done = s.observed_generation >= d.metadata.generation
            && s.updated_replicas == Some(replicas)
            && s.replicas == Some(replicas)
            && s.available_replicas == Some(replicas);
        Ok(done.then_some(()))
    })
    .await?;
    eventually(&format!("endpointslice with {replicas} ready endpoints"), || async {
        let (pods, endpoints) = (pod_ips(client).await?, ready_endpoints(client).await?);
        let usize_replicas = usize::try_from(replicas)?;
        Ok((pods.len() == usize_replicas && pods == endpoints).then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_rolls_out_serves_endpoints_scales_updates_and_is_collected() -> Result<()> {
    let mut cluster = Cluster::full().await?;
    let client = cluster.client.clone();
    create_node(&client, "node-1", "4").await?;
    cluster.fake_kubelet("node-1", 0);

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "busybox:1",
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}
            }
        }
    }))?;
    deployments.create(&PostParams::default(), &deployment).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))?;
    services.create(&PostParams::default(), &service).await?;

    // Pods are created from the RS, bound to the node, and served.
    wait_rolled_out(&client, 2).await?;
    let pods = web_pods(&client).await?;
    for pod in &pods {
        assert_eq!(pod.spec.as_ref().and_then(|s| s.node_name.as_deref()), Some("node-1"));
        let owner = pod.owner_references().first().cloned().context("pod owner")?;
        assert_eq!(owner.kind, "ReplicaSet");
        assert!(owner.name.starts_with("web-"), "{}", owner.name);
    }
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    let slice = slices.list(&ListParams::default().labels("kubernetes.io/service-name=web")).await?;
    let ports = slice.items[0].ports.clone().unwrap_or_default();
    assert_eq!(ports[0].port, Some(8080), "named targetPort resolved");
    let d = deployments.get("web").await?;
    let revision = d.annotations().get("deployment.kubernetes.io/revision").cloned();
    assert_eq!(revision.as_deref(), Some("1"));
    // Settled: no controller keeps rewriting what it owns.
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NS);
    let versions = || async {
        let mut all = vec![deployments.get("web").await?.resource_version()];
        all.extend(sets.list(&ListParams::default()).await?.items.iter().map(|o| o.resource_version()));
        all.extend(slices.list(&ListParams::default()).await?.items.iter().map(|o| o.resource_version()));
        anyhow::Ok(all)
    };
    let before = versions().await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(before, versions().await?, "objects rewritten while nothing changed");
    let out = cluster.kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"]).await?;
    assert!(out.contains("successfully rolled out"), "{out}");
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let scheduled = events.list(&ListParams::default()).await?;
    assert!(
        scheduled.items.iter().any(|e| e.reason.as_deref() == Some("Scheduled")
            && e.message.as_deref().is_some_and(|m| m.ends_with(" to node-1"))),
        "Scheduled events posted"
    );

    // Scale up and down.
    let scale = |n: i32| json!({"spec": {"replicas": n}});
    deployments.patch("web", &PatchParams::default(), &Patch::Merge(&scale(4))).await?;
    wait_rolled_out(&client, 4).await?;
    deployments.patch("web", &PatchParams::default(), &Patch::Merge(&scale(1))).await?;
    wait_rolled_out(&client, 1).await?;

    // Rolling update to a new template: a second RS takes over.
    let image = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "busybox:2", "ports": [{"name": "http", "containerPort": 8080}]}]}}}});
    deployments.patch("web", &PatchParams::default(), &Patch::Strategic(&image)).await?;
    wait_rolled_out(&client, 1).await?;
    let rs_list = sets.list(&ListParams::default()).await?.items;
    assert_eq!(rs_list.len(), 2, "old RS kept as history");
    let revisions: Vec<(Option<i32>, Option<String>)> = rs_list
        .iter()
        .map(|rs| {
            let replicas = rs.spec.as_ref().and_then(|s| s.replicas);
            (replicas, rs.annotations().get("deployment.kubernetes.io/revision").cloned())
        })
        .collect();
    assert!(revisions.contains(&(Some(1), Some("2".to_string()))), "{revisions:?}");
    assert!(revisions.contains(&(Some(0), Some("1".to_string()))), "{revisions:?}");

    // Deleting the Deployment removes its ReplicaSets and pods (GC).
    cluster.kubectl(&["delete", "deployment", "web"]).await?;
    eventually("replicasets and pods collected", || async {
        let rs_left = sets.list(&ListParams::default()).await?.items.len();
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let pods_left = pods.list(&ListParams::default()).await?.items.len();
        Ok((rs_left == 0 && pods_left == 0).then_some(()))
    })
    .await?;
    services.delete("web", &DeleteParams::default()).await?;
    eventually("endpointslice collected", || async {
        Ok(slices.list(&ListParams::default()).await?.items.is_empty().then_some(()))
    })
    .await?;
    cluster.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pod_reports_failed_scheduling_until_capacity_appears() -> Result<()> {
    let cluster = Cluster::full().await?;
    let client = cluster.client.clone();
    create_node(&client, "small", "1").await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "big"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "2"}}}]}
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let message = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";
    eventually("PodScheduled=False", || async {
        let pod = pods.get("big").await?;
        let condition =
            pod.status.and_then(|s| s.conditions).unwrap_or_default().into_iter().find(|c| c.type_ == "PodScheduled");
        Ok(condition.filter(|c| {
            c.status == "False" && c.reason.as_deref() == Some("Unschedulable") && c.message.as_deref() == Some(message)
        }))
    })
    .await?;
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    eventually("FailedScheduling event", || async {
        let list = events.list(&ListParams::default()).await?;
        Ok(list
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("FailedScheduling")
                    && e.type_.as_deref() == Some("Warning")
                    && e.message.as_deref() == Some(message)
                    && e.involved_object.name.as_deref() == Some("big")
            })
            .map(|_| ()))
    })
    .await?;

    let described = cluster.kubectl(&["describe", "pod", "big"]).await?;
    assert!(described.contains("FailedScheduling") && described.contains(message), "{described}");

    // A node with room appears: the pod is retried and bound there.
    create_node(&client, "large", "4").await?;
    eventually("pod bound to the new node", || async {
        let pod = pods.get("big").await?;
        Ok((pod.spec.and_then(|s| s.node_name).as_deref() == Some("large")).then_some(()))
    })
    .await?;
    cluster.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_node_becomes_unknown_and_tainted_then_recovers() -> Result<()> {
    let mut cluster = Cluster::apiserver().await?;
    let (client, token) = (cluster.client.clone(), cluster.token.clone());
    let grace = Duration::from_secs(2);
    let informers = bosun_control::controllers::shared::Informers::new(client.clone(), token.clone());
    cluster.tasks.push(tokio::spawn(bosun_control::controllers::nodelifecycle::run_with(
        client.clone(),
        informers,
        token,
        grace,
        Arc::new(jiff::Timestamp::now),
    )));
    create_node(&client, "n1", "2").await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    leases.create(&PostParams::default(), &lease("n1")).await?;

    let nodes: Api<Node> = Api::all(client.clone());
    let ready_and_tainted = |node: &Node| {
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
            .unwrap_or_default();
        let tainted = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| t.iter().any(|t| t.key == "node.kubernetes.io/unreachable"));
        (ready, tainted)
    };
    eventually("node marked Unknown and tainted", || async {
        let node = nodes.get("n1").await?;
        Ok((ready_and_tainted(&node) == ("Unknown".to_string(), true)).then_some(()))
    })
    .await?;

    // The kubelet comes back: it renews its lease and posts Ready=True.
    let renewer = {
        let (leases, token) = (leases.clone(), cluster.token.clone());
        tokio::spawn(async move {
            while !token.is_cancelled() {
                if let Ok(patch) = serde_json::to_value(lease("n1")) {
                    let _ = leases.patch("n1", &PatchParams::default(), &Patch::Merge(&patch)).await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    cluster.tasks.push(renewer);
    let now = jiff::Timestamp::now().to_string();
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
        "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
    nodes.patch_status("n1", &PatchParams::default(), &Patch::Merge(&ready)).await?;
    eventually("taint removed", || async {
        let node = nodes.get("n1").await?;
        Ok((ready_and_tainted(&node) == ("True".to_string(), false)).then_some(()))
    })
    .await?;
    cluster.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_pods_never_overcommits_a_node() -> Result<()> {
    let cluster = Cluster::full().await?;
    let client = cluster.client.clone();
    // 4 cpu / 100m per pod: exactly 40 of the 50 replicas fit.
    create_node(&client, "node-1", "4").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 50,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "busybox:1",
                    "resources": {"requests": {"cpu": "100m"}}}]}
            }
        }
    }))?;
    let started = std::time::Instant::now();
    deployments.create(&PostParams::default(), &deployment).await?;
    let bound =
        |pods: &[Pod]| pods.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()).count();
    eventually("40 pods bound, 10 unschedulable", || async {
        let pods = web_pods(&client).await?;
        Ok((pods.len() == 50 && bound(&pods) == 40).then_some(()))
    })
    .await?;
    eprintln!("50 pods created, 40 bound in {:?}", started.elapsed());
    // Give the controllers a moment to overshoot if they were going to.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pods = web_pods(&client).await?;
    assert_eq!((pods.len(), bound(&pods)), (50, 40), "no duplicate pods, no overcommit");
    let unschedulable = |pods: &[Pod]| {
        pods.iter()
            .filter(|p| {
                p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
                    c.iter().any(|c| {
                        c.type_ == "PodScheduled"
                            && c.message.as_deref() == Some("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")
                    })
                })
            })
            .count()
    };
    // The scheduler writes the 10 conditions one status patch at a time.
    eventually("10 pods marked unschedulable", || async {
        let pods = web_pods(&client).await?;
        Ok((unschedulable(&pods) == 10).then_some(()))
    })
    .await?;
    let pods = web_pods(&client).await?;
    assert_eq!((pods.len(), bound(&pods), unschedulable(&pods)), (50, 40, 10), "still no overcommit");
    cluster.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_older_than_the_ttl_are_swept_and_fresh_ones_kept() -> Result<()> {
    let mut cluster = Cluster::apiserver().await?;
    let client = cluster.client.clone();
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let event = |name: &str| -> Result<Event> {
        Ok(serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": NS},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": NS},
            "reason": "Test", "message": "ttl", "type": "Normal"
        }))?)
    };
    events.create(&PostParams::default(), &event("old")?).await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    events.create(&PostParams::default(), &event("fresh")?).await?;
    cluster.tasks.push(tokio::spawn(bosun_control::controllers::eventttl::run_with(
        client.clone(),
        cluster.token.clone(),
        Duration::from_secs(2),
        Duration::from_millis(100),
        Arc::new(jiff::Timestamp::now),
    )));
    eventually("old event swept", || async { Ok(events.get_opt("old").await?.is_none().then_some(())) }).await?;
    assert!(events.get_opt("fresh").await?.is_some(), "an event younger than the TTL is kept");
    Ok(())
}
