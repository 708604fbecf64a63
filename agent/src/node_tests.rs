//! Tests of the Node decisions: readiness, capacity and info, transition times, Node and Lease shapes.

use super::*;
use crate::pod_cgroups::config::Reserved;
use bosun_proto::cri::{RuntimeCondition, RuntimeStatus};

fn config() -> NodeConfig {
    NodeConfig {
        name: "node-a".into(),
        node_ip: "192.0.2.7".into(),
        pod_cidr: "10.244.0.0/24".into(),
        kubelet_port: 10250,
        max_pods: 110,
        labels: BTreeMap::new(),
        taints: Vec::new(),
        // The default hard eviction threshold (memory.available<100Mi).
        allocatable: NodeAllocatable::of(&host(), Reserved { cpu_milli: 0, memory_bytes: 100 << 20 }),
    }
}

#[test]
fn allocatable_is_capacity_less_reservations_and_the_hard_eviction_threshold() {
    use crate::pod_cgroups::config::{node_reserved, CgroupSettings};
    let settings =
        CgroupSettings { reserved: Reserved { cpu_milli: 500, memory_bytes: 1 << 30 }, ..Default::default() };
    let got = NodeAllocatable::of(&host(), node_reserved(&settings, 100 << 20));
    assert_eq!(got, NodeAllocatable { cpu_millis: 1500, memory_bytes: 4_000_000 * 1024 - (1 << 30) - (100 << 20) });
    assert_eq!(got.cpu_quantity(), Quantity("1500m".into()));
    assert_eq!(got.memory_quantity(), Quantity(format!("{}Ki", 4_000_000 - (1 << 20) - 102_400)));
    let everything = Reserved { cpu_milli: 9_000, memory_bytes: i64::MAX };
    assert_eq!(NodeAllocatable::of(&host(), everything), NodeAllocatable::default(), "never below zero");
    assert_eq!(NodeAllocatable::default().cpu_quantity(), Quantity("0".into()));
}

#[test]
fn extra_labels_and_taints_join_the_node_without_overriding_well_known_labels() {
    let mut c = config();
    c.labels = BTreeMap::from([("zone".into(), "b".into()), ("kubernetes.io/hostname".into(), "spoof".into())]);
    c.taints = vec![k8s_openapi::api::core::v1::Taint {
        key: "dedicated".into(),
        value: Some("kubelet".into()),
        effect: "NoSchedule".into(),
        time_added: None,
    }];
    let node = desired_node(&c);
    let labels = node.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("zone").map(String::as_str), Some("b"));
    assert_eq!(labels.get("kubernetes.io/hostname").map(String::as_str), Some("node-a"));
    assert_eq!(node.spec.and_then(|s| s.taints).map(|t| t.len()), Some(1));
    assert!(desired_node(&config()).spec.and_then(|s| s.taints).is_none());
}

fn host() -> HostInfo {
    HostInfo {
        cpus: 2,
        memory_kib: 4_000_000,
        os_image: "Debian GNU/Linux 12 (bookworm)".into(),
        kernel_version: "6.18.0".into(),
        machine_id: "m".into(),
        boot_id: "b".into(),
        system_uuid: "s".into(),
        hostname: "node-a".into(),
    }
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).expect("valid")
}

fn ready_of(status: &NodeStatus) -> NodeCondition {
    status.conditions.iter().flatten().find(|c| c.type_ == "Ready").cloned().expect("Ready condition")
}

#[test]
fn runtime_readiness_needs_runtime_and_network() {
    let cond =
        |t: &str, ok: bool| RuntimeCondition { r#type: t.into(), status: ok, reason: "R".into(), message: "M".into() };
    let ok = RuntimeStatus { conditions: vec![cond("RuntimeReady", true), cond("NetworkReady", true)] };
    assert_eq!(runtime_readiness(&ok), Ok(()));
    let no_net = RuntimeStatus { conditions: vec![cond("RuntimeReady", true), cond("NetworkReady", false)] };
    let why = runtime_readiness(&no_net).expect_err("not ready");
    assert!(why.contains("NetworkReady=false reason:R message:M"), "{why}");
}

#[test]
fn status_reports_capacity_info_and_ready() {
    let report = RuntimeReport { version: "containerd://1.6.20".into(), ready: Ok(()) };
    let status = node_status(&config(), &host(), &report, None, t(0));
    let capacity = status.capacity.clone().expect("capacity");
    assert_eq!(capacity.get("cpu"), Some(&Quantity("2".into())));
    assert_eq!(capacity.get("memory"), Some(&Quantity("4000000Ki".into())));
    assert_eq!(capacity.get("pods"), Some(&Quantity("110".into())));
    let allocatable = status.allocatable.clone().expect("allocatable");
    assert_eq!(allocatable.get("memory"), Some(&Quantity("3897600Ki".into())));
    let info = status.node_info.clone().expect("info");
    assert_eq!(
        (info.kubelet_version.as_str(), info.container_runtime_version.as_str(), info.os_image.as_str()),
        ("v1.33.0-bosun", "containerd://1.6.20", "Debian GNU/Linux 12 (bookworm)")
    );
    let ready = ready_of(&status);
    assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("True", Some("KubeletReady")));
    assert_eq!(ready.message.as_deref(), Some("kubelet is posting ready status"));
    let port = status.daemon_endpoints.and_then(|d| d.kubelet_endpoint).map(|e| e.port);
    assert_eq!(port, Some(10250));
    let addresses: Vec<(String, String)> =
        status.addresses.into_iter().flatten().map(|a| (a.type_, a.address)).collect();
    assert_eq!(addresses, vec![("InternalIP".into(), "192.0.2.7".into()), ("Hostname".into(), "node-a".into())]);
}

#[test]
fn transition_time_moves_only_on_change() {
    let up = RuntimeReport { version: String::new(), ready: Ok(()) };
    let down = RuntimeReport { version: String::new(), ready: Err("container runtime is down".into()) };
    let first = node_status(&config(), &host(), &up, None, t(0));
    let second = node_status(&config(), &host(), &up, Some(&first), t(10));
    assert_eq!(ready_of(&second).last_transition_time, Some(Time(t(0))));
    assert_eq!(ready_of(&second).last_heartbeat_time, Some(Time(t(10))));
    let third = node_status(&config(), &host(), &down, Some(&second), t(20));
    let ready = ready_of(&third);
    assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("False", Some("KubeletNotReady")));
    assert_eq!(ready.last_transition_time, Some(Time(t(20))));
}

#[test]
fn node_and_lease_shapes() {
    let node = desired_node(&config());
    let labels = node.metadata.labels.clone().expect("labels");
    assert_eq!(labels.get("kubernetes.io/hostname").map(String::as_str), Some("node-a"));
    assert_eq!(labels.get("kubernetes.io/os").map(String::as_str), Some("linux"));
    assert_eq!(node.spec.and_then(|s| s.pod_cidrs), Some(vec!["10.244.0.0/24".to_string()]));
    let lease = lease("node-a", Some("uid-1"), t(5));
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("node-a"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    assert_eq!(spec.renew_time, Some(MicroTime(t(5))));
    let owner = lease.metadata.owner_references.expect("owner");
    assert_eq!((owner[0].kind.as_str(), owner[0].uid.as_str()), ("Node", "uid-1"));
    assert_eq!(lease.metadata.namespace.as_deref(), Some("kube-node-lease"));
}
