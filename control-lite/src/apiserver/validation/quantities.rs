//! Resource lists (`requests`, `limits`, `overhead`) and single quantities
//! (`emptyDir.sizeLimit`): grammar, sign, range and names, at admission, so the
//! scheduler and the agent only ever see quantities they can sum.

use std::collections::BTreeMap;

use bosun_resources::QuantityError;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::meta::is_qualified_name;
use super::{invalid_value, Causes};
use crate::apiserver::status::Cause;

const QUANTITY_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Resource names a container may use without a domain prefix.
const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// Checks one quantity at `field`: valid grammar, not negative, and within
/// what the planes compute with (cpu in millicores, the rest in units, as i64).
pub fn validate_quantity(resource: &str, q: &Quantity, field: &str, out: &mut Causes) {
    let text = q.0.as_str();
    let parsed =
        if resource == "cpu" { bosun_resources::milli_value(text) } else { bosun_resources::plain_value(text) };
    match parsed {
        Ok(v) if v < 0 => out.push(invalid_value(field, text, "must be greater than or equal to 0")),
        Ok(_) => {}
        Err(QuantityError::Invalid(_)) => out.push(Cause::invalid(field, text, QUANTITY_MSG)),
        Err(QuantityError::Exponent(_)) => {
            out.push(Cause::invalid(field, text, "the decimal exponent must be between -99 and 99"))
        }
        Err(QuantityError::OutOfRange(_)) => {
            let unit = if resource == "cpu" { "millicores" } else { "units" };
            out.push(Cause::invalid(field, text, &format!("must be at most {} {unit}", i64::MAX)))
        }
    }
}

/// Value used to compare a request with a limit (None if invalid: reported elsewhere).
fn comparable(resource: &str, q: &Quantity) -> Option<i64> {
    if resource == "cpu" {
        bosun_resources::milli_value(&q.0).ok()
    } else {
        bosun_resources::plain_value(&q.0).ok()
    }
}

fn validate_resource_name(name: &str, field: &str, out: &mut Causes) {
    let standard = STANDARD_CONTAINER_RESOURCES.contains(&name) || name.starts_with("hugepages-");
    if !is_qualified_name(name) {
        out.push(Cause::invalid(field, name, "must be a standard resource name or fully qualified"));
    } else if !standard && !name.contains('/') {
        out.push(Cause::invalid(field, name, "must be a standard resource type or fully qualified"));
    }
}

/// A resource list (`overhead`, or one side of requirements) at `field`.
pub fn validate_resource_list(list: &BTreeMap<String, Quantity>, field: &str, out: &mut Causes) {
    for (name, q) in list {
        let at = format!("{field}[{name}]");
        validate_resource_name(name, &at, out);
        validate_quantity(name, q, &at, out);
        // Extended resources are whole numbers.
        if name.contains('/') && bosun_resources::milli_value(&q.0).is_ok_and(|m| m % 1000 != 0) {
            out.push(Cause::invalid(&at, &q.0, "must be an integer"));
        }
    }
}

/// Container `resources` at `field`: both lists, then `limits >= requests`
/// and extended resources requested only with an equal limit.
pub fn validate_requirements(r: Option<&ResourceRequirements>, field: &str, out: &mut Causes) {
    let Some(r) = r else { return };
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let requests = r.requests.as_ref().unwrap_or(&empty);
    validate_resource_list(limits, &format!("{field}.limits"), out);
    validate_resource_list(requests, &format!("{field}.requests"), out);
    for (name, request) in requests {
        let at = format!("{field}.requests[{name}]");
        match (limits.get(name), comparable(name, request)) {
            (Some(limit), Some(req)) => {
                if comparable(name, limit).is_some_and(|lim| req > lim) {
                    out.push(Cause::invalid(
                        &at,
                        &request.0,
                        &format!("must be less than or equal to {name} limit of {}", limit.0),
                    ));
                } else if name.contains('/') && comparable(name, limit) != Some(req) {
                    out.push(Cause::invalid(&at, &request.0, "must be equal to extended resource limit"));
                }
            }
            (None, Some(_)) if name.contains('/') => {
                out.push(Cause::invalid(&at, &request.0, "must be equal to extended resource limit"))
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect())
    }

    #[test]
    fn requirements_cases() {
        let cases: Vec<(ResourceRequirements, Vec<&str>)> = vec![
            (
                ResourceRequirements { requests: list(&[("cpu", "100m"), ("memory", "1Gi")]), ..Default::default() },
                vec![],
            ),
            (ResourceRequirements { requests: list(&[("cpu", "abc")]), ..Default::default() }, vec!["r.requests[cpu]"]),
            (
                ResourceRequirements { requests: list(&[("cpu", "0e2147483644")]), ..Default::default() },
                vec!["r.requests[cpu]"],
            ),
            (
                ResourceRequirements { limits: list(&[("cpu", "9223372036854775807")]), ..Default::default() },
                vec!["r.limits[cpu]"],
            ),
            (
                ResourceRequirements { limits: list(&[("memory", "-1")]), ..Default::default() },
                vec!["r.limits[memory]"],
            ),
            (
                ResourceRequirements {
                    requests: list(&[("cpu", "2")]),
                    limits: list(&[("cpu", "1")]),
                    ..Default::default()
                },
                vec!["r.requests[cpu]"],
            ),
            (ResourceRequirements { limits: list(&[("gpu", "1")]), ..Default::default() }, vec!["r.limits[gpu]"]),
            (
                ResourceRequirements { limits: list(&[("example.com/gpu", "1.5")]), ..Default::default() },
                vec!["r.limits[example.com/gpu]"],
            ),
            (
                ResourceRequirements { requests: list(&[("example.com/gpu", "1")]), ..Default::default() },
                vec!["r.requests[example.com/gpu]"],
            ),
            (
                ResourceRequirements {
                    limits: list(&[("hugepages-2Mi", "2Mi"), ("example.com/x", "2")]),
                    ..Default::default()
                },
                vec![],
            ),
        ];
        for (r, want) in cases {
            let mut out = Vec::new();
            validate_requirements(Some(&r), "r", &mut out);
            let got: Vec<&str> = out.iter().map(|c| c.field.as_str()).collect();
            assert_eq!(got, want, "{r:?}");
        }
    }
}
