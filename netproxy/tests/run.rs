//! `run_with` against a minimal fake apiserver (list + watch for Services
//! and EndpointSlices over HTTP on 127.0.0.1), with the recording fake nft:
//! checks the kube watcher wiring end to end, from list to full load, from
//! a watch event to a diff sync, and shutdown on cancel.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bosun_netproxy::model::SERVICE_NAME_LABEL;
use bosun_netproxy::nft::testing::FakeNft;
use bosun_netproxy::{run_with, ProxyConfig};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// One fake collection: its list content and a feed of watch events.
#[derive(Clone)]
struct Collection {
    list: Value,
    watch: broadcast::Sender<String>,
}

async fn serve(State(collection): State<Collection>, Query(query): Query<HashMap<String, String>>) -> Response {
    if query.get("watch").map(String::as_str) != Some("true") {
        return Json(collection.list).into_response();
    }
    let receiver = collection.watch.subscribe();
    let events = futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(line) => return Some((Ok::<_, Infallible>(line), receiver)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Response::new(Body::from_stream(events))
}

fn service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "default", "name": "web", "resourceVersion": "1"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80, "targetPort": 8080}]}
    })
}

fn slice(ips: &[&str], version: &str) -> Value {
    let endpoints: Vec<Value> = ips.iter().map(|ip| json!({"addresses": [ip]})).collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": "default", "name": "web-abc", "resourceVersion": version,
                     "labels": {SERVICE_NAME_LABEL: "web"}},
        "addressType": "IPv4",
        "ports": [{"port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints
    })
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

/// Polls `check` until it holds or 10 s pass.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn run_lists_watches_syncs_and_stops_on_cancel() -> anyhow::Result<()> {
    let services = Collection { list: list("ServiceList", "v1", vec![service()]), watch: broadcast::channel(16).0 };
    let slices = Collection {
        list: list("EndpointSliceList", "discovery.k8s.io/v1", vec![slice(&["10.244.0.2"], "1")]),
        watch: broadcast::channel(16).0,
    };
    let app = Router::new()
        .route("/api/v1/services", get(serve).with_state(services.clone()))
        .route("/apis/discovery.k8s.io/v1/endpointslices", get(serve).with_state(slices.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let server_token = CancellationToken::new();
    let shutdown = server_token.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
    });

    let client = kube::Client::try_from(kube::Config::new(url.parse()?))?;
    let nft = Arc::new(FakeNft::new());
    let token = CancellationToken::new();
    let config = ProxyConfig {
        table_name: "bosun_run".into(),
        min_sync_interval: Duration::from_millis(5),
        ..ProxyConfig::default()
    };
    let proxy = tokio::spawn(run_with(client, config, nft.clone(), token.clone()));

    eventually("the full load", || !nft.scripts().is_empty()).await?;
    let first = &nft.scripts()[0];
    ensure!(first.starts_with("table ip bosun_run\ndelete table ip bosun_run\n"), "{first}");
    ensure!(first.contains("10.96.0.10 . tcp . 80 . 0 : 10.244.0.2 . 8080"), "{first}");

    eventually("the slice watch", || slices.watch.receiver_count() > 0).await?;
    let event = json!({"type": "MODIFIED", "object": slice(&["10.244.0.2", "10.244.0.3"], "2")});
    slices.watch.send(format!("{event}\n")).context("watch is open")?;
    eventually("the diff sync", || nft.scripts().len() >= 2).await?;
    let second = &nft.scripts()[1];
    ensure!(second.contains("add element ip bosun_run hairpin { 10.244.0.3 . 10.244.0.3 }"), "{second}");
    ensure!(!second.contains("delete table"), "diff sync reloaded the table: {second}");

    token.cancel();
    tokio::time::timeout(Duration::from_secs(5), proxy)
        .await
        .context("run stops on cancel")??
        .context("run returns Ok")?;
    server_token.cancel();
    drop((services, slices));
    server.await??;
    Ok(())
}
