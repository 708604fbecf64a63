//! Deleting a CRD with the real kubectl: the CRD is held by its finalizer
//! (condition `Terminating`) while its objects are deleted through the
//! normal path, creates are refused meanwhile, an object's own finalizer is
//! waited for, and a CRD marked when the apiserver stopped is finished by
//! the next start.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bosun_control::apiserver::ApiConfig;
use bosun_control::store::Store;
use serde_json::{json, Value};

mod support;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

const FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";
const WAIT: Duration = Duration::from_secs(90);

fn gadget(name: &str, finalizers: &[&str]) -> String {
    json!({"apiVersion": "example.com/v1", "kind": "Gadget",
        "metadata": {"name": name, "namespace": "default", "finalizers": finalizers}})
    .to_string()
}

async fn kubectl(dir: &std::path::Path, args: &[&str]) -> Result<String> {
    support::kubectl_ok(dir, args).await
}

async fn apply(dir: &std::path::Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    kubectl(dir, &["apply", "-f", &path.to_string_lossy()]).await?;
    Ok(())
}

async fn gadget_names(dir: &std::path::Path) -> Result<Vec<String>> {
    let list: Value = serde_json::from_str(&kubectl(dir, &["get", "gadgets", "-o", "json"]).await?)?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .map(str::to_owned)
        .collect())
}

async fn crd_exists(dir: &std::path::Path) -> Result<bool> {
    let out = support::kubectl(dir, &["get", "crd", "gadgets.example.com", "-o", "name"]).await?;
    Ok(out.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_crd_waits_for_its_objects_and_refuses_new_ones() -> Result<()> {
    let plane = support::Plane::apiserver().await?;
    let dir = plane.dir.path();
    apply(dir, "crd.yaml", CRD).await?;
    kubectl(dir, &["wait", "--for", "condition=established", "--timeout=60s", "crd/gadgets.example.com"]).await?;
    let crd: Value = serde_json::from_str(&kubectl(dir, &["get", "crd", "gadgets.example.com", "-o", "json"]).await?)?;
    assert!(crd["metadata"].get("finalizers").is_none(), "added by the DELETE, as upstream: {crd}");
    apply(dir, "g1.json", &gadget("g1", &[])).await?;
    apply(dir, "g2.json", &gadget("g2", &[])).await?;
    apply(dir, "held.json", &gadget("held", &["example.com/hold"])).await?;

    kubectl(dir, &["delete", "crd", "gadgets.example.com", "--wait=false"]).await?;
    // The objects without finalizers go; the held one is marked and stays.
    support::eventually("g1 and g2 deleted", WAIT, || async {
        Ok((gadget_names(dir).await? == ["held"]).then_some(()))
    })
    .await?;
    let held: Value = serde_json::from_str(&kubectl(dir, &["get", "gadget", "held", "-o", "json"]).await?)?;
    ensure!(held["metadata"]["deletionTimestamp"].is_string(), "held is marked: {held}");
    let crd: Value = serde_json::from_str(&kubectl(dir, &["get", "crd", "gadgets.example.com", "-o", "json"]).await?)?;
    assert_eq!(crd["metadata"]["finalizers"], json!([FINALIZER]), "{crd}");
    let terminating = crd["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Terminating");
    let terminating = terminating.context("Terminating condition")?;
    assert_eq!(
        (terminating["status"].as_str(), terminating["reason"].as_str()),
        (Some("True"), Some("InstanceDeletionInProgress"))
    );

    // No new objects while it is being deleted (405, as upstream).
    let path = dir.join("g3.json");
    std::fs::write(&path, gadget("g3", &[]))?;
    let refused = support::kubectl(dir, &["create", "-f", &path.to_string_lossy()]).await?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && stderr.contains("create not allowed while custom resource definition is terminating"),
        "{stderr}"
    );

    // Releasing the held object lets the CRD go.
    kubectl(dir, &["patch", "gadget", "held", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]).await?;
    support::eventually("the CRD removed", WAIT, || async { Ok((!crd_exists(dir).await?).then_some(())) }).await?;
    let gone = support::kubectl(dir, &["get", "--raw", "/apis/example.com/v1/namespaces/default/gadgets"]).await?;
    assert!(!gone.status.success(), "still served after the CRD was removed");
    plane.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_marked_before_a_stop_is_cleaned_up_by_the_next_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("store.db"))?;
    let api = support::start_apiserver_on(dir.path(), store.clone(), ApiConfig::default(), |s| s).await?;
    apply(dir.path(), "crd.yaml", CRD).await?;
    kubectl(dir.path(), &["wait", "--for", "condition=established", "--timeout=60s", "crd/gadgets.example.com"])
        .await?;
    for name in ["a", "b", "c"] {
        apply(dir.path(), &format!("{name}.json"), &gadget(name, &[])).await?;
    }
    api.token.cancel();
    let _ = api.server.await;

    // As a crash right after the DELETE marked it: marked, objects still there.
    let key = "/registry/apiextensions.k8s.io/customresourcedefinitions/gadgets.example.com";
    let kv = store.get(key).await?.context("stored CRD")?;
    let mut crd: Value = serde_json::from_slice(&kv.value)?;
    crd["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    crd["metadata"]["finalizers"] = json!([FINALIZER]);
    store.update(key, serde_json::to_vec(&crd)?, Some(kv.mod_revision)).await?;
    let (objects, _) = store.list("/registry/example.com/gadgets/").await?;
    assert_eq!(objects.len(), 3);

    let api = support::start_apiserver_on(dir.path(), store.clone(), ApiConfig::default(), |s| s).await?;
    support::eventually("the CRD and its objects removed after the restart", WAIT, || async {
        let (objects, _) = store.list("/registry/example.com/gadgets/").await?;
        Ok((objects.is_empty() && store.get(key).await?.is_none()).then_some(()))
    })
    .await?;
    api.token.cancel();
    let _ = api.server.await;
    store.close().await;
    Ok(())
}
