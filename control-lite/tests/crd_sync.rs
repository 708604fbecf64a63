//! Two apiservers on one store (as `bosun control` processes on one etcd):
//! a CRD created through one is served by the other, and deleting it
//! through the first stops the other serving it, without a restart
//! (`apiserver/crd/sync.rs`). Over a shared SQLite store handle and over a
//! real one-member etcd (Debian's `/usr/bin/etcd`, `bosun_testing::etcd`)
//! with one client connection per apiserver.

use std::time::Duration;

use anyhow::Result;
use bosun_control::apiserver::ApiConfig;
use bosun_control::store::{EtcdOptions, Options, Store};
use bosun_testing::etcd::EtcdCluster;
use serde_json::{json, Value};

mod support;

use support::{eventually, start_apiserver_on, Apiserver};

/// Generous: a loaded 2-core machine.
const WITHIN: Duration = Duration::from_secs(60);

const WIDGETS: &str = "/apis/example.com/v1/namespaces/default/widgets";

fn crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

/// The status of a GET of `path` on `api`.
async fn status(api: &Apiserver, path: &str) -> Result<u16> {
    Ok(api.http()?.get(api.url(path)).send().await?.status().as_u16())
}

/// Waits until `api` answers `want` to a GET of `path`.
async fn wait_status(api: &Apiserver, path: &str, want: u16) -> Result<()> {
    eventually(&format!("{path} answering {want}"), WITHIN, || async {
        Ok((status(api, path).await? == want).then_some(()))
    })
    .await
}

async fn crd_follows_across_apiservers(a: Apiserver, b: Apiserver) -> Result<()> {
    wait_status(&b, "/api/v1/namespaces/default", 200).await?;
    assert_eq!(status(&b, WIDGETS).await?, 404, "no CRD yet");
    let http = a.http()?;
    let created =
        http.post(a.url("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")).json(&crd()).send().await?;
    assert_eq!(created.status().as_u16(), 201, "{}", created.text().await?);
    wait_status(&a, WIDGETS, 200).await?;
    wait_status(&b, WIDGETS, 200).await?;
    // An object written through B is read through A.
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}});
    let made = b.http()?.post(b.url(WIDGETS)).json(&w).send().await?;
    assert_eq!(made.status().as_u16(), 201, "{}", made.text().await?);
    let got: Value = http.get(a.url(&format!("{WIDGETS}/w1"))).send().await?.error_for_status()?.json().await?;
    assert_eq!(got["spec"]["size"], 3);
    let deleted = http
        .delete(a.url("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com"))
        .send()
        .await?;
    assert!(deleted.status().is_success(), "{}", deleted.text().await?);
    wait_status(&a, WIDGETS, 404).await?;
    wait_status(&b, WIDGETS, 404).await?;
    for api in [a, b] {
        support::stop(api.token, vec![api.server]).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_follows_on_a_shared_sqlite_store() -> Result<()> {
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let store = Store::open(&dir_a.path().join("store.db"))?;
    let a = start_apiserver_on(dir_a.path(), store.clone(), ApiConfig::default(), |s| s).await?;
    wait_status(&a, "/api/v1/namespaces/default", 200).await?;
    let b = start_apiserver_on(dir_b.path(), store, ApiConfig::default(), |s| s).await?;
    crd_follows_across_apiservers(a, b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_follows_on_one_etcd() -> Result<()> {
    let etcd = tokio::task::spawn_blocking(|| EtcdCluster::start(1)).await??;
    let connect = || Store::connect_etcd(EtcdOptions::new(etcd.endpoints()), Options::default());
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = start_apiserver_on(dir_a.path(), connect().await?, ApiConfig::default(), |s| s).await?;
    wait_status(&a, "/api/v1/namespaces/default", 200).await?;
    let b = start_apiserver_on(dir_b.path(), connect().await?, ApiConfig::default(), |s| s).await?;
    crd_follows_across_apiservers(a, b).await
}
