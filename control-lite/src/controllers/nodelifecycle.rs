//! Node lifecycle controller: notices nodes whose kubelet went silent.
//!
//! Owns: watching Nodes and their Leases (`kube-node-lease`), marking a node
//! whose last heartbeat (lease renewal or Ready heartbeat) is older than the
//! grace period as Ready=Unknown, and keeping the condition taints in step
//! with Ready: `unreachable` (Unknown) or `not-ready` (False), NoSchedule
//! and NoExecute, removed once the node reports Ready again. The decision
//! (`decide`) is pure and takes the clock as an argument. The pods of a
//! NoExecute-tainted node are evicted by `taint_eviction`.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::informer;
use super::shared::Informers;

/// Namespace holding node heartbeat leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Taint put on nodes whose kubelet stopped reporting.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
/// Taint put on nodes whose kubelet reports Ready=False.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// Default time without heartbeat before a node counts as lost.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(40);
/// How often every node is re-evaluated even without events.
const MONITOR_PERIOD: Duration = Duration::from_secs(5);
const NODE_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// A failed write to a Node.
#[derive(Debug, thiserror::Error)]
#[error("updating {what} of node {node}")]
pub struct Error {
    what: &'static str,
    node: String,
    #[source]
    source: kube::Error,
}

/// What to change on one node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeUpdate {
    /// New `status.conditions`, if they change.
    pub conditions: Option<Vec<NodeCondition>>,
    /// New `spec.taints`, if they change.
    pub taints: Option<Vec<Taint>>,
}

/// The clock used to judge heartbeats (injected for tests).
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// Decides what to change on `node` given its `lease` at `now`.
pub fn decide(node: &Node, lease: Option<&Lease>, now: jiff::Timestamp, grace: Duration) -> NodeUpdate {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let ready = conditions.iter().find(|c| c.type_ == "Ready");
    let renewed = lease.and_then(|l| l.spec.as_ref()).and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
    let heartbeat = ready.and_then(|c| c.last_heartbeat_time.as_ref()).map(|t| t.0);
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let last_seen = renewed.max(heartbeat).or(created);
    let grace = jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX);
    let stale = last_seen.is_some_and(|seen| now.duration_since(seen) > grace);
    let mut update = NodeUpdate::default();
    let mut ready_status = ready.map(|c| c.status.clone());
    if stale && ready_status.as_deref() != Some("Unknown") {
        update.conditions = Some(mark_unknown(&conditions, now));
        ready_status = Some("Unknown".to_string());
    }
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    update.taints = condition_taints(&taints, ready_status.as_deref(), now);
    update
}

/// The taints a node's Ready condition calls for, as upstream's node
/// lifecycle controller keeps them: `unreachable` (Ready=Unknown) or
/// `not-ready` (Ready=False), each as `NoSchedule` (the scheduler) and
/// `NoExecute` (the taint eviction controller, after the pods'
/// `tolerationSeconds`).
fn wanted_taints(ready: Option<&str>) -> &'static [(&'static str, &'static str)] {
    match ready {
        Some("Unknown") => &[(UNREACHABLE_TAINT, "NoSchedule"), (UNREACHABLE_TAINT, "NoExecute")],
        Some("False") => &[(NOT_READY_TAINT, "NoSchedule"), (NOT_READY_TAINT, "NoExecute")],
        _ => &[],
    }
}

/// The node's taints with the condition taints made to match its Ready
/// status (other taints, and the `timeAdded` of kept ones, untouched), or
/// `None` when nothing changes.
fn condition_taints(taints: &[Taint], ready: Option<&str>, now: jiff::Timestamp) -> Option<Vec<Taint>> {
    let wanted = wanted_taints(ready);
    let managed = |t: &Taint| t.key == UNREACHABLE_TAINT || t.key == NOT_READY_TAINT;
    let mut out: Vec<Taint> = taints
        .iter()
        .filter(|t| !managed(t) || wanted.contains(&(t.key.as_str(), t.effect.as_str())))
        .cloned()
        .collect();
    for (key, effect) in wanted {
        if !out.iter().any(|t| t.key == *key && t.effect == *effect) {
            out.push(Taint {
                key: key.to_string(),
                effect: effect.to_string(),
                time_added: Some(Time(now)),
                value: None,
            });
        }
    }
    (out != taints).then_some(out)
}

/// Upstream behaviour: every node condition becomes Unknown.
fn mark_unknown(conditions: &[NodeCondition], now: jiff::Timestamp) -> Vec<NodeCondition> {
    let mut out: Vec<NodeCondition> = conditions
        .iter()
        .map(|c| {
            if !NODE_CONDITIONS.contains(&c.type_.as_str()) || c.status == "Unknown" {
                return c.clone();
            }
            NodeCondition {
                status: "Unknown".to_string(),
                reason: Some("NodeStatusUnknown".to_string()),
                message: Some("Kubelet stopped posting node status.".to_string()),
                last_transition_time: Some(Time(now)),
                ..c.clone()
            }
        })
        .collect();
    if !out.iter().any(|c| c.type_ == "Ready") {
        out.push(NodeCondition {
            type_: "Ready".to_string(),
            status: "Unknown".to_string(),
            reason: Some("NodeStatusNeverUpdated".to_string()),
            message: Some("Kubelet never posted node status.".to_string()),
            last_transition_time: Some(Time(now)),
            last_heartbeat_time: None,
        });
    }
    out
}

/// Runs the controller with the wall clock and `DEFAULT_GRACE`.
pub async fn run(client: Client, informers: Informers, token: CancellationToken) {
    run_with(client, informers, token, DEFAULT_GRACE, Arc::new(jiff::Timestamp::now)).await;
}

/// Runs the controller with an explicit grace period and clock.
pub async fn run_with(client: Client, informers: Informers, token: CancellationToken, grace: Duration, clock: Clock) {
    let kick = Arc::new(Notify::new());
    let nodes: Store<Node> = {
        let kick = kick.clone();
        informers.of::<Node>().on_change(&token, move |_| kick.notify_one())
    };
    let leases: Store<Lease> = {
        let kick = kick.clone();
        let api = Api::namespaced(client.clone(), LEASE_NAMESPACE);
        informer::spawn(api, token.clone(), move |_| kick.notify_one())
    };
    if !informer::wait_ready(&nodes, &token).await || !informer::wait_ready(&leases, &token).await {
        return;
    }
    let api: Api<Node> = Api::all(client);
    loop {
        let now = clock();
        for node in nodes.state() {
            let name = node.name_any();
            let lease = leases.get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
            let update = decide(&node, lease.as_deref(), now, grace);
            if let Err(error) = apply(&api, &name, update).await {
                tracing::warn!(%error, "node lifecycle update failed");
            }
        }
        tokio::select! {
            () = token.cancelled() => break,
            () = kick.notified() => {}
            () = tokio::time::sleep(MONITOR_PERIOD) => {}
        }
    }
}

async fn apply(api: &Api<Node>, name: &str, update: NodeUpdate) -> Result<(), Error> {
    let params = PatchParams::default();
    if let Some(conditions) = update.conditions {
        tracing::info!(node = name, "kubelet stopped posting node status; marking Ready=Unknown");
        let patch = json!({"status": {"conditions": conditions}});
        api.patch_status(name, &params, &Patch::Merge(&patch)).await.map_err(|source| Error {
            what: "conditions",
            node: name.to_string(),
            source,
        })?;
    }
    if let Some(taints) = update.taints {
        let patch = json!({"spec": {"taints": taints}});
        api.patch(name, &params, &Patch::Merge(&patch)).await.map_err(|source| Error {
            what: "taints",
            node: name.to_string(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: &str, heartbeat: &str, tainted: bool) -> Node {
        let taints = if tainted {
            json!([
                {"key": UNREACHABLE_TAINT, "effect": "NoSchedule"},
                {"key": "x", "effect": "NoSchedule"},
                {"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": "2024-01-01T00:00:00Z"}
            ])
        } else {
            json!([{"key": "x", "effect": "NoSchedule"}])
        };
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"taints": taints},
            "status": {"conditions": [
                {"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat},
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": heartbeat}
            ]}
        }))
        .expect("node")
    }

    fn lease(renewed: &str) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": "n1", "renewTime": renewed}
        }))
        .expect("lease")
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().expect("time")
    }

    /// (Ready status after, unreachable taint after) or None for "no change".
    fn outcome(update: &NodeUpdate) -> (Option<String>, Option<bool>) {
        let ready =
            update.conditions.as_ref().and_then(|c| c.iter().find(|c| c.type_ == "Ready")).map(|c| c.status.clone());
        let tainted = update.taints.as_ref().map(|t| t.iter().any(|t| t.key == UNREACHABLE_TAINT));
        (ready, tainted)
    }

    /// name, node, lease, now, (Ready after, unreachable taint after).
    type Case = (&'static str, Node, Option<Lease>, &'static str, (Option<&'static str>, Option<bool>));

    #[test]
    fn silent_nodes_become_unknown_and_tainted_and_recover() {
        let t0 = "2024-01-01T00:10:00Z";
        let cases: Vec<Case> = vec![
            (
                "fresh lease",
                node("True", t0, false),
                Some(lease("2024-01-01T00:10:30Z")),
                "2024-01-01T00:11:00Z",
                (None, None),
            ),
            (
                "lease renewed keeps old heartbeat alive",
                node("True", t0, false),
                Some(lease("2024-01-01T00:10:50Z")),
                "2024-01-01T00:11:20Z",
                (None, None),
            ),
            (
                "silent for 41s",
                node("True", t0, false),
                Some(lease(t0)),
                "2024-01-01T00:10:41Z",
                (Some("Unknown"), Some(true)),
            ),
            (
                "silent, no lease, heartbeat old",
                node("True", t0, false),
                None,
                "2024-01-01T00:11:00Z",
                (Some("Unknown"), Some(true)),
            ),
            (
                "exactly at grace is fine",
                node("True", t0, false),
                Some(lease(t0)),
                "2024-01-01T00:10:40Z",
                (None, None),
            ),
            (
                "already unknown, taint missing",
                node("Unknown", t0, false),
                Some(lease(t0)),
                "2024-01-01T00:20:00Z",
                (None, Some(true)),
            ),
            (
                "already unknown and tainted",
                node("Unknown", t0, true),
                Some(lease(t0)),
                "2024-01-01T00:20:00Z",
                (None, None),
            ),
            (
                "ready again: taint removed",
                node("True", "2024-01-01T00:20:00Z", true),
                Some(lease("2024-01-01T00:20:00Z")),
                "2024-01-01T00:20:05Z",
                (None, Some(false)),
            ),
        ];
        let grace = Duration::from_secs(40);
        for (name, n, l, now, (ready, tainted)) in cases {
            let update = decide(&n, l.as_ref(), at(now), grace);
            assert_eq!(outcome(&update), (ready.map(str::to_string), tainted), "{name}");
        }
    }

    #[test]
    fn unknown_conditions_carry_upstream_reason_and_keep_other_taints() {
        let n = node("True", "2024-01-01T00:00:00Z", false);
        let update = decide(&n, None, at("2024-01-01T01:00:00Z"), Duration::from_secs(40));
        let conditions = update.conditions.expect("conditions");
        for c in &conditions {
            assert_eq!(c.status, "Unknown", "{}", c.type_);
            assert_eq!(c.reason.as_deref(), Some("NodeStatusUnknown"));
            assert_eq!(c.message.as_deref(), Some("Kubelet stopped posting node status."));
        }
        let taints: Vec<(String, String)> =
            update.taints.expect("taints").into_iter().map(|t| (t.key, t.effect)).collect();
        let want = [("x", "NoSchedule"), (UNREACHABLE_TAINT, "NoSchedule"), (UNREACHABLE_TAINT, "NoExecute")];
        assert_eq!(taints, want.map(|(k, e)| (k.to_string(), e.to_string())));
    }

    #[test]
    fn condition_taints_follow_ready_and_keep_their_time_added() {
        let now = at("2024-01-01T01:00:00Z");
        let unreachable = node("Unknown", "2024-01-01T00:00:00Z", true);
        let taints = unreachable.spec.and_then(|s| s.taints).unwrap_or_default();
        // Unknown and already tainted: nothing to change (timeAdded kept).
        assert_eq!(condition_taints(&taints, Some("Unknown"), now), None);
        // Ready=False: unreachable goes, not-ready (both effects) comes.
        let not_ready = condition_taints(&taints, Some("False"), now).expect("changed");
        let keys: Vec<(&str, &str)> = not_ready.iter().map(|t| (t.key.as_str(), t.effect.as_str())).collect();
        assert_eq!(keys, [("x", "NoSchedule"), (NOT_READY_TAINT, "NoSchedule"), (NOT_READY_TAINT, "NoExecute")]);
        assert!(not_ready[1..].iter().all(|t| t.time_added == Some(Time(now))));
        // Ready: only the foreign taint stays.
        let ready = condition_taints(&not_ready, Some("True"), now).expect("changed");
        assert_eq!(ready.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(), ["x"]);
        assert_eq!(condition_taints(&ready, Some("True"), now), None);
    }
}
