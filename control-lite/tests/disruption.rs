//! PodDisruptionBudgets and the `pods/eviction` subresource against the
//! real in-process apiserver with every controller running (no agent: the
//! test writes the pods' Running/Ready status itself). The disruption
//! controller fills the budget's status; an eviction that would violate
//! the budget is refused with upstream's 429 naming the budget in its
//! cause; one the budget allows deletes the pod and spends the budget;
//! two budgets over one pod are a 500; `kubectl get pdb` prints kubectl's
//! columns.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

mod support;

use support::{eventually, Plane};

const WITHIN: Duration = Duration::from_secs(60);

async fn ready_pod(pods: &Api<Pod>, name: &str) -> Result<()> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": jiff::Timestamp::now().to_string()}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(())
}

/// Waits until budget `name` has seen its generation and allows `allowed`.
async fn settled(pdbs: &Api<PodDisruptionBudget>, name: &str, allowed: i32) -> Result<PodDisruptionBudget> {
    eventually(&format!("{name} allows {allowed}"), WITHIN, || async {
        let pdb = pdbs.get(name).await?;
        let status = pdb.status.clone().unwrap_or_default();
        let seen = status.observed_generation == pdb.metadata.generation;
        Ok((seen && status.disruptions_allowed == allowed).then_some(pdb))
    })
    .await
}

/// POSTs a policy/v1 Eviction of pod `name` with `gracePeriodSeconds: 0`
/// (kube's `Api::evict` spells the field `delete_options`, which an
/// apiserver ignores).
async fn evict(client: &kube::Client, name: &str) -> Result<(), kube::Error> {
    let build = |e: http::Error| kube::Error::BuildRequest(kube::core::request::Error::BuildRequest(e));
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name},
        "deleteOptions": {"gracePeriodSeconds": 0}});
    let req = http::Request::post(format!("/api/v1/namespaces/default/pods/{name}/eviction"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .map_err(build)?;
    client.request::<serde_json::Value>(req).await.map(|_| ())
}

/// A client that returns a 429 or a 500 as it comes (kube's default client
/// retries both with backoff, for minutes).
async fn no_retry(plane: &Plane) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(plane.dir.path().join("kubeconfig"))?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    config.default_retry = false;
    Ok(kube::Client::try_from(config)?)
}

fn step(what: &str, started: std::time::Instant) {
    eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_respect_disruption_budgets() -> Result<()> {
    let started = std::time::Instant::now();
    let plane = Plane::full().await?;
    step("plane up", started);
    let client = no_retry(&plane).await?;
    let pods: Api<Pod> = Api::namespaced(plane.client.clone(), "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(plane.client.clone(), "default");
    for name in ["web-0", "web-1"] {
        ready_pod(&pods, name).await?;
    }
    let budget: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    }))?;
    pdbs.create(&PostParams::default(), &budget).await?;
    let pdb = settled(&pdbs, "web", 0).await?;
    step("budget settled", started);
    let status = pdb.status.context("status")?;
    ensure!((status.expected_pods, status.current_healthy, status.desired_healthy) == (2, 2, 2), "{status:?}");
    let cond = status.conditions.unwrap_or_default();
    ensure!(
        cond.iter().any(|c| c.type_ == "DisruptionAllowed" && c.status == "False" && c.reason == "InsufficientPods"),
        "{cond:?}"
    );
    let table = plane.kubectl(&["get", "pdb"]).await?;
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    ensure!(header == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    ensure!(row[..4] == ["web", "2", "N/A", "0"], "{table}");

    // No disruption allowed: 429 with upstream's message, the budget named in the cause.
    match evict(&client, "web-0").await {
        Err(kube::Error::Api(s)) => {
            ensure!((s.code, s.reason.as_str()) == (429, "TooManyRequests"), "{s:?}");
            ensure!(s.message == "Cannot evict pod as it would violate the pod's disruption budget.", "{s:?}");
            let cause = s.details.as_ref().and_then(|d| d.causes.first()).context("cause")?;
            ensure!(cause.reason == "DisruptionBudget", "{cause:?}");
            ensure!(cause.message == "The disruption budget web needs 2 healthy pods and has 2 currently", "{cause:?}");
        }
        other => bail!("expected 429, got {other:?}"),
    }
    ensure!(pods.get_opt("web-0").await?.is_some(), "a refused eviction deletes nothing");

    // One disruption allowed: the pod goes, the budget is spent.
    pdbs.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"minAvailable": 1}}))).await?;
    settled(&pdbs, "web", 1).await?;
    step("budget patched and settled", started);
    evict(&client, "web-0").await?;
    ensure!(pods.get_opt("web-0").await?.is_none(), "evicted pod deleted");
    let spent = pdbs.get("web").await?.status.context("status")?;
    ensure!(spent.disruptions_allowed == 0, "spent: {spent:?}");
    match evict(&client, "web-1").await {
        Err(kube::Error::Api(s)) if s.code == 429 => {}
        other => bail!("the spent budget must refuse: {other:?}"),
    }

    // Two budgets over one pod: upstream's 500.
    let second: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "also-web"},
        "spec": {"maxUnavailable": "100%", "selector": {"matchLabels": {"app": "web"}}},
    }))?;
    pdbs.create(&PostParams::default(), &second).await?;
    match evict(&client, "web-1").await {
        Err(kube::Error::Api(s)) => {
            ensure!(s.code == 500 && s.message.contains("more than one PodDisruptionBudget"), "{s:?}");
        }
        other => bail!("expected 500, got {other:?}"),
    }

    // Invalid budgets are refused with field paths.
    let both: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "bad"},
        "spec": {"minAvailable": 1, "maxUnavailable": 1, "selector": {}},
    }))?;
    match pdbs.create(&PostParams::default(), &both).await {
        Err(kube::Error::Api(s)) => ensure!(s.code == 422 && s.message.contains("cannot be both set"), "{s:?}"),
        other => bail!("expected 422, got {other:?}"),
    }

    // A pod no budget covers is simply deleted.
    pdbs.delete("also-web", &DeleteParams::default()).await?;
    pdbs.delete("web", &DeleteParams::default()).await?;
    evict(&client, "web-1").await?;
    ensure!(pods.get_opt("web-1").await?.is_none(), "uncovered pod evicted");
    step("done", started);
    plane.stop().await;
    step("stopped", started);
    Ok(())
}
