//! Aggregated discovery end to end: the negotiated `/api` and `/apis`
//! answers over HTTPS, and the real `/usr/bin/kubectl` (1.32) using them.
//! kubectl's `-v=6` log names every request it sends; each kubectl run gets
//! a fresh cache directory, so its discovery requests are all in the log.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

mod support;

/// What kubectl 1.32 sends to `/api` and `/apis`.
const KUBECTL_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
const V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Runs kubectl at `-v=6` with a cache directory of its own; requires
/// success; returns stdout and the paths of the GETs it logged.
async fn kubectl_traced(dir: &Path, cache: &str, args: &[&str]) -> Result<(String, Vec<String>)> {
    let run = tokio::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--cache-dir")
        .arg(dir.join(cache))
        .arg("-v=6")
        .args(args)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(90), run).await.context("kubectl timed out")??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("kubectl {args:?}: {stderr}");
    }
    Ok((String::from_utf8(out.stdout)?, logged_gets(&stderr)))
}

/// The paths of the GETs of a `-v=6` log, in either of kubectl's forms:
/// `GET https://host/path?query 200 OK` or
/// `"Response" verb="GET" url="https://host/path?query" status="200 OK"`.
fn logged_gets(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| {
            let url = match line.split_once("verb=\"GET\" url=\"https://") {
                Some((_, rest)) => rest,
                None => line.split_once("GET https://")?.1,
            };
            let path = &url[url.find('/')?..];
            Some(path.split(['?', ' ', '"']).next().unwrap_or_default().to_string())
        })
        .collect()
}

/// Discovery paths: `/api`, `/apis`, `/api/v1`, `/apis/<g>`, `/apis/<g>/<v>`.
fn is_discovery(path: &str) -> bool {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(segs.as_slice(), ["api"] | ["api", _] | ["apis"] | ["apis", _] | ["apis", _, _])
}

/// `kubectl api-resources -o name` as computed from the legacy documents:
/// `pods`, `deployments.apps`, ... (subresources are not listed).
async fn legacy_resource_names(http: &reqwest::Client, api: &support::Apiserver) -> Result<BTreeSet<String>> {
    let get = |path: String| {
        let req = http.get(api.url(&path)).header("Accept", "application/json");
        async move { Ok::<Value, anyhow::Error>(req.send().await?.error_for_status()?.json().await?) }
    };
    let mut lists = vec![("".to_string(), get("/api/v1".into()).await?)];
    let groups = get("/apis".into()).await?;
    for group in groups["groups"].as_array().context("groups")? {
        let name = group["name"].as_str().context("name")?;
        let gv = group["preferredVersion"]["groupVersion"].as_str().context("groupVersion")?;
        lists.push((name.to_string(), get(format!("/apis/{gv}")).await?));
    }
    let mut names = BTreeSet::new();
    for (group, list) in lists {
        for r in list["resources"].as_array().context("resources")? {
            let name = r["name"].as_str().context("name")?;
            if !name.contains('/') {
                names.insert(if group.is_empty() { name.to_string() } else { format!("{name}.{group}") });
            }
        }
    }
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roots_negotiate_aggregated_discovery_with_etag() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = support::start_apiserver(dir.path()).await?;
    let http = api.http()?;

    // Asked for: the aggregated list, its content type, Vary and an ETag.
    let resp = http.get(api.url("/apis")).header("Accept", KUBECTL_ACCEPT).send().await?;
    assert_eq!(resp.status(), 200);
    let header = |r: &reqwest::Response, h: &str| r.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header(&resp, "content-type").as_deref(), Some(V2));
    assert_eq!(header(&resp, "vary").as_deref(), Some("Accept"));
    let etag = header(&resp, "etag").context("etag")?;
    let doc: Value = resp.json().await?;
    assert_eq!(doc["kind"], "APIGroupDiscoveryList");
    assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2");
    let apps = doc["items"].as_array().into_iter().flatten().find(|g| g["metadata"]["name"] == "apps");
    assert!(apps.is_some(), "apps in {doc}");

    // The same ETag again: 304, no body.
    let again = http.get(api.url("/apis")).header("Accept", V2).header("If-None-Match", &etag).send().await?;
    assert_eq!(again.status(), 304);
    assert_eq!(header(&again, "etag"), Some(etag));
    assert!(again.bytes().await?.is_empty());

    // v2beta1 for older clients; the core group under /api.
    let beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
    let core: Value = http.get(api.url("/api")).header("Accept", beta).send().await?.json().await?;
    assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2beta1");
    assert_eq!(core["items"][0]["versions"][0]["version"], "v1");

    // Not asked for: the legacy documents, as before.
    for (path, kind) in [("/apis", "APIGroupList"), ("/api", "APIVersions")] {
        let resp = http.get(api.url(path)).header("Accept", "application/json").send().await?;
        assert_eq!(header(&resp, "content-type").as_deref(), Some("application/json"));
        let doc: Value = resp.json().await?;
        assert_eq!(doc["kind"], kind);
    }
    support::stop(api.token.clone(), vec![api.server]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_discovers_everything_in_two_requests() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = support::start_apiserver(dir.path()).await?;
    let http = api.http()?;

    // api-resources lists exactly what the legacy documents list.
    let (out, gets) = kubectl_traced(dir.path(), "cache-api-resources", &["api-resources", "-o", "name"]).await?;
    let listed: BTreeSet<String> = out.lines().map(str::to_owned).collect();
    assert_eq!(listed, legacy_resource_names(&http, &api).await?);
    let discovery: Vec<&String> = gets.iter().filter(|p| is_discovery(p)).collect();
    eprintln!("kubectl api-resources: discovery GETs {discovery:?}");
    assert_eq!(discovery, ["/api", "/apis"], "all GETs: {gets:?}");

    // get pods: two discovery requests, then the list; no per-group GET.
    let (_, gets) = kubectl_traced(dir.path(), "cache-get-pods", &["get", "pods", "-A"]).await?;
    let discovery: Vec<&String> = gets.iter().filter(|p| is_discovery(p)).collect();
    eprintln!("kubectl get pods: GETs {gets:?}");
    assert_eq!(discovery, ["/api", "/apis"], "all GETs: {gets:?}");
    assert!(gets.iter().any(|p| p == "/api/v1/pods"), "{gets:?}");

    // Short names of named groups resolve through the aggregated answer
    // (kubectl fails on a name it cannot resolve).
    kubectl_traced(dir.path(), "cache-short", &["get", "deploy,pdb,pc", "-A"]).await?;
    support::stop(api.token.clone(), vec![api.server]).await;
    Ok(())
}

/// Every group's resources as `(api_version, plural, kind, scope, verbs,
/// subresources)` lines, sorted.
fn summary(discovery: &kube::Discovery) -> Vec<String> {
    let mut out = Vec::new();
    for group in discovery.groups() {
        for version in group.versions() {
            for (ar, caps) in group.versioned_resources(version) {
                let mut subs: Vec<String> = caps
                    .subresources
                    .iter()
                    .map(|(s, c)| format!("{}:{}:{:?}", s.plural, s.kind, c.operations))
                    .collect();
                subs.sort();
                out.push(format!(
                    "{} {} {} {:?} {:?} {subs:?}",
                    ar.api_version, ar.plural, ar.kind, caps.scope, caps.operations
                ));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_reads_the_same_resources_from_both_forms() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = support::start_apiserver(dir.path()).await?;
    let client = api.kube_client().await?;
    // kube-rs parses the aggregated answer into upstream's typed structs.
    let aggregated = kube::Discovery::new(client.clone()).run_aggregated().await?;
    let legacy = kube::Discovery::new(client).run().await?;
    let (aggregated, legacy) = (summary(&aggregated), summary(&legacy));
    let deployments = aggregated.iter().find(|l| l.starts_with("apps/v1 deployments Deployment "));
    assert!(
        deployments.is_some_and(|l| l.contains("scale:Scale") && l.contains("status:Deployment")),
        "{aggregated:#?}"
    );
    assert_eq!(aggregated, legacy);
    support::stop(api.token.clone(), vec![api.server]).await;
    Ok(())
}

#[test]
fn verbose_log_lines_become_paths() {
    let log = "I1203 15:00:00.1 1 round_trippers.go:553] GET https://127.0.0.1:4431/apis?timeout=32s 200 OK in 3 milliseconds\n\
               I1203 15:00:00.2 1 round_trippers.go:553] GET https://127.0.0.1:4431/api/v1/pods?limit=500 200 OK in 1 milliseconds\n\
               I1203 15:19:17.93 1 round_trippers.go:632] \"Response\" verb=\"GET\" url=\"https://127.0.0.1:40453/api?timeout=32s\" status=\"200 OK\" milliseconds=7\n\
               I1203 other line";
    assert_eq!(logged_gets(log), ["/apis", "/api/v1/pods", "/api"]);
    assert!(is_discovery("/apis/apps/v1") && is_discovery("/api") && !is_discovery("/api/v1/pods"));
}
