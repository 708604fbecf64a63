//! The remaining kinds: ConfigMap/Secret keys and sizes, Namespace spec
//! finalizers, endpoint ports, lease durations.

use serde_json::Value;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::meta::is_qualified_name;
use super::quantities::validate_quantity;
use super::{at_least, port_number, protocol, too_long, Causes};
use crate::apiserver::registry::Kind;
use crate::apiserver::status::Cause;

/// Upstream's cap on a ConfigMap's or Secret's data (1 MiB).
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

const CONFIG_KEY_MSG: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn is_config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && k.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._".contains(&c))
}

/// ConfigMap and Secret `data`/`binaryData`/`stringData` keys and total size.
pub fn validate_data_keys(obj: &Value, out: &mut Causes) {
    let mut total = 0usize;
    for section in ["data", "binaryData", "stringData"] {
        let Some(map) = obj.get(section).and_then(Value::as_object) else { continue };
        for (k, v) in map {
            if !is_config_key(k) {
                out.push(Cause::invalid(format!("{section}[{k}]"), k, CONFIG_KEY_MSG));
            }
            total = total.saturating_add(k.len()).saturating_add(v.as_str().map_or(0, str::len));
        }
    }
    if total > MAX_DATA_SIZE {
        out.push(too_long("data", MAX_DATA_SIZE));
    }
}

/// Namespace `spec.finalizers` (qualified names); Node taints and podCIDR.
pub fn validate_node_and_namespace(obj: &Value, out: &mut Causes) {
    let taints = obj.pointer("/spec/taints").and_then(Value::as_array);
    for (i, t) in taints.into_iter().flatten().enumerate() {
        let key = t.get("key").and_then(Value::as_str).unwrap_or_default();
        if !is_qualified_name(key) {
            out.push(Cause::invalid(format!("spec.taints[{i}].key"), key, "must be a qualified name"));
        }
        let effect = t.get("effect").and_then(Value::as_str).unwrap_or_default();
        super::one_of(
            format!("spec.taints[{i}].effect"),
            Some(effect),
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            out,
        );
    }
    // Node capacity and allocatable feed the scheduler's sums: valid, non-negative, in range.
    for list in ["capacity", "allocatable"] {
        let Some(map) = obj.pointer(&format!("/status/{list}")).and_then(Value::as_object) else { continue };
        for (name, q) in map {
            let q = Quantity(q.as_str().unwrap_or_default().to_string());
            validate_quantity(name, &q, &format!("status.{list}[{name}]"), out);
        }
    }
    if let Some(cidr) = obj.pointer("/spec/podCIDR").and_then(Value::as_str).filter(|c| !c.is_empty()) {
        let ok = cidr.split_once('/').is_some_and(|(ip, len)| match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => len.parse::<u8>().is_ok_and(|l| l <= 32),
            Ok(std::net::IpAddr::V6(_)) => len.parse::<u8>().is_ok_and(|l| l <= 128),
            Err(_) => false,
        });
        if !ok {
            out.push(Cause::invalid("spec.podCIDR", cidr, "must be a valid CIDR"));
        }
    }
    let list = obj.pointer("/spec/finalizers").and_then(Value::as_array);
    for (i, f) in list.into_iter().flatten().enumerate() {
        let f = f.as_str().unwrap_or_default();
        if !is_qualified_name(f) {
            out.push(Cause::invalid(format!("spec.finalizers[{i}]"), f, "must be a qualified name"));
        }
    }
}

/// Endpoints, EndpointSlices, Events, Leases, ServiceAccounts: their numbers.
pub fn validate_simple(kind: Kind, obj: &Value, out: &mut Causes) {
    match kind {
        Kind::Endpoints => {
            let subsets = obj.get("subsets").and_then(Value::as_array);
            for (i, s) in subsets.into_iter().flatten().enumerate() {
                let ports = s.get("ports").and_then(Value::as_array);
                for (j, p) in ports.into_iter().flatten().enumerate() {
                    ports_of(p, &format!("subsets[{i}].ports[{j}]"), out);
                }
            }
        }
        Kind::EndpointSlice => {
            let ports = obj.get("ports").and_then(Value::as_array);
            for (j, p) in ports.into_iter().flatten().enumerate() {
                if p.get("port").is_some_and(|v| !v.is_null()) {
                    ports_of(p, &format!("ports[{j}]"), out);
                }
            }
        }
        Kind::Lease => {
            if let Some(d) = obj.pointer("/spec/leaseDurationSeconds").and_then(Value::as_i64) {
                at_least("spec.leaseDurationSeconds", d, 1, out);
            }
        }
        _ => {}
    }
}

fn ports_of(p: &Value, at: &str, out: &mut Causes) {
    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
    port_number(format!("{at}.port"), i32::try_from(port).unwrap_or(0), out);
    protocol(format!("{at}.protocol"), p.get("protocol").and_then(Value::as_str), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_keys_and_sizes() {
        let mut out = Vec::new();
        validate_data_keys(&json!({"data": {"ok.key": "v", "bad/key": "v"}, "binaryData": {"..": ""}}), &mut out);
        let fields: Vec<&str> = out.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["data[bad/key]", "binaryData[..]"]);
        let mut out = Vec::new();
        validate_data_keys(&json!({"data": {"k": "x".repeat(MAX_DATA_SIZE)}}), &mut out);
        assert_eq!(out.len(), 1);
        let mut out = Vec::new();
        validate_simple(Kind::Endpoints, &json!({"subsets": [{"ports": [{"port": 70000}]}]}), &mut out);
        assert_eq!(out[0].field, "subsets[0].ports[0].port");
        let mut out = Vec::new();
        let node = json!({"spec": {"podCIDR": "10.0.0.0/99", "taints": [{"key": "k", "effect": "Sometimes"}, {"key": "a b", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "4", "pods": "110"}, "allocatable": {"cpu": "0e2147483644"}}});
        validate_node_and_namespace(&node, &mut out);
        let fields: Vec<&str> = out.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["spec.taints[0].effect", "spec.taints[1].key", "status.allocatable[cpu]", "spec.podCIDR"]
        );
    }
}
