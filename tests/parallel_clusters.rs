//! Two throwaway clusters from `bosun-testing` at once: the two tests below
//! run in parallel (cargo's test threads), each in its own cluster with its
//! own slot. Each serves a Deployment behind a Service and reaches it
//! through its ClusterIP from the host; the Service range, bridge and
//! nftables table are the slot's, so neither sees the other. Stopping a
//! cluster checks that nothing of it is left on the host.

mod support;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bosun_testing::TestCluster;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;

async fn web_behind_a_service_in_a_cluster_of_its_own(node: &str) -> Result<()> {
    let cluster = TestCluster::builder()
        .bosun_binary(env!("CARGO_BIN_EXE_bosun"))
        .pause_binary(support::pause_binary())
        .node_name(node)
        .start()
        .await?;
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/web.yaml"))?
        .replace("127.0.0.1:5000/bosun/app:1.0", &cluster.app_image())
        .replace("replicas: 3", "replicas: 1");
    let path = cluster.dir().join("web.yaml");
    std::fs::write(&path, manifest)?;
    let applied = cluster.kubectl().args(["apply", "-f"]).arg(&path).output()?;
    ensure!(applied.status.success(), "kubectl apply: {}", String::from_utf8_lossy(&applied.stderr));

    let services: Api<Service> = Api::default_namespaced(cluster.client().await?);
    let ip = services.get("web").await?.spec.and_then(|s| s.cluster_ip).context("web has a ClusterIP")?;
    let range = &cluster.network().service_cidr;
    let prefix = range.trim_end_matches("0.0/16");
    ensure!(ip.starts_with(prefix), "ClusterIP {ip} is in the slot's range {range}");

    let url = format!("http://{ip}/");
    let deadline = Instant::now() + Duration::from_secs(180);
    let page = loop {
        match support::cluster::get(&url) {
            Ok(page) if page.starts_with("hello from web-") => break page,
            other if Instant::now() > deadline => anyhow::bail!("{url} did not answer in time: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    println!("{node}: {url} -> {page}");
    let table =
        std::process::Command::new("nft").args(["list", "table", "ip", &cluster.network().proxy_table]).output()?;
    ensure!(String::from_utf8_lossy(&table.stdout).contains(&ip), "{ip} is in the slot's own nft table");

    cluster.stop()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_cluster_serves_its_service() -> Result<()> {
    web_behind_a_service_in_a_cluster_of_its_own("par-a").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_cluster_serves_its_service() -> Result<()> {
    web_behind_a_service_in_a_cluster_of_its_own("par-b").await
}
