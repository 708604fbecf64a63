//! Namespace deletion end to end against the real in-process apiserver,
//! scheduler and controllers, with the real kubectl: a namespace is marked
//! Terminating, refuses new content, is emptied by the namespace controller
//! (pods through graceful deletion, finished by a test "kubelet"), and only
//! then disappears; a namespace created again under the same name is empty.

use std::time::Duration;

use anyhow::{bail, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

mod support;

const NODE: &str = "node-1";
const TERMINATING: &str = "unable to create new content in namespace team because it is being terminated";

use support::Plane as Cluster;

impl Cluster {
    /// Apiserver, scheduler, every controller, one Ready node and a test
    /// kubelet for it that runs bound pods and finishes deleted ones.
    async fn start() -> Result<Cluster> {
        let mut cluster = Cluster::full().await?;
        create_node(&cluster.client).await?;
        cluster.tasks.push(tokio::spawn(kubelet(cluster.client.clone(), cluster.token.clone())));
        Ok(cluster)
    }
}

/// Polls `check` until it yields `Some`, for up to 90 s.
async fn eventually<T, F, Fut>(what: &str, check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    support::eventually(what, Duration::from_secs(90), check).await
}

async fn create_node(client: &Client) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": NODE}, "spec": {}}))?;
    nodes.create(&PostParams::default(), &node).await?;
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": now, "lastTransitionTime": now}]
    }});
    nodes.patch_status(NODE, &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(())
}

/// Plays the kubelet of `NODE`: bound pods become Running; pods marked for
/// deletion are finished (deleted with grace 0), as the agent does.
async fn kubelet(client: Client, token: CancellationToken) {
    let pods: Api<Pod> = Api::all(client.clone());
    while !token.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(list) = pods.list(&ListParams::default().fields(&format!("spec.nodeName={NODE}"))).await else {
            continue;
        };
        for pod in list.items {
            let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
            if pod.metadata.deletion_timestamp.is_some() {
                let _ = api.delete(&pod.name_any(), &DeleteParams::default().grace_period(0)).await;
            } else if pod.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running") {
                let status = json!({"status": {"phase": "Running"}});
                let _ = api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await;
            }
        }
    }
}

async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    Ok(())
}

/// `count` ConfigMaps `cm-<i>` in `ns`, 16 requests in flight.
async fn create_config_maps(client: &Client, ns: &str, count: usize) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    futures::stream::iter(0..count)
        .map(|i| {
            let cms = cms.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": format!("cm-{i}")}, "data": {"i": i.to_string()}}),
                )?;
                cms.create(&PostParams::default(), &cm).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Objects of each kind in `ns`.
/// What the test put into namespace `ns` (not what every namespace has:
/// its `kube-root-ca.crt` ConfigMap and `default` ServiceAccount).
async fn contents(client: &Client, ns: &str) -> Result<Vec<(&'static str, usize)>> {
    let lp = ListParams::default();
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), ns).list(&lp).await?.items;
    let configmaps = configmaps.iter().filter(|cm| cm.metadata.name.as_deref() != Some("kube-root-ca.crt")).count();
    Ok(vec![
        ("configmaps", configmaps),
        ("secrets", Api::<Secret>::namespaced(client.clone(), ns).list(&lp).await?.items.len()),
        ("services", Api::<Service>::namespaced(client.clone(), ns).list(&lp).await?.items.len()),
        ("deployments", Api::<Deployment>::namespaced(client.clone(), ns).list(&lp).await?.items.len()),
        ("replicasets", Api::<ReplicaSet>::namespaced(client.clone(), ns).list(&lp).await?.items.len()),
        ("pods", Api::<Pod>::namespaced(client.clone(), ns).list(&lp).await?.items.len()),
        ("endpointslices", Api::<EndpointSlice>::namespaced(client.clone(), ns).list(&lp).await?.items.len()),
    ])
}

fn total(counts: &[(&str, usize)]) -> usize {
    counts.iter().map(|(_, n)| n).sum()
}

async fn fill_team(client: &Client) -> Result<()> {
    create_namespace(client, "team").await?;
    create_config_maps(client, "team", 300).await?;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "busybox:1",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}
    }))?;
    Api::<Deployment>::namespaced(client.clone(), "team").create(&PostParams::default(), &deployment).await?;
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))?;
    Api::<Service>::namespaced(client.clone(), "team").create(&PostParams::default(), &service).await?;
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "token"}, "stringData": {"k": "v"}}))?;
    Api::<Secret>::namespaced(client.clone(), "team").create(&PostParams::default(), &secret).await?;
    // Held by a finalizer of its own, so the namespace stays Terminating
    // until the test lets it go.
    let held: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["bosun.test/hold"]}}))?;
    Api::<ConfigMap>::namespaced(client.clone(), "team").create(&PostParams::default(), &held).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "team");
    eventually("2 running pods in team", || async {
        let list = pods.list(&ListParams::default()).await?;
        let running =
            list.items.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
        Ok((running.count() == 2).then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_namespace_is_emptied_before_it_goes_and_comes_back_empty() -> Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client.clone();
    fill_team(&client).await?;
    let before = contents(&client, "team").await?;
    // 301 ConfigMaps, a Secret, a Service, a Deployment, its ReplicaSet and
    // 2 pods (and the Service's EndpointSlice once published).
    assert_eq!(before[0], ("configmaps", 301));
    assert!(total(&before) >= 301 + 1 + 1 + 1 + 1 + 2, "{before:?}");

    let out = cluster.kubectl(&["delete", "namespace", "team", "--wait=false"]).await?;
    assert!(out.contains("namespace \"team\" deleted"), "{out}");
    let out = cluster.kubectl(&["get", "namespace", "team"]).await?;
    assert!(out.contains("Terminating"), "{out}");

    // New content is refused: 403 with upstream's wording, for kube-rs and kubectl.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let late: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "late"}}))?;
    match cms.create(&PostParams::default(), &late).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
            assert_eq!(s.message, format!("configmaps \"late\" is forbidden: {TERMINATING}"));
        }
        other => bail!("expected 403, got {other:?}"),
    }
    let out = cluster.kubectl_raw(&["-n", "team", "create", "configmap", "late2", "--from-literal=a=b"]).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(&format!("configmaps \"late2\" is forbidden: {TERMINATING}")));
    // A second DELETE: 409 as upstream, the namespace stays.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.delete("team", &DeleteParams::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 409);
            assert!(s.message.contains("The system is ensuring all content is removed"), "{}", s.message);
        }
        other => bail!("expected 409, got {other:?}"),
    }

    // Everything but the held ConfigMap goes; the namespace waits for it.
    eventually("team emptied but for the held ConfigMap", || async {
        let left = contents(&client, "team").await?;
        Ok((total(&left) == 1).then_some(()))
    })
    .await?;
    let held = cms.get("held").await?;
    assert!(held.metadata.deletion_timestamp.is_some(), "the held ConfigMap is marked for deletion");
    let ns = namespaces.get("team").await?;
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Terminating"));
    assert_eq!(ns.spec.and_then(|s| s.finalizers), Some(vec!["kubernetes".to_string()]));
    // Why it waits, in upstream's conditions.
    let message = |ns: &Namespace, type_: &str| {
        let conditions = ns.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
        conditions.into_iter().find(|c| c.type_ == type_ && c.status == "True").and_then(|c| c.message)
    };
    let (content, finalizers) = eventually("namespace conditions", || async {
        let ns = namespaces.get("team").await?;
        let both = message(&ns, "NamespaceContentRemaining").zip(message(&ns, "NamespaceFinalizersRemaining"));
        Ok(both)
    })
    .await?;
    assert_eq!(content, "Some resources are remaining: configmaps. has 1 resource instances");
    assert_eq!(
        finalizers,
        "Some content in the namespace has finalizers remaining: bosun.test/hold in 1 resource instances"
    );

    cms.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await?;
    eventually("namespace team gone", || async { Ok(namespaces.get_opt("team").await?.is_none().then_some(())) })
        .await?;

    // Same name again: nothing inherited.
    create_namespace(&client, "team").await?;
    let again = contents(&client, "team").await?;
    assert_eq!(total(&again), 0, "{again:?}");
    let ns = namespaces.get("team").await?;
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));

    // Plain `kubectl delete namespace` waits until the namespace is gone.
    create_namespace(&client, "quick").await?;
    create_config_maps(&client, "quick", 20).await?;
    let out = cluster.kubectl(&["delete", "namespace", "quick", "--timeout=90s"]).await?;
    assert!(out.contains("namespace \"quick\" deleted"), "{out}");
    assert!(namespaces.get_opt("quick").await?.is_none());
    assert_eq!(
        Api::<ConfigMap>::namespaced(client.clone(), "quick").list(&ListParams::default()).await?.items.len(),
        0
    );
    cluster.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalize_subresource_releases_a_namespace_and_unscheduled_pods_go_at_once() -> Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client.clone();
    // The test kubelet's node is cordoned off by a nodeSelector nobody has:
    // this pod is never scheduled, and deleting the namespace removes it.
    create_namespace(&client, "pending").await?;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "stuck"},
        "spec": {"nodeSelector": {"nowhere": "true"}, "containers": [{"name": "c", "image": "busybox:1"}]}
    }))?;
    Api::<Pod>::namespaced(client.clone(), "pending").create(&PostParams::default(), &pod).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete("pending", &DeleteParams::default()).await?;
    eventually("namespace pending gone", || async { Ok(namespaces.get_opt("pending").await?.is_none().then_some(())) })
        .await?;

    // The finalize subresource: what `kubectl replace --raw .../finalize` does.
    create_namespace(&client, "manual").await?;
    let mut ns = namespaces.get("manual").await?;
    assert_eq!(ns.spec.as_ref().and_then(|s| s.finalizers.clone()), Some(vec!["kubernetes".to_string()]));
    ns.spec.get_or_insert_with(Default::default).finalizers = Some(vec!["kubernetes".into(), "bosun.test/x".into()]);
    let body = serde_json::to_string(&ns)?;
    let path = cluster.dir.path().join("ns.json");
    tokio::fs::write(&path, body).await?;
    let path = path.display().to_string();
    cluster.kubectl(&["replace", "--raw", "/api/v1/namespaces/manual/finalize", "-f", &path]).await?;
    let ns = namespaces.get("manual").await?;
    assert_eq!(
        ns.spec.as_ref().and_then(|s| s.finalizers.clone()),
        Some(vec!["kubernetes".to_string(), "bosun.test/x".to_string()])
    );
    // An ordinary update cannot drop spec.finalizers.
    namespaces.patch("manual", &PatchParams::default(), &Patch::Merge(json!({"spec": {"finalizers": null}}))).await?;
    let ns = namespaces.get("manual").await?;
    assert_eq!(ns.spec.as_ref().and_then(|s| s.finalizers.as_ref()).map(Vec::len), Some(2));
    // The controller removes only its own finalizer; ours keeps the namespace.
    namespaces.delete("manual", &DeleteParams::default()).await?;
    eventually("controller finalized manual", || async {
        let ns = namespaces.get("manual").await?;
        let f = ns.spec.and_then(|s| s.finalizers).unwrap_or_default();
        Ok((f == ["bosun.test/x"]).then_some(()))
    })
    .await?;
    let content_removed = |ns: &Namespace| {
        let conditions = ns.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
        conditions.iter().any(|c| c.type_ == "NamespaceContentRemaining" && c.status == "False")
    };
    eventually("conditions say the content is gone", || async {
        Ok(content_removed(&namespaces.get("manual").await?).then_some(()))
    })
    .await?;
    let mut ns = namespaces.get("manual").await?;
    ns.spec.get_or_insert_with(Default::default).finalizers = Some(vec![]);
    namespaces.replace_subresource("finalize", "manual", &PostParams::default(), &ns).await?;
    assert!(namespaces.get_opt("manual").await?.is_none(), "removed as the last finalizer went");
    cluster.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_racing_a_namespace_deletion_leave_nothing_behind() -> Result<()> {
    let cluster = Cluster::start().await?;
    let client = cluster.client.clone();
    create_namespace(&client, "race").await?;
    create_config_maps(&client, "race", 50).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    // Writers keep creating ConfigMaps until the namespace is gone; each
    // create either lands (and is then deleted by the controller) or is
    // refused with 403 (terminating) or 404 (gone).
    let done = CancellationToken::new();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (cms, done) = (Api::<ConfigMap>::namespaced(client.clone(), "race"), done.clone());
        writers.push(tokio::spawn(async move {
            let (mut created, mut refused) = (0usize, 0usize);
            for i in 0.. {
                if done.is_cancelled() {
                    break;
                }
                let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("w{w}-{i}")}}))?;
                match cms.create(&PostParams::default(), &cm).await {
                    Ok(_) => created += 1,
                    Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => refused += 1,
                    Err(e) => return Err(anyhow::Error::from(e)),
                }
            }
            anyhow::Ok((created, refused))
        }));
    }
    namespaces.delete("race", &DeleteParams::default()).await?;
    eventually("namespace race gone", || async { Ok(namespaces.get_opt("race").await?.is_none().then_some(())) })
        .await?;
    done.cancel();
    let (mut created, mut refused) = (0, 0);
    for writer in writers {
        let (c, r) = writer.await??;
        created += c;
        refused += r;
    }
    assert!(refused > 0, "writers never saw the namespace terminate ({created} created)");
    let left = Api::<ConfigMap>::namespaced(client.clone(), "race").list(&ListParams::default()).await?;
    assert_eq!(left.items.len(), 0, "{created} created, {refused} refused, left: {:?}", left.items.len());
    cluster.stop().await;
    Ok(())
}
