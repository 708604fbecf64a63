//! Deployments and ReplicaSets: replicas, selector matching the template,
//! rollout strategy and its surge/unavailable bounds, the pod template.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::meta::validate_labels;
use super::pod::validate_pod_spec;
use super::podrules::{validate_spec_rules, SpecOf};
use super::{at_least, invalid_value, one_of, Causes};
use crate::apiserver::schema::typed;
use crate::apiserver::selectors::{labels_of, LabelSelector};
use crate::apiserver::status::Cause;

const SELECTOR_OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

/// A Deployment object.
pub fn validate_deployment(obj: &Value, out: &mut Causes) {
    let Some(d) = typed::<Deployment>(obj) else { return };
    let spec = d.spec.unwrap_or_default();
    validate_replicas(spec.replicas, out);
    validate_selector_and_template(Some(&spec.selector), Some(&spec.template), out);
    if let Some(s) = spec.min_ready_seconds {
        at_least("spec.minReadySeconds", s.into(), 0, out);
    }
    if let Some(h) = spec.revision_history_limit {
        at_least("spec.revisionHistoryLimit", h.into(), 0, out);
    }
    if let Some(p) = spec.progress_deadline_seconds {
        at_least("spec.progressDeadlineSeconds", p.into(), 0, out);
        if p <= spec.min_ready_seconds.unwrap_or(0) {
            out.push(invalid_value("spec.progressDeadlineSeconds", p, "must be greater than minReadySeconds"));
        }
    }
    if let Some(strategy) = &spec.strategy {
        validate_strategy(strategy, out);
    }
}

/// A ReplicaSet object.
pub fn validate_replicaset(obj: &Value, out: &mut Causes) {
    let Some(rs) = typed::<ReplicaSet>(obj) else { return };
    let spec = rs.spec.unwrap_or_default();
    validate_replicas(spec.replicas, out);
    validate_selector_and_template(Some(&spec.selector), spec.template.as_ref(), out);
    if let Some(s) = spec.min_ready_seconds {
        at_least("spec.minReadySeconds", s.into(), 0, out);
    }
}

pub(super) fn validate_replicas(replicas: Option<i32>, out: &mut Causes) {
    if let Some(r) = replicas {
        at_least("spec.replicas", r.into(), 0, out);
    }
}

fn validate_strategy(strategy: &DeploymentStrategy, out: &mut Causes) {
    let kind = strategy.type_.as_deref().unwrap_or("RollingUpdate");
    one_of("spec.strategy.type", Some(kind), &["Recreate", "RollingUpdate"], out);
    let Some(ru) = &strategy.rolling_update else { return };
    if kind == "Recreate" {
        out.push(super::forbidden(
            "spec.strategy.rollingUpdate",
            "may not be specified when strategy `type` is 'Recreate'",
        ));
        return;
    }
    let surge = ru.max_surge.as_ref().map(|v| int_or_percent(v, "spec.strategy.rollingUpdate.maxSurge", false, out));
    let unavailable =
        ru.max_unavailable.as_ref().map(|v| int_or_percent(v, "spec.strategy.rollingUpdate.maxUnavailable", true, out));
    if surge == Some(Some(0)) && unavailable == Some(Some(0)) {
        out.push(invalid_value("spec.strategy.rollingUpdate.maxUnavailable", 0, "may not be 0 when `maxSurge` is 0"));
    }
}

/// An int >= 0 or a percentage `N%` (N <= 100 when `at_most_100`). Returns
/// the number (int or percent) if valid.
pub(super) fn int_or_percent(v: &IntOrString, field: &str, at_most_100: bool, out: &mut Causes) -> Option<i64> {
    match v {
        IntOrString::Int(n) => {
            at_least(field, (*n).into(), 0, out);
            (*n >= 0).then_some((*n).into())
        }
        IntOrString::String(s) => {
            let digits =
                s.strip_suffix('%').filter(|d| !d.is_empty() && d.len() <= 9 && d.bytes().all(|c| c.is_ascii_digit()));
            let Some(pct) = digits.and_then(|d| d.parse::<i64>().ok()) else {
                out.push(Cause::invalid(field, s, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"));
                return None;
            };
            if at_most_100 && pct > 100 {
                out.push(Cause::invalid(field, s, "must not be greater than 100%"));
                return None;
            }
            Some(pct)
        }
    }
}

/// A selector: non-empty, valid labels and expressions, matching `template`.
pub(super) fn validate_selector_and_template(
    selector: Option<&ApiSelector>,
    template: Option<&PodTemplateSpec>,
    out: &mut Causes,
) {
    let selector_json = selector.map(|s| serde_json::to_value(s).unwrap_or(Value::Null)).unwrap_or(Value::Null);
    if let Some(s) = selector {
        validate_label_selector(s, "spec.selector", out);
    }
    let sel = LabelSelector::from_api(&selector_json);
    if sel.0.is_empty() {
        out.push(Cause::required("spec.selector"));
    }
    let Some(template) = template else {
        out.push(Cause::required("spec.template"));
        return;
    };
    let template_json = serde_json::to_value(template).unwrap_or(Value::Null);
    let template_labels = labels_of(&template_json);
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
    validate_pod_spec(template.spec.as_ref(), "spec.template.spec", out);
    if let Some(spec) = template.spec.as_ref() {
        validate_spec_rules(spec, "spec.template.spec", SpecOf::Template, out);
    }
    if let Some(policy) = template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
        if policy != "Always" {
            out.push(Cause::not_supported("spec.template.spec.restartPolicy", policy, &["Always"]));
        }
    }
}

/// A LabelSelector's labels and expressions (`field` is its path).
pub(super) fn validate_label_selector(s: &ApiSelector, field: &str, out: &mut Causes) {
    if let Some(m) = &s.match_labels {
        validate_labels(m, &format!("{field}.matchLabels"), out);
    }
    for (i, e) in s.match_expressions.iter().flatten().enumerate() {
        let at = format!("{field}.matchExpressions[{i}]");
        one_of(format!("{at}.operator"), Some(e.operator.as_str()), &SELECTOR_OPERATORS, out);
        let has_values = e.values.as_ref().is_some_and(|v| !v.is_empty());
        match e.operator.as_str() {
            "In" | "NotIn" if !has_values => {
                out.push(Cause::required(format!("{at}.values")));
            }
            "Exists" | "DoesNotExist" if has_values => {
                out.push(super::forbidden(
                    format!("{at}.values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::{by_kind, Kind};
    use crate::apiserver::validation::validate;
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
                vec!["spec.selector.matchLabels", "spec.template.metadata.labels"],
            ),
        ];
        for (obj, want) in cases {
            let causes = validate(by_kind(Kind::Deployment), &obj);
            assert_eq!(fields(&causes), want, "{obj}");
        }
    }

    #[test]
    fn strategy_bounds() {
        let with = |ru: Value| {
            let mut d =
                deployment("web", json!([{"name": "c", "image": "i"}]), json!({"a": "b"}), json!({"a": "b"}), 1);
            d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": ru});
            d
        };
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"maxSurge": 2147483647, "maxUnavailable": 0}), vec![]),
            (json!({"maxSurge": "300%", "maxUnavailable": "100%"}), vec![]),
            (json!({"maxSurge": 0, "maxUnavailable": 0}), vec!["spec.strategy.rollingUpdate.maxUnavailable"]),
            (json!({"maxSurge": "0%", "maxUnavailable": "0%"}), vec!["spec.strategy.rollingUpdate.maxUnavailable"]),
            (
                json!({"maxSurge": -1, "maxUnavailable": "101%"}),
                vec!["spec.strategy.rollingUpdate.maxSurge", "spec.strategy.rollingUpdate.maxUnavailable"],
            ),
            (
                json!({"maxSurge": "x%", "maxUnavailable": "99999999999999%"}),
                vec!["spec.strategy.rollingUpdate.maxSurge", "spec.strategy.rollingUpdate.maxUnavailable"],
            ),
        ];
        for (ru, want) in cases {
            let causes = validate(by_kind(Kind::Deployment), &with(ru.clone()));
            assert_eq!(fields(&causes), want, "{ru}");
        }
    }
}
