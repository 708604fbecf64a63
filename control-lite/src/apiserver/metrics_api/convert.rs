//! The kubelet's Summary (`/stats/summary`) as `metrics.k8s.io/v1beta1`
//! objects, as metrics-server makes them (pure): CPU is the rate in
//! nanocores, memory the working set; a container without a rate yet (one
//! sample so far) leaves its pod out, as metrics-server does.

use serde_json::{json, Value};

/// The window reported with each metric: the agent's collection period
/// (its rates span between 2 s and about this long).
pub const WINDOW: &str = "10s";

/// Nanocores as a quantity (`123456n`).
pub fn cpu_quantity(nanocores: u64) -> String {
    format!("{nanocores}n")
}

/// Bytes as a quantity (`Ki` when whole kibibytes, as metrics-server prints).
pub fn memory_quantity(bytes: u64) -> String {
    if bytes.is_multiple_of(1024) {
        format!("{}Ki", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

/// `{"cpu": .., "memory": ..}` from a Summary stats object holding `cpu` and
/// `memory`; `None` without a CPU rate or a working set.
fn usage(stats: &Value) -> Option<Value> {
    let cpu = stats.pointer("/cpu/usageNanoCores")?.as_u64()?;
    let memory = stats.pointer("/memory/workingSetBytes")?.as_u64()?;
    Some(json!({"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)}))
}

fn timestamp(stats: &Value) -> Value {
    stats.pointer("/cpu/time").cloned().unwrap_or(Value::Null)
}

/// Metadata of a metrics object: the object's name, namespace and labels.
fn metadata(object: &Value) -> Value {
    let mut meta = json!({"name": object.pointer("/metadata/name").cloned().unwrap_or(Value::Null)});
    for key in ["namespace", "labels", "creationTimestamp"] {
        if let Some(value) = object.pointer(&format!("/metadata/{key}")) {
            meta[key] = value.clone();
        }
    }
    meta
}

/// The NodeMetrics of `node` from its kubelet's Summary.
pub fn node_metrics(node: &Value, summary: &Value) -> Option<Value> {
    let stats = summary.get("node")?;
    Some(json!({
        "kind": "NodeMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": metadata(node),
        "timestamp": timestamp(stats),
        "window": WINDOW,
        "usage": usage(stats)?,
    }))
}

/// The PodMetrics of `pod` from its node's Summary (matched by namespace,
/// name and uid).
pub fn pod_metrics(pod: &Value, summary: &Value) -> Option<Value> {
    let field = |p: &str| pod.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (ns, name, uid) = (field("/metadata/namespace"), field("/metadata/name"), field("/metadata/uid"));
    let stats = summary.get("pods")?.as_array()?.iter().find(|p| {
        let r = |k: &str| p.pointer(&format!("/podRef/{k}")).and_then(Value::as_str).unwrap_or_default();
        r("namespace") == ns && r("name") == name && (uid.is_empty() || r("uid") == uid)
    })?;
    let containers = stats
        .get("containers")?
        .as_array()?
        .iter()
        .map(|c| Some(json!({"name": c.get("name")?.clone(), "usage": usage(c)?})))
        .collect::<Option<Vec<Value>>>()?;
    let time = stats.pointer("/containers/0").map(timestamp).unwrap_or(Value::Null);
    Some(json!({
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": metadata(pod),
        "timestamp": time,
        "window": WINDOW,
        "containers": containers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Value {
        json!({
            "node": {"nodeName": "n1", "cpu": {"time": "2026-01-01T00:00:00Z", "usageNanoCores": 250_000_000u64, "usageCoreNanoSeconds": 9},
                     "memory": {"time": "2026-01-01T00:00:00Z", "workingSetBytes": 1_048_576u64, "usageBytes": 2}},
            "pods": [
                {"podRef": {"name": "web", "namespace": "default", "uid": "u1"},
                 "containers": [
                    {"name": "app", "cpu": {"time": "2026-01-01T00:00:01Z", "usageNanoCores": 100_000_000u64}, "memory": {"workingSetBytes": 2048u64}},
                    {"name": "side", "cpu": {"time": "2026-01-01T00:00:01Z", "usageNanoCores": 0u64}, "memory": {"workingSetBytes": 1000u64}}]},
                {"podRef": {"name": "new", "namespace": "default", "uid": "u2"},
                 "containers": [{"name": "app", "cpu": {"usageCoreNanoSeconds": 5}, "memory": {"workingSetBytes": 1}}]}
            ]
        })
    }

    fn pod(name: &str, uid: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": uid, "labels": {"app": name}}})
    }

    #[test]
    fn quantities_read_as_metrics_server_prints_them() {
        assert_eq!(cpu_quantity(0), "0n");
        assert_eq!(cpu_quantity(105_000_000), "105000000n");
        assert_eq!(memory_quantity(2048), "2Ki");
        assert_eq!(memory_quantity(1000), "1000");
        assert_eq!(memory_quantity(0), "0Ki");
    }

    #[test]
    fn node_metrics_carry_rate_and_working_set() {
        let node = json!({"metadata": {"name": "n1", "labels": {"role": "x"}}});
        let m = node_metrics(&node, &summary()).unwrap();
        assert_eq!(m["metadata"], json!({"name": "n1", "labels": {"role": "x"}}));
        assert_eq!(m["usage"], json!({"cpu": "250000000n", "memory": "1024Ki"}));
        assert_eq!(m["timestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(m["window"], WINDOW);
        assert!(node_metrics(&node, &json!({"pods": []})).is_none());
    }

    #[test]
    fn pod_metrics_match_by_ref_and_skip_pods_without_rates() {
        let cases = [
            (
                "web",
                "u1",
                Some(json!([{"name": "app", "usage": {"cpu": "100000000n", "memory": "2Ki"}},
                                       {"name": "side", "usage": {"cpu": "0n", "memory": "1000"}}])),
            ),
            ("web", "other-uid", None),
            ("new", "u2", None),
            ("absent", "u9", None),
        ];
        for (name, uid, want) in cases {
            let got = pod_metrics(&pod(name, uid), &summary());
            assert_eq!(got.as_ref().map(|m| m["containers"].clone()), want, "{name}/{uid}");
            if let Some(m) = got {
                assert_eq!(m["metadata"]["namespace"], "default");
                assert_eq!(m["metadata"]["labels"]["app"], name);
                assert_eq!(m["timestamp"], "2026-01-01T00:00:01Z");
            }
        }
    }
}
