//! The Deployment rollout surface with the real kubectl against the
//! in-process apiserver and controllers (no nodes: pods stay Pending, so
//! nothing ever becomes available): progress deadline, pause/resume,
//! revision history and undo, proportional scaling.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

mod support;

use support::Plane;

const NS: &str = "default";
const REVISION: &str = "deployment.kubernetes.io/revision";

fn deployment(name: &str, image: &str, extra: serde_json::Value) -> Result<Deployment> {
    let mut spec = json!({
        "replicas": 1,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }
    });
    if let (Some(base), Some(more)) = (spec.as_object_mut(), extra.as_object()) {
        base.extend(more.clone());
    }
    Ok(serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec}))?)
}

async fn eventually<T, F, Fut>(what: &str, check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    support::eventually(what, Duration::from_secs(60), check).await
}

/// Images of the ReplicaSets of `app`, by revision.
async fn sets(api: &Api<ReplicaSet>, app: &str) -> Result<Vec<(String, String)>> {
    let list = api.list(&ListParams::default().labels(&format!("app={app}"))).await?;
    let mut out: Vec<(String, String)> = list
        .items
        .iter()
        .map(|rs| {
            let image = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            (rs.annotations().get(REVISION).cloned().unwrap_or_default(), image)
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The Deployment once the controller has seen its latest generation, with
/// its Progressing reason.
async fn observed(api: &Api<Deployment>, name: &str, reason: &str) -> Result<Deployment> {
    eventually(&format!("{name} observed with Progressing {reason}"), || async {
        let d = api.get(name).await?;
        let status = d.status.clone().unwrap_or_default();
        let current = status.observed_generation == d.metadata.generation;
        let progressing = status.conditions.iter().flatten().find(|c| c.type_ == "Progressing");
        Ok((current && progressing.and_then(|c| c.reason.as_deref()) == Some(reason)).then_some(d))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_rollout_exceeds_its_progress_deadline() -> Result<()> {
    let plane = Plane::full().await?;
    let api: Api<Deployment> = Api::namespaced(plane.client.clone(), NS);
    let d = deployment("stuck", "nginx:1", json!({"progressDeadlineSeconds": 3}))?;
    api.create(&PostParams::default(), &d).await?;
    let out = plane.kubectl_raw(&["rollout", "status", "deployment/stuck", "--timeout=60s"]).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rollout status must fail");
    assert!(stderr.contains("error: deployment \"stuck\" exceeded its progress deadline"), "{stderr}");
    let d = api.get("stuck").await?;
    let c = d.status.unwrap_or_default().conditions.unwrap_or_default();
    let progressing = c.iter().find(|c| c.type_ == "Progressing").expect("Progressing");
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_deref()),
        ("False", Some("ProgressDeadlineExceeded"))
    );
    plane.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_history_and_undo() -> Result<()> {
    let plane = Plane::full().await?;
    let api: Api<Deployment> = Api::namespaced(plane.client.clone(), NS);
    let rs_api: Api<ReplicaSet> = Api::namespaced(plane.client.clone(), NS);
    let mut d = deployment("web", "nginx:1", json!({}))?;
    d.metadata.annotations = Some([("kubernetes.io/change-cause".to_string(), "first".to_string())].into());
    api.create(&PostParams::default(), &d).await?;
    eventually("first ReplicaSet", || async {
        let s = sets(&rs_api, "web").await?;
        Ok((s == [("1".to_string(), "nginx:1".to_string())]).then_some(()))
    })
    .await?;

    // Paused: the template changes and the Deployment scales, but no new ReplicaSet.
    plane.kubectl(&["rollout", "pause", "deployment/web"]).await?;
    plane.kubectl(&["set", "image", "deployment/web", "c=nginx:2"]).await?;
    plane.kubectl(&["annotate", "deployment/web", "kubernetes.io/change-cause=second", "--overwrite"]).await?;
    plane.kubectl(&["scale", "deployment/web", "--replicas=2"]).await?;
    observed(&api, "web", "DeploymentPaused").await?;
    eventually("old set scaled while paused", || async {
        let list = rs_api.list(&ListParams::default().labels("app=web")).await?;
        let replicas: Vec<Option<i32>> =
            list.items.iter().map(|rs| rs.spec.as_ref().and_then(|s| s.replicas)).collect();
        Ok((replicas == [Some(2)]).then_some(()))
    })
    .await?;
    assert_eq!(sets(&rs_api, "web").await?, [("1".to_string(), "nginx:1".to_string())], "no rollout while paused");

    // Resumed: the new template rolls out as revision 2.
    plane.kubectl(&["rollout", "resume", "deployment/web"]).await?;
    eventually("second ReplicaSet", || async {
        let s = sets(&rs_api, "web").await?;
        Ok((s.len() == 2).then_some(s))
    })
    .await
    .map(|s| assert_eq!(s, [("1".to_string(), "nginx:1".to_string()), ("2".to_string(), "nginx:2".to_string())]))?;

    let history = plane.kubectl(&["rollout", "history", "deployment/web"]).await?;
    let rows: Vec<Vec<&str>> =
        history.lines().skip(2).map(|l| l.split_whitespace().collect()).filter(|r: &Vec<&str>| !r.is_empty()).collect();
    assert_eq!(rows, [vec!["1", "first"], vec!["2", "second"]], "{history}");

    // Undo: the first template comes back, its ReplicaSet becomes revision 3.
    let out = plane.kubectl(&["rollout", "undo", "deployment/web"]).await?;
    assert!(out.contains("rolled back"), "{out}");
    let d = api.get("web").await?;
    let image = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone());
    assert_eq!(image.as_deref(), Some("nginx:1"));
    eventually("first template is revision 3", || async {
        let s = sets(&rs_api, "web").await?;
        let d = api.get("web").await?;
        let rev = d.annotations().get(REVISION).cloned();
        Ok((s == [("2".to_string(), "nginx:2".to_string()), ("3".to_string(), "nginx:1".to_string())]
            && rev.as_deref() == Some("3"))
        .then_some(()))
    })
    .await?;
    let out = plane.kubectl(&["rollout", "undo", "deployment/web", "--to-revision=2"]).await?;
    assert!(out.contains("rolled back"), "{out}");
    let history = plane.kubectl(&["rollout", "history", "deployment/web", "--revision=3"]).await?;
    assert!(history.contains("nginx:1"), "{history}");
    plane.stop().await;
    Ok(())
}

/// `spec.replicas` of the ReplicaSets of `app`, by image.
async fn sizes(api: &Api<ReplicaSet>, app: &str) -> Result<Vec<(String, i32)>> {
    let list = api.list(&ListParams::default().labels(&format!("app={app}"))).await?;
    let mut out: Vec<(String, i32)> = list
        .items
        .iter()
        .map(|rs| {
            let spec = rs.spec.as_ref();
            let image = spec
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            (image, spec.and_then(|s| s.replicas).unwrap_or(0))
        })
        .collect();
    out.sort();
    Ok(out)
}

async fn wait_sizes(api: &Api<ReplicaSet>, app: &str, want: &[(&str, i32)]) -> Result<()> {
    let want: Vec<(String, i32)> = want.iter().map(|(i, r)| (i.to_string(), *r)).collect();
    eventually(&format!("{app} ReplicaSets at {want:?}"), || async {
        let got = sizes(api, app).await?;
        Ok((got == want).then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_a_stuck_rollout_is_proportional() -> Result<()> {
    let plane = Plane::full().await?;
    let api: Api<Deployment> = Api::namespaced(plane.client.clone(), NS);
    let rs_api: Api<ReplicaSet> = Api::namespaced(plane.client.clone(), NS);
    let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}});
    let d = deployment("prop", "nginx:1", json!({"replicas": 10, "strategy": strategy}))?;
    api.create(&PostParams::default(), &d).await?;
    wait_sizes(&rs_api, "prop", &[("nginx:1", 10)]).await?;

    // No pod ever becomes available: the rollout stops at 8 old + 5 new.
    plane.kubectl(&["set", "image", "deployment/prop", "c=nginx:2"]).await?;
    wait_sizes(&rs_api, "prop", &[("nginx:1", 8), ("nginx:2", 5)]).await?;

    // The documented example: 5 more replicas, 3 to the old set, 2 to the new.
    plane.kubectl(&["scale", "deployment/prop", "--replicas=15"]).await?;
    wait_sizes(&rs_api, "prop", &[("nginx:1", 11), ("nginx:2", 7)]).await?;

    // Paused and scaled down to 5 (+3 surge): 18 -> 8, largest shrinks most.
    plane.kubectl(&["rollout", "pause", "deployment/prop"]).await?;
    plane.kubectl(&["scale", "deployment/prop", "--replicas=5"]).await?;
    wait_sizes(&rs_api, "prop", &[("nginx:1", 5), ("nginx:2", 3)]).await?;
    let rs = rs_api.list(&ListParams::default().labels("app=prop")).await?;
    for rs in &rs.items {
        let notes = rs.annotations();
        assert_eq!(notes.get("deployment.kubernetes.io/desired-replicas").map(String::as_str), Some("5"));
        assert_eq!(notes.get("deployment.kubernetes.io/max-replicas").map(String::as_str), Some("8"));
    }
    plane.stop().await;
    Ok(())
}
