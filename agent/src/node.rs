//! The Node object of this agent: registration (create or update labels and
//! podCIDR), status heartbeat (capacity, addresses, nodeInfo, conditions)
//! every 10 s, and the `kube-node-lease` Lease renewal.
//!
//! Decisions (`desired_node`, `node_status`, `lease`) are pure and tested;
//! [`run`] applies them with merge patches and replace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio_util::sync::CancellationToken;

use crate::host::HostInfo;
use crate::runtime::Runtime;

/// Version reported as `nodeInfo.kubeletVersion`.
pub const KUBELET_VERSION: &str = "v1.33.0-bosun";
/// Namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Lease duration.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// What the node offers pods: capacity less systemReserved, kubeReserved
/// and (memory) the hard eviction threshold, as upstream's Node
/// allocatable. One value for the Node status, in-place resize and the
/// `resourceFieldRef` defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeAllocatable {
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
}

impl NodeAllocatable {
    /// `host`'s capacity less `reserved` (never below zero).
    pub fn of(host: &HostInfo, reserved: crate::pod_cgroups::config::Reserved) -> Self {
        let cpu = i64::try_from(host.cpus).unwrap_or(i64::MAX).saturating_mul(1000);
        let memory = i64::try_from(host.memory_kib).unwrap_or(i64::MAX).saturating_mul(1024);
        Self {
            cpu_millis: cpu.saturating_sub(reserved.cpu_milli.max(0)).max(0),
            memory_bytes: memory.saturating_sub(reserved.memory_bytes.max(0)).max(0),
        }
    }

    /// The cpu as a quantity (`2`, `1500m`).
    pub fn cpu_quantity(&self) -> Quantity {
        if self.cpu_millis % 1000 == 0 {
            Quantity((self.cpu_millis / 1000).to_string())
        } else {
            Quantity(format!("{}m", self.cpu_millis))
        }
    }

    /// The memory as a quantity (`Ki` when whole, else bytes).
    pub fn memory_quantity(&self) -> Quantity {
        if self.memory_bytes % 1024 == 0 {
            Quantity(format!("{}Ki", self.memory_bytes / 1024))
        } else {
            Quantity(self.memory_bytes.to_string())
        }
    }
}

/// A failed Node or Lease call.
#[derive(Debug, thiserror::Error)]
#[error("{call} {object}: {source}")]
pub struct Error {
    /// What was attempted.
    pub call: &'static str,
    /// The object.
    pub object: String,
    /// The client error.
    #[source]
    pub source: kube::Error,
}

/// How this node presents itself.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// Node name.
    pub name: String,
    /// InternalIP.
    pub node_ip: String,
    /// spec.podCIDR.
    pub pod_cidr: String,
    /// Kubelet API port.
    pub kubelet_port: u16,
    /// Pod capacity.
    pub max_pods: u32,
    /// Extra labels (`--node-labels`), merged over the well-known ones.
    pub labels: BTreeMap<String, String>,
    /// Taints the Node is created with (`--register-with-taints`).
    pub taints: Vec<k8s_openapi::api::core::v1::Taint>,
    /// Status allocatable (cpu, memory).
    pub allocatable: NodeAllocatable,
}

/// The runtime's answers for the heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeReport {
    /// `containerd://<version>`, empty when unknown.
    pub version: String,
    /// `Ok(())` when runtime and network are ready, else why not.
    pub ready: Result<(), String>,
}

/// Readiness from CRI `Status` conditions (RuntimeReady and NetworkReady).
pub fn runtime_readiness(status: &bosun_proto::cri::RuntimeStatus) -> Result<(), String> {
    let mut problems = Vec::new();
    for required in ["RuntimeReady", "NetworkReady"] {
        match status.conditions.iter().find(|c| c.r#type == required) {
            Some(c) if c.status => {}
            Some(c) => problems.push(format!("{required}=false reason:{} message:{}", c.reason, c.message)),
            None => problems.push(format!("{required} missing")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("container runtime not ready: {}", problems.join("; ")))
    }
}

/// Labels, spec and identity of the Node.
pub fn desired_node(config: &NodeConfig) -> Node {
    let mut labels = config.labels.clone();
    labels.extend([
        ("kubernetes.io/hostname".to_string(), config.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
    ]);
    Node {
        metadata: ObjectMeta { name: Some(config.name.clone()), labels: Some(labels), ..Default::default() },
        spec: Some(NodeSpec {
            pod_cidr: Some(config.pod_cidr.clone()),
            pod_cidrs: Some(vec![config.pod_cidr.clone()]),
            // Only at creation, as upstream: taints set later by others stay.
            taints: (!config.taints.is_empty()).then(|| config.taints.clone()),
            ..Default::default()
        }),
        status: None,
    }
}

fn condition(
    previous: Option<&NodeStatus>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now: Time,
) -> NodeCondition {
    let status = if ok { "True" } else { "False" };
    let transition = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == status))
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    NodeCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(now),
        last_transition_time: Some(transition),
    }
}

/// The Node status to publish now.
pub fn node_status(
    config: &NodeConfig,
    host: &HostInfo,
    runtime: &RuntimeReport,
    previous: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
    let now = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    let capacity = BTreeMap::from([
        ("cpu".to_string(), Quantity(host.cpus.to_string())),
        ("memory".to_string(), Quantity(format!("{}Ki", host.memory_kib))),
        ("pods".to_string(), Quantity(config.max_pods.to_string())),
    ]);
    let mut allocatable = capacity.clone();
    allocatable.insert("cpu".to_string(), config.allocatable.cpu_quantity());
    allocatable.insert("memory".to_string(), config.allocatable.memory_quantity());
    let (ready, reason, message) = match &runtime.ready {
        Ok(()) => (true, "KubeletReady", "kubelet is posting ready status".to_string()),
        Err(why) => (false, "KubeletNotReady", why.clone()),
    };
    let conditions = vec![
        condition(
            previous,
            "MemoryPressure",
            false,
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
            now.clone(),
        ),
        condition(
            previous,
            "DiskPressure",
            false,
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
            now.clone(),
        ),
        condition(
            previous,
            "PIDPressure",
            false,
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            now.clone(),
        ),
        condition(previous, "Ready", ready, reason, &message, now),
    ];
    NodeStatus {
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: config.node_ip.clone() },
            NodeAddress { type_: "Hostname".into(), address: config.name.clone() },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(config.kubelet_port) }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            boot_id: host.boot_id.clone(),
            container_runtime_version: runtime.version.clone(),
            kernel_version: host.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: host.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: host.os_image.clone(),
            system_uuid: host.system_uuid.clone(),
            swap: None,
        }),
        ..Default::default()
    }
}

/// The node's Lease, renewed at `now`, owned by the Node.
pub fn lease(node: &str, node_uid: Option<&str>, now: Timestamp) -> Lease {
    let owner = node_uid.map(|uid| OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.to_string(),
        uid: uid.to_string(),
        ..Default::default()
    });
    Lease {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_string()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

/// Applies Node registration, status and Lease through the API.
pub struct NodeAgent {
    client: kube::Client,
    runtime: Arc<dyn Runtime>,
    config: NodeConfig,
    host: HostInfo,
    uid: Option<String>,
    last_status: Option<NodeStatus>,
    /// Pressure conditions from the eviction manager.
    pressure: Option<tokio::sync::watch::Receiver<crate::eviction::manager::Pressure>>,
    /// Set to true once the Node exists and carries our first status.
    registered: Option<tokio::sync::watch::Sender<bool>>,
}

fn err(call: &'static str, object: &str) -> impl FnOnce(kube::Error) -> Error {
    let object = object.to_string();
    move |source| Error { call, object, source }
}

impl NodeAgent {
    /// An agent publishing `config` for this host.
    pub fn new(client: kube::Client, runtime: Arc<dyn Runtime>, config: NodeConfig, host: HostInfo) -> Self {
        Self { client, runtime, config, host, uid: None, last_status: None, pressure: None, registered: None }
    }

    /// Publishes the eviction manager's pressure conditions in the heartbeat.
    pub fn with_pressure(mut self, pressure: tokio::sync::watch::Receiver<crate::eviction::manager::Pressure>) -> Self {
        self.pressure = Some(pressure);
        self
    }

    /// Reports on `registered` when the Node is registered with a status
    /// (the agent tells systemd it is ready then).
    pub fn with_registered(mut self, registered: tokio::sync::watch::Sender<bool>) -> Self {
        self.registered = Some(registered);
        self
    }

    /// Creates the Node or merges our labels and podCIDR into it.
    pub async fn register(&mut self) -> Result<(), Error> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let name = self.config.name.clone();
        let desired = desired_node(&self.config);
        let node = match nodes.get_opt(&name).await.map_err(err("get node", &name))? {
            None => nodes.create(&PostParams::default(), &desired).await.map_err(err("create node", &name))?,
            Some(existing) => {
                let mut patch = serde_json::json!({ "metadata": { "labels": desired.metadata.labels } });
                if existing.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_none() {
                    patch["spec"] = serde_json::json!({
                        "podCIDR": self.config.pod_cidr,
                        "podCIDRs": [self.config.pod_cidr],
                    });
                }
                nodes
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(err("patch node", &name))?
            }
        };
        self.uid = node.metadata.uid.clone();
        self.last_status = node.status;
        Ok(())
    }

    async fn runtime_report(&self) -> RuntimeReport {
        let version = match self.runtime.version().await {
            Ok(v) => format!(
                "{}://{}",
                if v.runtime_name.is_empty() { "containerd" } else { &v.runtime_name },
                v.runtime_version
            ),
            Err(_) => String::new(),
        };
        let ready = match self.runtime.status().await {
            Ok(status) => runtime_readiness(&status),
            Err(e) => Err(format!("container runtime is down: {e}")),
        };
        RuntimeReport { version, ready }
    }

    /// Publishes the status (heartbeat).
    pub async fn heartbeat(&mut self) -> Result<(), Error> {
        let report = self.runtime_report().await;
        let mut status = node_status(&self.config, &self.host, &report, self.last_status.as_ref(), Timestamp::now());
        if let Some(pressure) = &self.pressure {
            let pressure = pressure.borrow().clone();
            crate::eviction::node_conditions::apply(&mut status, self.last_status.as_ref(), &pressure);
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let name = self.config.name.clone();
        let patch = serde_json::json!({ "status": status });
        nodes
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(err("patch node status", &name))?;
        self.last_status = Some(status);
        Ok(())
    }

    /// Creates or renews the Lease.
    pub async fn renew_lease(&self) -> Result<(), Error> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let name = self.config.name.clone();
        let mut desired = lease(&name, self.uid.as_deref(), Timestamp::now());
        match leases.get_opt(&name).await.map_err(err("get lease", &name))? {
            None => {
                leases.create(&PostParams::default(), &desired).await.map_err(err("create lease", &name))?;
            }
            Some(existing) => {
                desired.metadata.resource_version = existing.metadata.resource_version;
                leases.replace(&name, &PostParams::default(), &desired).await.map_err(err("renew lease", &name))?;
            }
        }
        Ok(())
    }

    /// Registers, then heartbeats and renews the lease every `interval`
    /// until `token` is cancelled. Failures are logged and retried; a Node
    /// deleted under us is registered again.
    pub async fn run(mut self, interval: Duration, token: CancellationToken) {
        let mut registered = false;
        let mut ticker = tokio::time::interval(interval);
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if !registered {
                match self.register().await {
                    Ok(()) => registered = true,
                    Err(error) => {
                        tracing::warn!(%error, "node registration failed; retrying");
                        continue;
                    }
                }
            }
            match self.heartbeat().await {
                Ok(()) => {
                    if let Some(signal) = &self.registered {
                        signal.send_if_modified(|done| !std::mem::replace(done, true));
                    }
                }
                Err(error) => {
                    if matches!(&error.source, kube::Error::Api(s) if s.is_not_found()) {
                        registered = false;
                    }
                    tracing::warn!(%error, "node status update failed");
                }
            }
            if let Err(error) = self.renew_lease().await {
                tracing::warn!(%error, "lease renewal failed");
            }
        }
    }
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
