//! Table cells per kind, computed the way upstream's printers compute them
//! (pod STATUS reason, READY counts, service ports, node roles, ...).

use jiff::Timestamp;
use serde_json::{json, Value};

use super::duration::human_duration;
use super::registry::Kind;
use super::selectors::LabelSelector;

fn age_of(ts: Option<&str>, now: Timestamp) -> String {
    match ts.and_then(|t| t.parse::<Timestamp>().ok()) {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn i(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

/// Upstream pod STATUS column (reason) and ready/total/restarts.
pub fn pod_status(pod: &Value) -> (String, i64, i64, i64) {
    let mut reason = s(pod, "/status/phase").to_string();
    if !s(pod, "/status/reason").is_empty() {
        reason = s(pod, "/status/reason").to_string();
    }
    let total = arr(pod, "/spec/containers").len() as i64;
    let mut restarts: i64 = 0;
    let mut ready = 0;
    let mut initializing = false;
    let inits = arr(pod, "/status/initContainerStatuses");
    let n_init = arr(pod, "/spec/initContainers").len();
    for (idx, c) in inits.iter().enumerate() {
        restarts = restarts.saturating_add(i(c, "/restartCount"));
        if c.pointer("/state/terminated").is_some() && i(c, "/state/terminated/exitCode") == 0 {
            continue;
        }
        initializing = true;
        reason = if let Some(t) = c.pointer("/state/terminated") {
            match s(t, "/reason") {
                "" if i(t, "/signal") != 0 => format!("Init:Signal:{}", i(t, "/signal")),
                "" => format!("Init:ExitCode:{}", i(t, "/exitCode")),
                r => format!("Init:{r}"),
            }
        } else if !s(c, "/state/waiting/reason").is_empty() && s(c, "/state/waiting/reason") != "PodInitializing" {
            format!("Init:{}", s(c, "/state/waiting/reason"))
        } else {
            format!("Init:{idx}/{n_init}")
        };
        break;
    }
    if !initializing {
        restarts = 0;
        let mut has_running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts = restarts.saturating_add(i(c, "/restartCount"));
            if !s(c, "/state/waiting/reason").is_empty() {
                reason = s(c, "/state/waiting/reason").to_string();
            } else if !s(c, "/state/terminated/reason").is_empty() {
                reason = s(c, "/state/terminated/reason").to_string();
            } else if let Some(t) = c.pointer("/state/terminated") {
                reason = if i(t, "/signal") != 0 {
                    format!("Signal:{}", i(t, "/signal"))
                } else {
                    format!("ExitCode:{}", i(t, "/exitCode"))
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true) && c.pointer("/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready =
                arr(pod, "/status/conditions").iter().any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True");
            reason = if pod_ready { "Running".into() } else { "NotReady".into() };
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = if s(pod, "/status/reason") == "NodeLost" { "Unknown".into() } else { "Terminating".into() };
    }
    (reason, ready, total, restarts)
}

pub(super) fn template_containers(obj: &Value) -> (String, String) {
    let cs = arr(obj, "/spec/template/spec/containers");
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

pub(super) fn selector_of(obj: &Value) -> String {
    or_none(LabelSelector::from_api(obj.pointer("/spec/selector").unwrap_or(&Value::Null)).render())
}

fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let node = i(p, "/nodePort");
            if node != 0 {
                format!("{}:{}/{}", i(p, "/port"), node, s(p, "/protocol"))
            } else {
                format!("{}/{}", i(p, "/port"), s(p, "/protocol"))
            }
        })
        .collect();
    or_none(ports.join(","))
}

fn external_ip(svc: &Value) -> String {
    let mut ips: Vec<String> =
        arr(svc, "/spec/externalIPs").iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
    match s(svc, "/spec/type") {
        "LoadBalancer" => {
            ips.extend(arr(svc, "/status/loadBalancer/ingress").iter().map(|i| s(i, "/ip").to_string()));
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => s(svc, "/spec/externalName").to_string(),
        _ => or_none(ips.join(",")),
    }
}

fn list_limited(items: Vec<String>, max: usize) -> String {
    if items.is_empty() {
        return "<none>".into();
    }
    if items.len() > max {
        return format!("{} + {} more...", items[..max].join(","), items.len() - max);
    }
    items.join(",")
}

fn node_status(node: &Value) -> String {
    let ready = arr(node, "/status/conditions").iter().find(|c| s(c, "/type") == "Ready");
    let mut status = match ready.map(|c| s(c, "/status")) {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn node_roles(node: &Value) -> String {
    let roles: Vec<&str> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/")).collect())
        .unwrap_or_default();
    or_none(roles.join(","))
}

fn node_address(node: &Value, kind: &str) -> String {
    or_none(
        arr(node, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == kind)
            .map(|a| s(a, "/address").to_string())
            .unwrap_or_default(),
    )
}

/// The cells of one object's row.
pub fn cells(kind: Kind, obj: &Value, now: Timestamp) -> Vec<Value> {
    let name = json!(s(obj, "/metadata/name"));
    let age = json!(age_of(obj.pointer("/metadata/creationTimestamp").and_then(Value::as_str), now));
    match kind {
        Kind::Pod => {
            let (status, ready, total, restarts) = pod_status(obj);
            let gates = arr(obj, "/spec/readinessGates");
            let gates_cell = if gates.is_empty() {
                "<none>".to_string()
            } else {
                let ok = gates
                    .iter()
                    .filter(|g| {
                        arr(obj, "/status/conditions")
                            .iter()
                            .any(|c| s(c, "/type") == s(g, "/conditionType") && s(c, "/status") == "True")
                    })
                    .count();
                format!("{ok}/{}", gates.len())
            };
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                age,
                json!(or_none(s(obj, "/status/podIP").to_string())),
                json!(or_none(s(obj, "/spec/nodeName").to_string())),
                json!(or_none(s(obj, "/status/nominatedNodeName").to_string())),
                json!(gates_cell),
            ]
        }
        Kind::Deployment => {
            let (c, im) = template_containers(obj);
            vec![
                name,
                json!(format!("{}/{}", i(obj, "/status/readyReplicas"), i(obj, "/spec/replicas"))),
                json!(i(obj, "/status/updatedReplicas")),
                json!(i(obj, "/status/availableReplicas")),
                age,
                json!(c),
                json!(im),
                json!(selector_of(obj)),
            ]
        }
        Kind::ReplicaSet => {
            let (c, im) = template_containers(obj);
            vec![
                name,
                json!(i(obj, "/spec/replicas")),
                json!(i(obj, "/status/replicas")),
                json!(i(obj, "/status/readyReplicas")),
                age,
                json!(c),
                json!(im),
                json!(selector_of(obj)),
            ]
        }
        Kind::DaemonSet | Kind::StatefulSet | Kind::ControllerRevision => super::apps::cells(kind, obj, name, age),
        Kind::Job => super::batch_printers::job_cells(obj, age, now),
        Kind::CertificateSigningRequest => super::certificates::cells(obj, name, age, now),
        Kind::CronJob => super::batch_printers::cronjob_cells(obj, age, now),
        Kind::PodDisruptionBudget => super::policy::pdb_cells(obj, name, age),
        Kind::Service => {
            let sel: Vec<String> = obj
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
                .unwrap_or_default();
            vec![
                name,
                json!(s(obj, "/spec/type")),
                json!(or_none(s(obj, "/spec/clusterIP").to_string())),
                json!(external_ip(obj)),
                json!(service_ports(obj)),
                age,
                json!(or_none(sel.join(","))),
            ]
        }
        Kind::EndpointSlice => {
            let ports: Vec<String> = arr(obj, "/ports").iter().map(|p| i(p, "/port").to_string()).collect();
            let addrs: Vec<String> = arr(obj, "/endpoints")
                .iter()
                .flat_map(|e| arr(e, "/addresses").iter().filter_map(|a| a.as_str().map(str::to_string)))
                .collect();
            let ports = if ports.is_empty() { "<unset>".to_string() } else { ports.join(",") };
            vec![name, json!(s(obj, "/addressType")), json!(ports), json!(list_limited(addrs, 3)), age]
        }
        Kind::Endpoints => {
            let mut addrs = Vec::new();
            for subset in arr(obj, "/subsets") {
                for a in arr(subset, "/addresses") {
                    for p in arr(subset, "/ports") {
                        addrs.push(format!("{}:{}", s(a, "/ip"), i(p, "/port")));
                    }
                }
            }
            vec![name, json!(list_limited(addrs, 3)), age]
        }
        Kind::Node => vec![
            name,
            json!(node_status(obj)),
            json!(node_roles(obj)),
            age,
            json!(s(obj, "/status/nodeInfo/kubeletVersion")),
            json!(node_address(obj, "InternalIP")),
            json!(node_address(obj, "ExternalIP")),
            json!(or_none(s(obj, "/status/nodeInfo/osImage").to_string())),
            json!(or_none(s(obj, "/status/nodeInfo/kernelVersion").to_string())),
            json!(or_none(s(obj, "/status/nodeInfo/containerRuntimeVersion").to_string())),
        ],
        Kind::Namespace => vec![name, json!(s(obj, "/status/phase")), age],
        Kind::Event => {
            let last = [
                "/lastTimestamp",
                "/eventTime",
                "/series/lastObservedTime",
                "/firstTimestamp",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .find_map(|p| obj.pointer(p).and_then(Value::as_str))
            .map(|t| age_of(Some(t), now))
            .unwrap_or_else(|| "<unknown>".into());
            let object =
                format!("{}/{}", s(obj, "/involvedObject/kind").to_lowercase(), s(obj, "/involvedObject/name"));
            let count = i(obj, "/count").max(1);
            vec![
                json!(last),
                json!(s(obj, "/type")),
                json!(s(obj, "/reason")),
                json!(object),
                json!(s(obj, "/message").trim()),
                json!(count),
                name,
            ]
        }
        Kind::EventV1 => {
            let last =
                ["/series/lastObservedTime", "/deprecatedLastTimestamp", "/eventTime", "/metadata/creationTimestamp"]
                    .iter()
                    .find_map(|p| obj.pointer(p).and_then(Value::as_str))
                    .map(|t| age_of(Some(t), now))
                    .unwrap_or_else(|| "<unknown>".into());
            let object = format!("{}/{}", s(obj, "/regarding/kind").to_lowercase(), s(obj, "/regarding/name"));
            vec![
                json!(last),
                json!(s(obj, "/type")),
                json!(s(obj, "/reason")),
                json!(object),
                json!(s(obj, "/note").trim()),
            ]
        }
        Kind::ConfigMap => {
            let n = ["/data", "/binaryData"]
                .iter()
                .map(|p| obj.pointer(p).and_then(Value::as_object).map_or(0, |m| m.len()))
                .sum::<usize>();
            vec![name, json!(n), age]
        }
        Kind::Secret => {
            let n = obj.pointer("/data").and_then(Value::as_object).map_or(0, |m| m.len());
            vec![name, json!(s(obj, "/type")), json!(n), age]
        }
        Kind::Lease => vec![name, json!(s(obj, "/spec/holderIdentity")), age],
        Kind::ServiceAccount => vec![name, json!(arr(obj, "/secrets").len()), age],
        Kind::PriorityClass => vec![
            name,
            json!(obj.get("value").and_then(Value::as_i64).unwrap_or(0)),
            json!(obj.get("globalDefault").and_then(Value::as_bool).unwrap_or(false)),
            age,
            json!(s(obj, "/preemptionPolicy")),
        ],
        Kind::Role | Kind::ClusterRole | Kind::CustomResourceDefinition => {
            vec![name, json!(s(obj, "/metadata/creationTimestamp"))]
        }
        Kind::RoleBinding | Kind::ClusterRoleBinding => {
            let subjects = |kind: &str| {
                let names: Vec<String> = arr(obj, "/subjects")
                    .iter()
                    .filter(|sub| sub.get("kind").and_then(Value::as_str) == Some(kind))
                    .map(|sub| match (s(sub, "/namespace"), s(sub, "/name")) {
                        (ns, n) if kind == "ServiceAccount" => format!("{ns}/{n}"),
                        (_, n) => n.to_string(),
                    })
                    .collect();
                json!(names.join(", "))
            };
            let role = format!("{}/{}", s(obj, "/roleRef/kind"), s(obj, "/roleRef/name"));
            vec![name, json!(role), age, subjects("User"), subjects("Group"), subjects("ServiceAccount")]
        }
        Kind::SelfSubjectAccessReview
        | Kind::SubjectAccessReview
        | Kind::LocalSubjectAccessReview
        | Kind::SelfSubjectRulesReview
        | Kind::TokenReview
        | Kind::SelfSubjectReview
        | Kind::Custom => vec![name, age],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_status_column_cases() {
        let cases = [
            (json!({"spec": {"containers": [{}]}, "status": {"phase": "Pending"}}), "Pending", 0),
            (
                json!({"spec": {"containers": [{}]}, "status": {"phase": "Pending", "containerStatuses": [
                    {"ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}}),
                "ContainerCreating",
                0,
            ),
            (
                json!({"spec": {"containers": [{}]}, "status": {"phase": "Running", "containerStatuses": [
                    {"ready": true, "restartCount": 2, "state": {"running": {}}}]}}),
                "Running",
                1,
            ),
            (
                json!({"spec": {"containers": [{}]}, "status": {"phase": "Running", "containerStatuses": [
                    {"ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
                "CrashLoopBackOff",
                0,
            ),
            (
                json!({"spec": {"containers": [{}]}, "status": {"phase": "Succeeded", "containerStatuses": [
                    {"ready": false, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}}),
                "Completed",
                0,
            ),
            (
                json!({"spec": {"containers": [{}], "initContainers": [{}]}, "status": {"phase": "Pending",
                    "initContainerStatuses": [{"state": {"running": {}}}]}}),
                "Init:0/1",
                0,
            ),
            (
                json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}, "spec": {"containers": [{}]},
                    "status": {"phase": "Running"}}),
                "Terminating",
                0,
            ),
        ];
        for (pod, want, ready) in cases {
            let (status, r, _, _) = pod_status(&pod);
            assert_eq!((status.as_str(), r), (want, ready), "{pod}");
        }
    }
}
