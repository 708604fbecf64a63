//! The pod `resize` subresource (in-place pod resize, GA in 1.35).
//!
//! A write through `pods/<name>/resize` changes only the containers'
//! `resources` and `resizePolicy`: [`take_resize`] builds the pod to store
//! from the stored one and those two fields of the request (upstream's
//! `dropNonResizeUpdates`), and [`validate`] holds upstream's
//! `ValidatePodResize` rules (only cpu and memory change, nothing removed,
//! same QoS class, no static pods). The main resource still refuses any
//! resources change (`validation::update`). The spec change bumps
//! `metadata.generation`, which the node echoes in `status.observedGeneration`.
//! [`validate_policies`] checks `resizePolicy` on every pod write.

use serde_json::{json, Map, Value};

use super::status::Cause;
use super::validation::{forbidden, invalid_value, Causes};

/// Annotation marking a mirror pod (a static pod's API copy).
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// The resources a resize may change.
const RESIZABLE: [&str; 2] = ["cpu", "memory"];
/// Upstream's `ResourceResizeRestartPolicy` values.
const RESTART_POLICIES: [&str; 2] = ["NotRequired", "RestartContainer"];

fn containers<'a>(pod: &'a Value, list: &str) -> &'a [Value] {
    pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn name_of(container: &Value) -> &str {
    container.get("name").and_then(Value::as_str).unwrap_or_default()
}

fn is_sidecar(container: &Value) -> bool {
    container.get("restartPolicy").and_then(Value::as_str) == Some("Always")
}

/// The pod to store for a resize request: `current` with each container's
/// `resources` and `resizePolicy` taken from the same-named container of
/// `requested`. Containers added, removed, renamed or reordered are refused
/// (upstream: `containers may not be renamed or reordered`).
pub fn take_resize(current: &Value, requested: &Value) -> Result<Value, Causes> {
    let mut out = current.clone();
    for list in ["containers", "initContainers"] {
        let old = containers(current, list);
        let new = containers(requested, list);
        if new.is_empty() && list == "initContainers" {
            continue;
        }
        if old.len() != new.len() {
            return Err(vec![forbidden(format!("spec.{list}"), "containers may not be added or removed")]);
        }
        if old.iter().zip(new).any(|(o, n)| name_of(o) != name_of(n)) {
            return Err(vec![forbidden(format!("spec.{list}"), "containers may not be renamed or reordered")]);
        }
        let Some(slots) = out.pointer_mut(&format!("/spec/{list}")).and_then(Value::as_array_mut) else { continue };
        for (slot, n) in slots.iter_mut().zip(new) {
            let Some(slot) = slot.as_object_mut() else { continue };
            match n.get("resources") {
                Some(r) => slot.insert("resources".into(), r.clone()),
                None => slot.remove("resources"),
            };
            if let Some(p) = n.get("resizePolicy") {
                slot.insert("resizePolicy".into(), p.clone());
            }
        }
    }
    if let Some(rv) = requested.pointer("/metadata/resourceVersion") {
        out["metadata"]["resourceVersion"] = rv.clone();
    }
    if let Some(uid) = requested.pointer("/metadata/uid") {
        out["metadata"]["uid"] = uid.clone();
    }
    Ok(out)
}

fn qos_of(pod: &Value) -> &'static str {
    let spec = pod.get("spec").cloned().and_then(|s| serde_json::from_value(s).ok());
    bosun_resources::pod_qos_class(spec.as_ref())
}

fn without_resizable(resources: Option<&Value>) -> Value {
    let mut r = resources.cloned().unwrap_or_else(|| json!({}));
    for list in ["requests", "limits"] {
        if let Some(m) = r.get_mut(list).and_then(Value::as_object_mut) {
            for name in RESIZABLE {
                m.remove(name);
            }
            if m.is_empty() {
                r.as_object_mut().map(|o| o.remove(list));
            }
        }
    }
    r
}

fn keys(resources: Option<&Value>, list: &str) -> Vec<String> {
    resources
        .and_then(|r| r.get(list))
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Upstream's `ValidatePodResize` for stored `old` and merged, defaulted `new`.
pub fn validate(old: &Value, new: &Value) -> Causes {
    if old.pointer(&format!("/metadata/annotations/{}", MIRROR_ANNOTATION.replace('/', "~1"))).is_some() {
        return vec![forbidden("", "static pods cannot be resized")];
    }
    let mut out = Vec::new();
    let old_qos = old.pointer("/status/qosClass").and_then(Value::as_str).unwrap_or_else(|| qos_of(old));
    let new_qos = qos_of(new);
    if old_qos != new_qos {
        out.push(invalid_value("spec", new_qos, "Pod QOS Class may not change as a result of resizing"));
    }
    let mut other_changed = false;
    for list in ["containers", "initContainers"] {
        for (i, (o, n)) in containers(old, list).iter().zip(containers(new, list)).enumerate() {
            let (o_res, n_res) = (o.get("resources"), n.get("resources"));
            if list == "containers" || is_sidecar(o) {
                for kind in ["requests", "limits"] {
                    let kept = keys(n_res, kind);
                    for name in keys(o_res, kind).into_iter().filter(|k| !kept.contains(k)) {
                        out.push(forbidden(
                            format!("spec.{list}[{i}].resources.{kind}[{name}]"),
                            "resource removal is not allowed",
                        ));
                    }
                }
            } else if o_res != n_res {
                other_changed = true;
            }
            if without_resizable(o_res) != without_resizable(n_res) {
                other_changed = true;
            }
        }
    }
    if other_changed {
        out.push(forbidden("spec", "only cpu and memory resources are mutable"));
    }
    out
}

/// Checks every container's `resizePolicy` (upstream's `validateResizePolicy`):
/// cpu or memory, once each, NotRequired or RestartContainer; not on init
/// containers that are not sidecars.
pub fn validate_policies(pod: &Value, out: &mut Causes) {
    for list in ["containers", "initContainers"] {
        for (i, c) in containers(pod, list).iter().enumerate() {
            let Some(policies) = c.get("resizePolicy").and_then(Value::as_array) else { continue };
            let path = format!("spec.{list}[{i}].resizePolicy");
            if list == "initContainers" && !is_sidecar(c) && !policies.is_empty() {
                out.push(forbidden(path, "must not be set for init containers"));
                continue;
            }
            let mut seen = Map::new();
            for (j, p) in policies.iter().enumerate() {
                let name = p.get("resourceName").and_then(Value::as_str).unwrap_or_default();
                let policy = p.get("restartPolicy").and_then(Value::as_str).unwrap_or_default();
                if !RESIZABLE.contains(&name) {
                    out.push(Cause {
                        reason: "FieldValueNotSupported",
                        field: format!("{path}[{j}].resourceName"),
                        message: format!("Unsupported value: \"{name}\": supported values: \"cpu\", \"memory\""),
                    });
                } else if seen.insert(name.to_string(), Value::Null).is_some() {
                    out.push(Cause {
                        reason: "FieldValueDuplicate",
                        field: format!("{path}[{j}].resourceName"),
                        message: format!("Duplicate value: \"{name}\""),
                    });
                }
                if !RESTART_POLICIES.contains(&policy) {
                    out.push(Cause {
                        reason: "FieldValueNotSupported",
                        field: format!("{path}[{j}].restartPolicy"),
                        message: format!(
                            "Unsupported value: \"{policy}\": supported values: \"NotRequired\", \"RestartContainer\""
                        ),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(cpu_req: &str, cpu_lim: &str, extra: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "d"},
            "spec": {"containers": [{"name": "app", "image": "busybox",
                "resources": {"requests": {"cpu": cpu_req, "memory": "64Mi"},
                              "limits": {"cpu": cpu_lim, "memory": "64Mi"}}}], "extra": extra},
            "status": {"qosClass": if cpu_req == cpu_lim { "Guaranteed" } else { "Burstable" }}})
    }

    #[test]
    fn resize_takes_only_resources_and_policy_from_the_request() {
        let current = pod("100m", "200m", json!(1));
        let mut requested = pod("300m", "400m", json!(2));
        requested["spec"]["containers"][0]["image"] = json!("other");
        requested["spec"]["containers"][0]["resizePolicy"] =
            json!([{"resourceName": "cpu", "restartPolicy": "NotRequired"}]);
        let out = take_resize(&current, &requested).expect("same containers");
        let c = &out["spec"]["containers"][0];
        assert_eq!(c["resources"]["requests"]["cpu"], "300m");
        assert_eq!(c["image"], "busybox");
        assert_eq!(c["resizePolicy"][0]["resourceName"], "cpu");
        assert_eq!(out["spec"]["extra"], 1);
    }

    #[test]
    fn resize_refuses_added_or_reordered_containers() {
        let current = pod("100m", "200m", json!(1));
        let mut renamed = current.clone();
        renamed["spec"]["containers"][0]["name"] = json!("other");
        let causes = take_resize(&current, &renamed).expect_err("renamed");
        assert_eq!(causes[0].message, "Forbidden: containers may not be renamed or reordered");
        let mut added = current.clone();
        if let Some(a) = added["spec"]["containers"].as_array_mut() {
            a.push(json!({"name": "x"}));
        }
        assert!(take_resize(&current, &added).is_err());
    }

    #[test]
    fn validation_table() {
        let base = pod("100m", "200m", json!(1));
        let mut removed = base.clone();
        removed["spec"]["containers"][0]["resources"]["limits"].as_object_mut().map(|m| m.remove("cpu"));
        let mut storage = base.clone();
        storage["spec"]["containers"][0]["resources"]["limits"]["ephemeral-storage"] = json!("1Gi");
        let mut mirror = base.clone();
        mirror["metadata"]["annotations"] = json!({MIRROR_ANNOTATION: "x"});
        let cases: Vec<(&str, Value, Value, Vec<&str>)> = vec![
            ("cpu up", base.clone(), pod("300m", "400m", json!(1)), vec![]),
            ("to guaranteed changes qos", base.clone(), pod("200m", "200m", json!(1)), vec!["spec"]),
            ("limit removed", base.clone(), removed, vec!["spec.containers[0].resources.limits[cpu]"]),
            ("other resource", base.clone(), storage, vec!["spec"]),
            ("static pod", mirror.clone(), mirror, vec![""]),
        ];
        for (name, old, new, want) in cases {
            let got: Vec<String> = validate(&old, &new).into_iter().map(|c| c.field).collect();
            assert_eq!(got, want, "{name}");
        }
        let qos = validate(&base, &pod("200m", "200m", json!(1)));
        assert!(qos[0].message.contains("Pod QOS Class may not change as a result of resizing"));
    }

    #[test]
    fn resize_policies_are_checked() {
        let mut p = pod("100m", "200m", json!(1));
        p["spec"]["containers"][0]["resizePolicy"] = json!([
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "cpu", "restartPolicy": "Sometimes"},
            {"resourceName": "gpu", "restartPolicy": "RestartContainer"},
        ]);
        p["spec"]["initContainers"] =
            json!([{"name": "i", "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]}]);
        let mut out = Vec::new();
        validate_policies(&p, &mut out);
        let fields: Vec<&str> = out.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.containers[0].resizePolicy[1].resourceName",
                "spec.containers[0].resizePolicy[1].restartPolicy",
                "spec.containers[0].resizePolicy[2].resourceName",
                "spec.initContainers[0].resizePolicy",
            ]
        );
    }
}
