//! The bare-metal load balancer on the real stack (`bosun up
//! --load-balancer-pool`, real kubectl, real nftables): a `type:
//! LoadBalancer` Service gets an ingress IP from the pool, shown as
//! EXTERNAL-IP, and answers there from the host; a Service that asks for a
//! taken address is told why; its node port answers on the node's IP;
//! turning a Service into a ClusterIP gives its address back, and the
//! Service waiting for one gets it. Once the pool runs out, Services share
//! the node's IP on different ports, and one whose port is taken there
//! waits with a reason.

mod support;

use std::time::Duration;

use anyhow::{ensure, Result};
use serde_json::Value;
use support::cluster::{get, Cluster};
use support::wait::wait_until;

/// Two addresses: 198.51.100.241 and .242 (TEST-NET-2, routed by the
/// default route, DNATed before it leaves).
const POOL: &str = "198.51.100.240/30";

fn service(name: &str, requested: Option<&str>) -> String {
    service_on(name, requested, 80)
}

fn service_on(name: &str, requested: Option<&str>, port: u16) -> String {
    let ip = requested.map(|ip| format!("\n  loadBalancerIP: {ip}")).unwrap_or_default();
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  type: LoadBalancer{ip}\n  \
         selector:\n    app: web\n  ports:\n    - port: {port}\n      targetPort: 8080\n"
    )
}

fn ingress_ip(cluster: &Cluster, name: &str) -> Result<Option<String>> {
    let svc: Value = cluster.json(&["get", "service", name])?;
    Ok(svc["status"]["loadBalancer"]["ingress"][0]["ip"].as_str().map(str::to_string))
}

fn event_of(cluster: &Cluster, object: &str, reason: &str) -> Result<Option<String>> {
    let events = cluster.json(&["get", "events"])?;
    Ok(events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["involvedObject"]["name"] == object && e["reason"] == reason)
        .and_then(|e| e["message"].as_str().map(str::to_string)))
}

#[test]
fn load_balancer_services_get_pool_addresses_that_answer() -> Result<()> {
    let cluster = Cluster::start_with("lb-node", &["--load-balancer-pool".to_string(), POOL.to_string()])?;
    let web = cluster.web_manifest()?;
    let (ok, _, err) = cluster.apply_stdin(&format!("{web}\n{}", service("front", None)))?;
    ensure!(ok, "apply: {err}");
    cluster.wait_running(3, Duration::from_secs(180))?;

    // The first address of the pool, shown by kubectl and served.
    let ip = wait_until("front's ingress IP", || ingress_ip(&cluster, "front"))?;
    ensure!(ip == "198.51.100.241", "the pool's first address: {ip}");
    let table = cluster.kubectl_ok(&["get", "service", "front"])?;
    ensure!(table.lines().nth(1).is_some_and(|l| l.contains("LoadBalancer") && l.contains(&ip)), "{table}");
    let page = wait_until("an answer on the load-balancer IP", || Ok(get(&format!("http://{ip}/")).ok()))?;
    ensure!(page.starts_with("hello from web-"), "a web pod answered: {page}");
    // The node port of the same Service, on the node's address (upstream's
    // default `--nodeport-addresses`: the node IP, not loopback).
    let svc = cluster.json(&["get", "service", "front"])?;
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap_or_default();
    ensure!((30000..=32767).contains(&node_port), "a node port from the default range: {node_port}");
    let node = cluster.json(&["get", "node", "lb-node"])?;
    let node_ip = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .unwrap_or_default()
        .to_string();
    let page = wait_until("an answer on the node port", || Ok(get(&format!("http://{node_ip}:{node_port}/")).ok()))?;
    ensure!(page.starts_with("hello from web-"), "a web pod answered on {node_ip}:{node_port}: {page}");
    let allocated = event_of(&cluster, "front", "IPAllocated")?;
    ensure!(allocated.as_deref() == Some("Assigned IP [\"198.51.100.241\"]"), "event: {allocated:?}");

    // Asking for the taken address: refused with a reason, no address.
    let (ok, _, err) = cluster.apply_stdin(&service("copycat", Some(&ip)))?;
    ensure!(ok, "apply copycat: {err}");
    let why = wait_until("copycat's AllocationFailed", || event_of(&cluster, "copycat", "AllocationFailed"))?;
    ensure!(why.contains("in use"), "says why: {why}");
    ensure!(ingress_ip(&cluster, "copycat")?.is_none(), "copycat got no address");

    // front becomes a ClusterIP: its address is freed and copycat gets it.
    cluster.kubectl_ok(&["patch", "service", "front", "-p", r#"{"spec":{"type":"ClusterIP"}}"#])?;
    let moved =
        wait_until(
            "copycat takes the freed address",
            || Ok(ingress_ip(&cluster, "copycat")?.filter(|got| *got == ip)),
        )?;
    ensure!(ingress_ip(&cluster, "front")?.is_none(), "front's status was cleared");
    let page = wait_until("copycat answers on it", || Ok(get(&format!("http://{moved}/")).ok()))?;
    ensure!(page.starts_with("hello from web-"), "{page}");

    // The pool's second address, then the node's IP, shared by port.
    let spill = [("spill-a", 80), ("spill-b", 80), ("spill-c", 80), ("spill-d", 81)];
    let manifests = spill.map(|(name, port)| service_on(name, None, port)).concat();
    let (ok, _, err) = cluster.apply_stdin(&manifests)?;
    ensure!(ok, "apply the spill services: {err}");
    let second = wait_until("spill-a's ingress IP", || ingress_ip(&cluster, "spill-a"))?;
    ensure!(second == "198.51.100.242", "the pool's last address: {second}");
    for name in ["spill-b", "spill-d"] {
        let shared = wait_until("a shared node IP", || ingress_ip(&cluster, name))?;
        ensure!(shared == node_ip, "{name} shares the node's IP {node_ip}: {shared}");
    }
    let why = wait_until("spill-c's AllocationFailed", || event_of(&cluster, "spill-c", "AllocationFailed"))?;
    ensure!(why.contains("no address left in the pool for its ports"), "says why: {why}");
    ensure!(ingress_ip(&cluster, "spill-c")?.is_none(), "spill-c got no address");
    for port in [80, 81] {
        let url = format!("http://{node_ip}:{port}/");
        let page = wait_until("an answer on the shared node IP", || Ok(get(&url).ok()))?;
        ensure!(page.starts_with("hello from web-"), "{url}: {page}");
    }
    let mut doomed = vec!["deploy/web".to_string(), "svc/front".into(), "svc/copycat".into()];
    doomed.extend(spill.iter().map(|(name, _)| format!("svc/{name}")));
    let mut delete: Vec<&str> = vec!["delete"];
    delete.extend(doomed.iter().map(String::as_str));
    delete.extend(["--wait=true", "--timeout=120s"]);
    cluster.kubectl_ok(&delete)?;
    Ok(())
}
