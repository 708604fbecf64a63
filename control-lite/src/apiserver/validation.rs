//! Validation: pure checks of an object, returning upstream-shaped causes.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiSelector;
use serde_json::Value;

use super::registry::{Kind, ResourceInfo};
use super::schema::typed;
use super::selectors::{labels_of, LabelSelector};
use super::status::Cause;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 chars.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 chars.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// RFC 1035 label: an RFC 1123 label starting with a letter.
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_qualified_name_part(s)
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

fn validate_labels(labels: &BTreeMap<String, String>, field: &str, out: &mut Vec<Cause>) {
    for (k, v) in labels {
        let (prefix, name) = match k.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k.as_str()),
        };
        if prefix.is_some_and(|p| !is_dns1123_subdomain(p)) || !is_qualified_name_part(name) {
            out.push(Cause::invalid(field, k, QUALIFIED_NAME_MSG));
        }
        if !is_label_value(v) {
            out.push(Cause::invalid(field, v, LABEL_VALUE_MSG));
        }
    }
}

/// Validates `obj` (already typed-normalized) as an object of `info`.
pub fn validate(info: &ResourceInfo, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        out.push(Cause::required("metadata.name"));
    } else {
        let (ok, msg) = match info.kind {
            Kind::Namespace => (is_dns1123_label(name), DNS1123_LABEL_MSG),
            Kind::Service => (is_dns1035_label(name), DNS1035_LABEL_MSG),
            _ => (is_dns1123_subdomain(name), DNS1123_SUBDOMAIN_MSG),
        };
        if !ok {
            out.push(Cause::invalid("metadata.name", name, msg));
        }
    }
    if info.namespaced {
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
        if ns.is_empty() {
            out.push(Cause::required("metadata.namespace"));
        } else if !is_dns1123_label(ns) {
            out.push(Cause::invalid("metadata.namespace", ns, DNS1123_LABEL_MSG));
        }
    }
    validate_labels(&labels_of(obj), "metadata.labels", &mut out);
    match info.kind {
        Kind::Pod => {
            if let Some(pod) = typed::<Pod>(obj) {
                validate_pod_spec(pod.spec.as_ref(), "spec", &mut out);
            }
        }
        Kind::Deployment => {
            if let Some(d) = typed::<Deployment>(obj) {
                let spec = d.spec.unwrap_or_default();
                validate_workload(spec.replicas, Some(&spec.selector), Some(&spec.template), &mut out);
            }
        }
        Kind::ReplicaSet => {
            if let Some(rs) = typed::<ReplicaSet>(obj) {
                let spec = rs.spec.unwrap_or_default();
                validate_workload(spec.replicas, Some(&spec.selector), spec.template.as_ref(), &mut out);
            }
        }
        Kind::Service => {
            if let Some(svc) = typed::<Service>(obj) {
                validate_service(&svc, &mut out);
            }
        }
        _ => {}
    }
    out
}

fn validate_workload(
    replicas: Option<i32>,
    selector: Option<&ApiSelector>,
    template: Option<&PodTemplateSpec>,
    out: &mut Vec<Cause>,
) {
    if let Some(r) = replicas.filter(|r| *r < 0) {
        out.push(Cause {
            reason: "FieldValueInvalid",
            field: "spec.replicas".into(),
            message: format!("Invalid value: {r}: must be greater than or equal to 0"),
        });
    }
    let selector_json = selector.map(|s| serde_json::to_value(s).unwrap_or(Value::Null)).unwrap_or(Value::Null);
    let sel = LabelSelector::from_api(&selector_json);
    if sel.0.is_empty() {
        out.push(Cause::required("spec.selector"));
    }
    let template_labels = template.and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone()).unwrap_or_default();
    validate_labels(&template_labels, "spec.template.metadata.labels", out);
    if !sel.0.is_empty() && !sel.matches(&template_labels) {
        let rendered: Vec<String> = template_labels.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
        out.push(Cause {
            reason: "FieldValueInvalid",
            field: "spec.template.metadata.labels".into(),
            message: format!(
                "Invalid value: map[string]string{{{}}}: `selector` does not match template `labels`",
                rendered.join(", ")
            ),
        });
    }
    validate_pod_spec(template.and_then(|t| t.spec.as_ref()), "spec.template.spec", out);
}

/// Checks a pod spec at `field`.
pub fn validate_pod_spec(spec: Option<&PodSpec>, field: &str, out: &mut Vec<Cause>) {
    let Some(spec) = spec else {
        out.push(Cause::required(format!("{field}.containers")));
        return;
    };
    if spec.containers.is_empty() {
        out.push(Cause::required(format!("{field}.containers")));
    }
    let mut names = HashSet::new();
    let init =
        spec.init_containers.iter().flatten().enumerate().map(|(i, c)| (format!("{field}.initContainers[{i}]"), c));
    let main = spec.containers.iter().enumerate().map(|(i, c)| (format!("{field}.containers[{i}]"), c));
    for (path, c) in init.chain(main) {
        validate_container(c, &path, &mut names, out);
    }
    if let Some(policy) = spec.restart_policy.as_deref() {
        let allowed = ["Always", "OnFailure", "Never"];
        if !allowed.contains(&policy) {
            out.push(Cause::not_supported(format!("{field}.restartPolicy"), policy, &allowed));
        }
    }
}

fn validate_container(c: &Container, path: &str, names: &mut HashSet<String>, out: &mut Vec<Cause>) {
    if c.name.is_empty() {
        out.push(Cause::required(format!("{path}.name")));
    } else if !is_dns1123_label(&c.name) {
        out.push(Cause::invalid(format!("{path}.name"), &c.name, DNS1123_LABEL_MSG));
    } else if !names.insert(c.name.clone()) {
        out.push(Cause::duplicate(format!("{path}.name"), &c.name));
    }
    if c.image.as_deref().unwrap_or_default().trim().is_empty() {
        out.push(Cause::required(format!("{path}.image")));
    }
    for (i, p) in c.ports.iter().flatten().enumerate() {
        if !(1..=65535).contains(&p.container_port) {
            out.push(port_range(format!("{path}.ports[{i}].containerPort"), p.container_port));
        }
    }
}

fn port_range(field: String, port: i32) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field,
        message: format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
    }
}

fn validate_service(svc: &Service, out: &mut Vec<Cause>) {
    let spec = svc.spec.clone().unwrap_or_default();
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    let allowed = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    if !allowed.contains(&kind) {
        out.push(Cause::not_supported("spec.type", kind, &allowed));
    }
    let ports = spec.ports.unwrap_or_default();
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if ports.is_empty() && kind != "ExternalName" && !headless {
        out.push(Cause::required("spec.ports"));
    }
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        if !(1..=65535).contains(&p.port) {
            out.push(port_range(format!("spec.ports[{i}].port"), p.port));
        }
        let name = p.name.clone().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            out.push(Cause::required(format!("spec.ports[{i}].name")));
        } else if !name.is_empty() && !names.insert(name.clone()) {
            out.push(Cause::duplicate(format!("spec.ports[{i}].name"), &name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::by_kind;
    use serde_json::json;

    fn deployment(name: &str, containers: Value, selector: Value, labels: Value, replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}}}})
    }

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn deployment_validation_cases() {
        let ok_c = json!([{"name": "c", "image": "i"}]);
        let app = json!({"app": "web"});
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (deployment("web", ok_c.clone(), app.clone(), app.clone(), 1), vec![]),
            (deployment("web", json!([]), app.clone(), app.clone(), 1), vec!["spec.template.spec.containers"]),
            (deployment("Web_1", ok_c.clone(), app.clone(), app.clone(), 1), vec!["metadata.name"]),
            (
                deployment("web", ok_c.clone(), app.clone(), json!({"app": "db"}), 1),
                vec!["spec.template.metadata.labels"],
            ),
            (deployment("web", ok_c.clone(), json!({}), app.clone(), 1), vec!["spec.selector"]),
            (deployment("web", ok_c.clone(), app.clone(), app.clone(), -1), vec!["spec.replicas"]),
            (
                deployment("web", json!([{"name": "c", "image": "i"}, {"name": "c"}]), app.clone(), app.clone(), 1),
                vec!["spec.template.spec.containers[1].name", "spec.template.spec.containers[1].image"],
            ),
            (
                deployment("web", ok_c.clone(), json!({"a b": "x"}), json!({"a b": "x"}), 1),
                vec!["spec.template.metadata.labels"],
            ),
        ];
        for (obj, want) in cases {
            let causes = validate(by_kind(Kind::Deployment), &obj);
            assert_eq!(fields(&causes), want, "{obj}");
        }
    }

    #[test]
    fn service_and_name_rules() {
        let svc = |name: &str, ports: Value| {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                "spec": {"ports": ports}})
        };
        let info = by_kind(Kind::Service);
        assert!(validate(info, &svc("web", json!([{"port": 80}]))).is_empty());
        assert_eq!(fields(&validate(info, &svc("web", json!([{"port": 0}])))), vec!["spec.ports[0].port"]);
        assert_eq!(fields(&validate(info, &svc("1web", json!([{"port": 80}])))), vec!["metadata.name"]);
        assert_eq!(
            fields(&validate(info, &svc("web", json!([{"port": 80}, {"port": 81}])))),
            vec!["spec.ports[0].name", "spec.ports[1].name"]
        );
        assert!(is_dns1123_subdomain("a.b-c"));
        assert!(!is_dns1123_subdomain("A"));
        assert!(!is_dns1123_label("a.b"));
    }
}
