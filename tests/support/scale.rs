//! Load for the scale acceptance test and benchmark: many Services selecting
//! the `web` Deployment's pods, created concurrently over HTTPS, and the
//! measurements both share (Service create -> EndpointSlice written -> nft
//! element -> ClusterIP answering; pod Ready -> endpoint in nft).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use super::pods::is_ready;

use super::cluster::{get_within, Cluster};
use super::nftmon::NftMonitor;

/// Brings up a cluster on `node` with the `web` Deployment (3 pods) Running
/// and its Service in nft, watched by an [`NftMonitor`] started while the
/// table is still small (it reads the table once at start).
pub fn start_web_cluster(node: &str) -> Result<(Cluster, NftMonitor)> {
    let cluster = Cluster::start(node)?;
    let nft = NftMonitor::start()?;
    let (ok, _, err) = cluster.apply_stdin(&cluster.web_manifest()?)?;
    ensure!(ok, "applying web: {err}");
    cluster.wait_running(3, Duration::from_secs(180))?;
    let web_ip = cluster.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"])?;
    nft.wait_service(&web_ip, Duration::from_secs(60))?;
    Ok((cluster, nft))
}

/// Port every load Service listens on.
pub const PORT: u16 = 80;
const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
const SERVICES: &str = "/api/v1/namespaces/default/services";
const PODS: &str = "/api/v1/namespaces/default/pods";

/// An HTTPS client of a cluster's apiserver with its admin identity.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(cluster: &Cluster) -> Result<Api> {
        let access = cluster.access()?;
        Ok(Api { base: access.server.clone(), http: access.client()? })
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(status.is_success(), "GET {path}: {status}: {body}");
        Ok(body)
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let response = request.send().await.with_context(|| what.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.with_context(|| what.to_string())?;
        ensure!(status.is_success(), "{what}: {status}: {body}");
        Ok(body)
    }

    /// Creates Service `name` selecting app=web; returns its ClusterIP.
    pub async fn create_service(&self, name: &str) -> Result<String> {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {"load": "scale"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]}
        });
        let url = format!("{}{SERVICES}", self.base);
        let what = format!("creating service {name}");
        // The apiserver sheds load with 429 + Retry-After; honour it a few times.
        for _ in 0..20 {
            let response = self.http.post(&url).json(&svc).send().await.with_context(|| what.clone())?;
            if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                let after = response
                    .headers()
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(after.clamp(1, 10))).await;
                continue;
            }
            let status = response.status();
            let created: Value = response.json().await.with_context(|| what.clone())?;
            ensure!(status.is_success(), "{what}: {status}: {created}");
            return created["spec"]["clusterIP"]
                .as_str()
                .map(str::to_string)
                .context("clusterIP of the created Service");
        }
        bail!("{what}: still throttled (429) after 20 attempts")
    }

    /// Sets the web Deployment's replicas.
    pub async fn scale_web(&self, replicas: u32) -> Result<()> {
        let url = format!("{}/apis/apps/v1/namespaces/default/deployments/web", self.base);
        let patch = json!({"spec": {"replicas": replicas}});
        let request =
            self.http.patch(url).header("Content-Type", "application/merge-patch+json").body(patch.to_string());
        self.send(request, "scaling deployment web").await.map(drop)
    }

    /// Ready web pods: (name, ip).
    pub async fn ready_web_pods(&self) -> Result<Vec<(String, String)>> {
        let pods = self.get(&format!("{PODS}?labelSelector=app%3Dweb")).await?;
        Ok(pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| is_ready(p))
            .filter_map(|p| {
                Some((p["metadata"]["name"].as_str()?.to_string(), p["status"]["podIP"].as_str()?.to_string()))
            })
            .collect())
    }

    /// Opens the watch `path` (returns once the apiserver answered with
    /// headers, i.e. the watch is registered).
    pub async fn open_watch(&self, path: &str) -> Result<reqwest::Response> {
        let response = self.http.get(format!("{}{path}", self.base)).timeout(Duration::from_secs(600)).send().await?;
        ensure!(response.status().is_success(), "watch {path}: {}", response.status());
        Ok(response)
    }
}

/// Reads watch events from `response` until one whose object and type
/// satisfy `done`; returns when it arrived.
pub async fn watch_until(mut response: reqwest::Response, done: impl Fn(&Value, &str) -> bool) -> Result<Instant> {
    let mut buffer = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else { continue };
            if done(&event["object"], event["type"].as_str().unwrap_or_default()) {
                return Ok(Instant::now());
            }
        }
    }
    bail!("watch ended")
}

/// Creates Services `{prefix}{i}` for `i` in `range` with at most
/// `in_flight` requests at once; returns their ClusterIPs in order.
pub async fn create_services(
    api: &Api,
    prefix: &str,
    range: std::ops::Range<usize>,
    in_flight: usize,
) -> Result<Vec<String>> {
    let start = range.start;
    let total = range.len();
    let next = Arc::new(AtomicUsize::new(0));
    let ips = Arc::new(Mutex::new(vec![String::new(); total]));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..in_flight.max(1) {
        let (api, next, ips, prefix) = (api.clone(), next.clone(), ips.clone(), prefix.to_string());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    return Ok::<(), anyhow::Error>(());
                }
                let ip = api.create_service(&format!("{prefix}{}", start + i)).await?;
                ips.lock().map_err(|_| anyhow::anyhow!("poisoned"))?[i] = ip;
            }
        });
    }
    while let Some(result) = workers.join_next().await {
        result??;
    }
    let ips = ips.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    Ok(ips)
}

/// Ready endpoint addresses of a slice object.
pub fn ready_addresses(slice: &Value) -> Vec<String> {
    slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["conditions"]["ready"] == true)
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// Per Service name, per slice name: (ready endpoints, all endpoints).
type Counts = HashMap<String, HashMap<String, (usize, usize)>>;

/// Endpoint counts (ready, all) of every slice in `default`, by Service name, kept
/// current by a watch (cheap for the apiserver, unlike listing 10,000
/// slices every few seconds). Stops when dropped.
pub struct SliceTracker {
    ready: Arc<Mutex<Counts>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SliceTracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SliceTracker {
    /// Starts watching (re-watching from a fresh list whenever a watch ends).
    pub fn start(api: &Api) -> SliceTracker {
        let ready: Arc<Mutex<Counts>> = Arc::default();
        let (api, state) = (api.clone(), ready.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok(response) = api.open_watch(&format!("{SLICES}?watch=true")).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                // A new watch starts with the full list: rebuild from it.
                state.lock().unwrap_or_else(PoisonError::into_inner).clear();
                let shared = state.clone();
                let _ = watch_until(response, move |slice, kind| {
                    let service =
                        slice["metadata"]["labels"]["kubernetes.io/service-name"].as_str().unwrap_or_default();
                    let name = slice["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    let mut map = shared.lock().unwrap_or_else(PoisonError::into_inner);
                    let entry = map.entry(service.to_string()).or_default();
                    if kind == "DELETED" {
                        entry.remove(&name);
                    } else {
                        let all = slice["endpoints"].as_array().map_or(0, Vec::len);
                        entry.insert(name, (ready_addresses(slice).len(), all));
                    }
                    false
                })
                .await;
            }
        });
        SliceTracker { ready, task }
    }

    /// How many Services named `{prefix}*` have exactly one slice with
    /// `endpoints` endpoints, all ready (none terminating).
    pub fn services_with(&self, prefix: &str, endpoints: usize) -> usize {
        let map = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .filter(|(name, slices)| {
                name.starts_with(prefix) && slices.len() == 1 && slices.values().all(|n| *n == (endpoints, endpoints))
            })
            .count()
    }
}

/// Waits (polling every `every`) until `check` holds or `timeout` passes.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, every: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(every).await;
    }
}

/// Timings of one new Service, from the start of its create request.
#[derive(Debug, Clone, Copy)]
pub struct ServiceTimes {
    /// Its EndpointSlice with ready endpoints arrived on a watch.
    pub slice: Duration,
    /// nft has its `service_ports` element.
    pub nft: Duration,
    /// An HTTP GET through its ClusterIP answered.
    pub answer: Duration,
}

/// Creates Service `name` and measures how long until its slice is
/// written, nft has it, and its ClusterIP answers; gives up after `timeout`.
pub async fn time_new_service(api: &Api, nft: &NftMonitor, name: &str, timeout: Duration) -> Result<ServiceTimes> {
    let watch = format!("{SLICES}?watch=true&labelSelector=kubernetes.io%2Fservice-name%3D{name}");
    let response = api.open_watch(&watch).await?;
    let watcher = tokio::spawn(watch_until(response, |slice, _| !ready_addresses(slice).is_empty()));
    let started = Instant::now();
    let ip = api.create_service(name).await?;
    let url = format!("http://{ip}:{PORT}/");
    let answered = loop {
        ensure!(started.elapsed() < timeout, "service {name} ({ip}) not answering within {timeout:?}");
        let url = url.clone();
        let ok = tokio::task::spawn_blocking(move || get_within(&url, Duration::from_millis(500)).is_ok()).await?;
        if ok {
            break started.elapsed();
        }
    };
    let deadline = Instant::now() + timeout;
    let in_nft = loop {
        if let Some(at) = nft.service_at(&ip) {
            break at.saturating_duration_since(started);
        }
        ensure!(Instant::now() < deadline, "nft monitor never saw service {ip}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let slice = tokio::time::timeout(timeout, watcher).await.context("slice watch")???;
    Ok(ServiceTimes { slice: slice.saturating_duration_since(started), nft: in_nft, answer: answered })
}

/// Scales web from `from` to `from + 1` pods and measures from the moment
/// the new pod is seen Ready (polling the API) until nft balances `probe_ip`
/// to it; then scales back. Returns that duration.
pub async fn time_pod_ready_to_nft(
    api: &Api,
    nft: &NftMonitor,
    from: u32,
    probe_ip: &str,
    timeout: Duration,
) -> Result<Duration> {
    let before: Vec<String> = api.ready_web_pods().await?.into_iter().map(|(name, _)| name).collect();
    let scaled = Instant::now();
    api.scale_web(from + 1).await?;
    let deadline = Instant::now() + timeout;
    let (ready_at, ip) = loop {
        let pods = api.ready_web_pods().await?;
        if let Some((_, ip)) = pods.into_iter().find(|(name, _)| !before.contains(name)) {
            break (Instant::now(), ip);
        }
        ensure!(Instant::now() < deadline, "new web pod not Ready within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let in_nft = loop {
        if let Some(at) = nft.backend_at(probe_ip, &ip).filter(|at| *at >= scaled) {
            break at;
        }
        ensure!(Instant::now() < deadline, "pod {ip} not in nft for {probe_ip} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    api.scale_web(from).await?;
    Ok(in_nft.saturating_duration_since(ready_at))
}
