//! Service environment variables (`enableServiceLinks`), as upstream's
//! kubelet injects them: for every Service with a ClusterIP in the pod's
//! namespace (when `enableServiceLinks` is true, the default) and for the
//! `kubernetes` Service of the `default` namespace (always, if it exists),
//! `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT`,
//! `<NAME>_SERVICE_PORT_<PORTNAME>` and the Docker link variables
//! (`<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]`). A
//! Service of the pod's own namespace wins over the master one of the same
//! name. The container's own variables win over all of these (`env`).
//!
//! Must not: call the API; the caller lists the Services of
//! [`namespaces_needed`] and passes them in.

use k8s_openapi::api::core::v1::{Pod, Service};

/// Namespace of the master Service.
const MASTER_NAMESPACE: &str = "default";
/// The master Service, whose variables every pod gets.
const MASTER_SERVICE: &str = "kubernetes";

fn links_enabled(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true)
}

/// The namespaces whose Services the pod's variables come from.
pub fn namespaces_needed(pod: &Pod) -> Vec<String> {
    let mut out = vec![MASTER_NAMESPACE.to_string()];
    let own = pod.metadata.namespace.clone().unwrap_or_else(|| MASTER_NAMESPACE.to_string());
    if links_enabled(pod) && own != MASTER_NAMESPACE {
        out.push(own);
    }
    out
}

/// `my-svc` -> `MY_SVC`.
fn env_name(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

fn has_cluster_ip(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()).is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// The Services whose variables the pod gets, by name, in name order.
fn selected<'a>(pod: &Pod, services: &'a [Service]) -> Vec<&'a Service> {
    let own = pod.metadata.namespace.as_deref().unwrap_or(MASTER_NAMESPACE);
    let mut by_name: std::collections::BTreeMap<&str, &Service> = std::collections::BTreeMap::new();
    for service in services.iter().filter(|s| has_cluster_ip(s)) {
        let (Some(name), Some(namespace)) = (service.metadata.name.as_deref(), service.metadata.namespace.as_deref())
        else {
            continue;
        };
        if namespace == own && links_enabled(pod) {
            by_name.insert(name, service);
        } else if namespace == MASTER_NAMESPACE && name == MASTER_SERVICE {
            by_name.entry(name).or_insert(service);
        }
    }
    by_name.into_values().collect()
}

/// Variables of one Service.
fn service_vars(service: &Service, out: &mut Vec<(String, String)>) {
    let prefix = env_name(service.metadata.name.as_deref().unwrap_or_default());
    let spec = service.spec.clone().unwrap_or_default();
    let ip = spec.cluster_ip.unwrap_or_default();
    let ports = spec.ports.unwrap_or_default();
    let Some(first) = ports.first() else { return };
    out.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
    out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
    for port in &ports {
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((format!("{prefix}_SERVICE_PORT_{}", env_name(name)), port.port.to_string()));
        }
    }
    // Docker link variables.
    let host = if ip.contains(':') { format!("[{ip}]") } else { ip.clone() };
    for (i, port) in ports.iter().enumerate() {
        let protocol = port.protocol.as_deref().unwrap_or("TCP").to_lowercase();
        let url = format!("{protocol}://{host}:{}", port.port);
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", port.port, protocol.to_uppercase());
        out.push((port_prefix.clone(), url));
        out.push((format!("{port_prefix}_PROTO"), protocol.clone()));
        out.push((format!("{port_prefix}_PORT"), port.port.to_string()));
        out.push((format!("{port_prefix}_ADDR"), ip.clone()));
    }
}

/// The Service variables of `pod`, given the Services of
/// [`namespaces_needed`] (others are ignored).
pub fn service_env(pod: &Pod, services: &[Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for service in selected(pod, services) {
        service_vars(service, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(namespace: &str, links: Option<bool>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": namespace},
            "spec": {"containers": [], "enableServiceLinks": links}
        }))
        .expect("pod")
    }

    fn service(namespace: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": ip, "ports": ports}
        }))
        .expect("service")
    }

    fn names(vars: &[(String, String)]) -> Vec<&str> {
        vars.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn a_service_gives_host_port_and_docker_link_variables() {
        let ports = json!([{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]);
        let vars = service_env(&pod("ns", None), &[service("ns", "my-svc", "10.96.0.7", ports)]);
        let want = [
            ("MY_SVC_SERVICE_HOST", "10.96.0.7"),
            ("MY_SVC_SERVICE_PORT", "80"),
            ("MY_SVC_SERVICE_PORT_HTTP", "80"),
            ("MY_SVC_PORT", "tcp://10.96.0.7:80"),
            ("MY_SVC_PORT_80_TCP", "tcp://10.96.0.7:80"),
            ("MY_SVC_PORT_80_TCP_PROTO", "tcp"),
            ("MY_SVC_PORT_80_TCP_PORT", "80"),
            ("MY_SVC_PORT_80_TCP_ADDR", "10.96.0.7"),
            ("MY_SVC_PORT_53_UDP", "udp://10.96.0.7:53"),
            ("MY_SVC_PORT_53_UDP_PROTO", "udp"),
            ("MY_SVC_PORT_53_UDP_PORT", "53"),
            ("MY_SVC_PORT_53_UDP_ADDR", "10.96.0.7"),
        ];
        let got: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn selects_services_by_namespace_links_and_cluster_ip() {
        let port = json!([{"port": 443}]);
        let services = [
            service("default", "kubernetes", "10.96.0.1", port.clone()),
            service("default", "other", "10.96.0.2", port.clone()),
            service("ns", "web", "10.96.0.3", port.clone()),
            service("ns", "headless", "None", port.clone()),
            service("elsewhere", "far", "10.96.0.4", port.clone()),
        ];
        let hosts = |p: &Pod| -> Vec<String> {
            names(&service_env(p, &services))
                .into_iter()
                .filter(|n| n.ends_with("_SERVICE_HOST"))
                .map(String::from)
                .collect()
        };
        assert_eq!(hosts(&pod("ns", None)), ["KUBERNETES_SERVICE_HOST", "WEB_SERVICE_HOST"]);
        assert_eq!(hosts(&pod("ns", Some(false))), ["KUBERNETES_SERVICE_HOST"]);
        assert_eq!(hosts(&pod("default", Some(true))), ["KUBERNETES_SERVICE_HOST", "OTHER_SERVICE_HOST"]);
        assert_eq!(hosts(&pod("default", Some(false))), ["KUBERNETES_SERVICE_HOST"]);
        // No kubernetes Service: no master variables.
        assert!(service_env(&pod("ns", Some(false)), &services[1..]).is_empty());
        // A local Service named kubernetes wins over the master one.
        let local = service("ns", "kubernetes", "10.96.0.9", port);
        let vars = service_env(&pod("ns", None), &[services[0].clone(), local]);
        assert_eq!(vars[0], ("KUBERNETES_SERVICE_HOST".to_string(), "10.96.0.9".to_string()));
        assert_eq!(namespaces_needed(&pod("ns", None)), ["default", "ns"]);
        assert_eq!(namespaces_needed(&pod("ns", Some(false))), ["default"]);
    }
}
