//! A CustomResourceDefinition's rules (pure): admission checks with
//! upstream's field paths ([`validate`]), the status the server keeps
//! ([`set_status`]: `acceptedNames`, `storedVersions`, the `NamesAccepted`
//! and `Established` conditions) and the served versions in upstream's
//! priority order ([`served_versions`]).

use serde_json::{json, Value};

use super::{columns, schema};
use crate::apiserver::status::Cause;

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns_label)
}

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";

/// `spec` as strings, for the rules below.
fn text<'a>(crd: &'a Value, pointer: &str) -> &'a str {
    crd.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// Checks a CRD as upstream's `ValidateCustomResourceDefinition` does for
/// the rules bosun serves.
/// The annotation a CRD in a Kubernetes-owned group must carry (upstream).
const APPROVAL: &str = "api-approved.kubernetes.io";

/// Groups Kubernetes owns (`*.k8s.io`, `*.kubernetes.io`).
fn protected_group(group: &str) -> bool {
    ["k8s.io", "kubernetes.io"].iter().any(|g| group == *g || group.ends_with(&format!(".{g}")))
}

/// The built-in resource stored where a custom resource of `group` and
/// `plural` would be (`plural.group`), if any.
pub fn builtin_owning(group: &str, plural: &str) -> Option<String> {
    crate::apiserver::registry::RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .map(|r| format!("{}.{}", r.plural, r.group))
}

pub fn validate(crd: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let group = text(crd, "/spec/group");
    let plural = text(crd, "/spec/names/plural");
    if group.is_empty() {
        out.push(Cause::required("spec.group"));
    } else if !dns_subdomain(group) || !group.contains('.') {
        out.push(Cause::invalid("spec.group", group, "should be a domain with at least one dot"));
    }
    let name = crate::apiserver::objects::meta_str(crd, "name").unwrap_or_default();
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        out.push(Cause::invalid("metadata.name", name, "must be spec.names.plural+\".\"+spec.group"));
    }
    if let Some(builtin) = builtin_owning(group, plural) {
        // Custom and built-in objects share the `/registry/<group>/<plural>/` key space.
        out.push(Cause::invalid(
            "spec.names.plural",
            plural,
            &format!("is the built-in resource {}; a custom resource cannot replace it", builtin),
        ));
    }
    if protected_group(group)
        && crd.pointer(&format!("/metadata/annotations/{}", APPROVAL.replace('/', "~1"))).is_none()
    {
        out.push(Cause {
            reason: "FieldValueRequired",
            field: format!("metadata.annotations[{APPROVAL}]"),
            message: format!(
                "Required value: protected groups must have approval annotation {}, see https://github.com/kubernetes/enhancements/pull/1111",
                json!(APPROVAL)
            ),
        });
    }
    names(crd, &mut out);
    match text(crd, "/spec/scope") {
        "Namespaced" | "Cluster" => {}
        "" => out.push(Cause::required("spec.scope")),
        other => out.push(Cause {
            reason: "FieldValueNotSupported",
            field: "spec.scope".into(),
            message: format!("Unsupported value: {}: supported values: \"Cluster\", \"Namespaced\"", json!(other)),
        }),
    }
    versions(crd, &mut out);
    out
}

fn names(crd: &Value, out: &mut Vec<Cause>) {
    let kind = text(crd, "/spec/names/kind");
    for field in ["plural", "singular"] {
        let v = text(crd, &format!("/spec/names/{field}"));
        if v.is_empty() && field == "plural" {
            out.push(Cause::required("spec.names.plural"));
        } else if !v.is_empty() && !dns_label(v) {
            out.push(Cause::invalid(format!("spec.names.{field}"), v, LABEL_MSG));
        }
    }
    let c_ident = |s: &str| {
        s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) && s.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    if kind.is_empty() {
        out.push(Cause::required("spec.names.kind"));
    } else if !c_ident(kind) {
        out.push(Cause::invalid(
            "spec.names.kind",
            kind,
            "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
        ));
    }
    let list_kind = text(crd, "/spec/names/listKind");
    if !list_kind.is_empty() && (list_kind == kind || !c_ident(list_kind)) {
        out.push(Cause::invalid("spec.names.listKind", list_kind, "kind and listKind may not be the same"));
    }
    for key in ["shortNames", "categories"] {
        let list = crd.pointer(&format!("/spec/names/{key}")).and_then(Value::as_array);
        for (i, v) in list.into_iter().flatten().enumerate() {
            let v = v.as_str().unwrap_or_default();
            if !dns_label(v) {
                out.push(Cause::invalid(format!("spec.names.{key}[{i}]"), v, LABEL_MSG));
            }
        }
    }
}

fn versions(crd: &Value, out: &mut Vec<Cause>) {
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if versions.is_empty() {
        out.push(Cause::required("spec.versions"));
        return;
    }
    let storage = versions.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true)).count();
    if storage != 1 {
        out.push(Cause::invalid(
            "spec.versions",
            &format!("{storage} storage versions"),
            "must have exactly one version marked as storage version",
        ));
    }
    let mut seen = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        let name = text(v, "/name");
        if !dns_label(name) {
            out.push(Cause::invalid(format!("{at}.name"), name, LABEL_MSG));
        } else if seen.contains(&name) {
            out.push(Cause::duplicate(format!("{at}.name"), name));
        }
        seen.push(name);
        let served = v.get("served").and_then(Value::as_bool).unwrap_or(false);
        let stored = v.get("storage").and_then(Value::as_bool).unwrap_or(false);
        if stored && !served {
            out.push(Cause::invalid(format!("{at}.served"), "false", "the storage version must be served"));
        }
        let schema_at = format!("{at}.schema.openAPIV3Schema");
        match v.pointer("/schema/openAPIV3Schema") {
            None | Some(Value::Null) => out.push(Cause {
                reason: "FieldValueRequired",
                field: schema_at,
                message: "Required value: schemas are required".into(),
            }),
            Some(s) => match schema::parse(s, &schema_at) {
                Ok(parsed) if parsed.ty != Some(schema::Type::Object) => {
                    out.push(Cause::invalid(format!("{schema_at}.type"), "", "must be object at the root"))
                }
                Ok(_) => {}
                Err(e) => {
                    let text = e.to_string();
                    let (field, message) = text.split_once(": ").unwrap_or((&schema_at, &text));
                    out.push(Cause { reason: "FieldValueInvalid", field: field.into(), message: message.into() })
                }
            },
        }
        let cols = v.get("additionalPrinterColumns").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if let Err(e) = columns::parse(cols) {
            out.push(Cause::invalid(format!("{at}.additionalPrinterColumns"), "", &e.to_string()));
        }
        if let Some(scale) = v.pointer("/subresources/scale") {
            for (key, prefix) in [("specReplicasPath", ".spec."), ("statusReplicasPath", ".status.")] {
                let p = text(scale, &format!("/{key}"));
                if !p.starts_with(prefix) {
                    let msg = format!("should be a json path under {}", prefix.trim_end_matches('.'));
                    out.push(Cause::invalid(format!("{at}.subresources.scale.{key}"), p, &msg));
                }
            }
        }
    }
}

/// Upstream's version priority: GA before beta before alpha, higher
/// numbers first; other names last, alphabetically.
fn priority(v: &str) -> (u8, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, String) {
    let parsed = v.strip_prefix('v').and_then(|rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let major: u64 = rest[..digits].parse().ok()?;
        match &rest[digits..] {
            "" => Some((0, major, 0)),
            tail => {
                let (level, minor) =
                    tail.strip_prefix("beta").map(|m| (1, m)).or_else(|| tail.strip_prefix("alpha").map(|m| (2, m)))?;
                Some((level, major, minor.parse().ok()?))
            }
        }
    });
    match parsed {
        Some((level, major, minor)) => (level, std::cmp::Reverse(major), std::cmp::Reverse(minor), String::new()),
        None => (3, std::cmp::Reverse(0), std::cmp::Reverse(0), v.to_string()),
    }
}

/// The served version objects of `crd`, preferred first.
pub fn served_versions(crd: &Value) -> Vec<&Value> {
    let mut out: Vec<&Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        .collect();
    out.sort_by_key(|v| priority(text(v, "/name")));
    out
}

/// The storage version's name.
pub fn storage_version(crd: &Value) -> &str {
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    versions.iter().find(|v| v.get("storage").and_then(Value::as_bool) == Some(true)).map_or("", |v| text(v, "/name"))
}

fn condition(previous: &Value, ty: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    let old = previous
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == ty);
    let since = match old {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    json!({"type": ty, "status": status, "reason": reason, "message": message, "lastTransitionTime": since})
}

/// Fills in `listKind`, then sets the status the server owns: accepted
/// names, stored versions (kept, plus the storage version) and the
/// `NamesAccepted`/`Established` conditions (`conflict`: why the names
/// clash with another resource). `previous` is the stored object, if any.
pub fn set_status(crd: &mut Value, previous: Option<&Value>, conflict: Option<String>, now: &str) {
    let kind = text(crd, "/spec/names/kind").to_string();
    if text(crd, "/spec/names/listKind").is_empty() {
        if let Some(names) = crd.pointer_mut("/spec/names").and_then(Value::as_object_mut) {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    let previous = previous.unwrap_or(&Value::Null);
    let mut stored: Vec<Value> =
        previous.pointer("/status/storedVersions").and_then(Value::as_array).cloned().unwrap_or_default();
    let storage = json!(storage_version(crd));
    if !stored.contains(&storage) {
        stored.push(storage);
    }
    let (names_accepted, established, accepted) = match &conflict {
        None => (
            condition(previous, "NamesAccepted", "True", "NoConflicts", "no conflicts found", now),
            condition(
                previous,
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
                now,
            ),
            crd.pointer("/spec/names").cloned().unwrap_or(json!({})),
        ),
        Some(why) => (
            condition(previous, "NamesAccepted", "False", "NameConflict", why, now),
            condition(previous, "Established", "False", "NotAccepted", "not all names are accepted", now),
            previous.pointer("/status/acceptedNames").cloned().unwrap_or(json!({})),
        ),
    };
    let mut conditions = vec![names_accepted, established];
    if crd.pointer("/metadata/deletionTimestamp").is_some() {
        conditions.push(terminating(previous, now));
    }
    crd["status"] = json!({"acceptedNames": accepted, "storedVersions": stored, "conditions": conditions});
}

/// The `Terminating` condition of a CRD whose objects are being deleted.
fn terminating(previous: &Value, now: &str) -> Value {
    condition(
        previous,
        "Terminating",
        "True",
        "InstanceDeletionInProgress",
        "CustomResource deletion is in progress",
        now,
    )
}

/// Adds the `Terminating` condition to a CRD being marked for deletion.
pub fn mark_terminating(crd: &mut Value, now: &str) {
    let condition = terminating(crd, now);
    let Some(status) = crd.as_object_mut().map(|o| o.entry("status").or_insert_with(|| json!({}))) else { return };
    let Some(status) = status.as_object_mut() else { return };
    let conditions = status.entry("conditions").or_insert_with(|| json!([]));
    if let Some(list) = conditions.as_array_mut() {
        list.retain(|c| c["type"] != "Terminating");
        list.push(condition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_resources_and_protected_groups_are_refused() {
        let named = |group: &str, plural: &str| {
            json!({"metadata": {"name": format!("{plural}.{group}")}, "spec": {"group": group, "scope": "Namespaced",
                "names": {"plural": plural, "singular": "x", "kind": "X"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}]}})
        };
        let fields = |crd: &Value| validate(crd).into_iter().map(|c| c.field).collect::<Vec<_>>();
        let leases = fields(&named("coordination.k8s.io", "leases"));
        assert!(leases.contains(&"spec.names.plural".to_string()), "{leases:?}");
        assert!(leases.contains(&"metadata.annotations[api-approved.kubernetes.io]".to_string()), "{leases:?}");
        let mut approved = named("gateway.networking.k8s.io", "gateways");
        approved["metadata"]["annotations"] = json!({"api-approved.kubernetes.io": "https://x"});
        assert_eq!(fields(&approved), Vec::<String>::new());
        assert_eq!(fields(&named("example.com", "leases")), Vec::<String>::new());
        assert!(!fields(&named("x.kubernetes.io", "things")).is_empty());
    }

    fn crd() -> Value {
        json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object"}}}]}})
    }

    fn errors(edit: impl Fn(&mut Value)) -> Vec<String> {
        let mut c = crd();
        edit(&mut c);
        validate(&c).iter().map(Cause::display).collect()
    }

    #[test]
    fn a_well_formed_crd_passes() {
        assert_eq!(errors(|_| {}), Vec::<String>::new());
    }

    #[test]
    fn each_rule_names_its_field() {
        type Edit = fn(&mut Value);
        let cases: [(Edit, &str); 11] = [
            (|c| c["spec"]["group"] = json!("example"), "spec.group: Invalid value: \"example\": should be a domain"),
            (|c| c["metadata"]["name"] = json!("x"), "metadata.name: Invalid value: \"x\": must be spec.names.plural"),
            (|c| c["spec"]["names"]["plural"] = json!("Widgets"), "spec.names.plural: Invalid value: \"Widgets\""),
            (|c| c["spec"]["names"]["kind"] = json!(""), "spec.names.kind: Required value"),
            (|c| c["spec"]["names"]["listKind"] = json!("Widget"), "spec.names.listKind: Invalid value"),
            (|c| c["spec"]["names"]["shortNames"] = json!(["W!"]), "spec.names.shortNames[0]: Invalid value"),
            (|c| c["spec"]["scope"] = json!("Global"), "spec.scope: Unsupported value: \"Global\""),
            (
                |c| c["spec"]["versions"][0]["storage"] = json!(false),
                "spec.versions: Invalid value: \"0 storage versions\"",
            ),
            (
                |c| c["spec"]["versions"][0]["schema"] = json!(null),
                "spec.versions[0].schema.openAPIV3Schema: Required value",
            ),
            (
                |c| {
                    c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] =
                        json!({"type": "object", "properties": {"a": {"type": "x"}}})
                },
                "spec.versions[0].schema.openAPIV3Schema.properties[a].type: Unsupported value: \"x\"",
            ),
            (
                |c| {
                    c["spec"]["versions"][0]["subresources"] =
                        json!({"scale": {"specReplicasPath": ".x", "statusReplicasPath": ".status.r"}})
                },
                "spec.versions[0].subresources.scale.specReplicasPath: Invalid value: \".x\"",
            ),
        ];
        for (edit, want) in cases {
            let got = errors(edit);
            assert!(got.iter().any(|e| e.starts_with(want)), "{got:?} lacks {want}");
        }
    }

    #[test]
    fn status_accepts_names_and_keeps_transition_times() {
        let mut c = crd();
        set_status(&mut c, None, None, "t1");
        assert_eq!(c["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(c["status"]["acceptedNames"]["kind"], "Widget");
        assert_eq!(c["status"]["storedVersions"], json!(["v1"]));
        assert_eq!(c["status"]["conditions"][1]["type"], "Established");
        assert_eq!(c["status"]["conditions"][1]["status"], "True");
        let previous = c.clone();
        set_status(&mut c, Some(&previous), None, "t2");
        assert_eq!(c["status"]["conditions"][0]["lastTransitionTime"], "t1");
        set_status(&mut c, Some(&previous), Some("taken".into()), "t3");
        assert_eq!(c["status"]["conditions"][0]["status"], "False");
        assert_eq!(c["status"]["conditions"][0]["lastTransitionTime"], "t3");
    }

    #[test]
    fn versions_sort_by_upstream_priority() {
        let mut c = crd();
        c["spec"]["versions"] =
            json!(["v1beta1", "v2", "v1", "v1alpha1", "v10", "foo"].map(|n| json!({"name": n, "served": true})));
        let names: Vec<&str> = served_versions(&c).iter().map(|v| text(v, "/name")).collect();
        assert_eq!(names, ["v10", "v2", "v1", "v1beta1", "v1alpha1", "foo"]);
    }
}
