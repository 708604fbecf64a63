//! Discovery documents and `/version`, all computed from the resource table
//! ([`super::registry`]), never kept by hand.
//!
//! - Legacy (this module): `/api` (`APIVersions`), `/apis` (`APIGroupList`),
//!   `/apis/<g>` (`APIGroup`), `/api/v1` and `/apis/<g>/<v>`
//!   (`APIResourceList`, subresources as `<plural>/<sub>` entries).
//! - Aggregated ([`aggregated`]): `/api` and `/apis` as one
//!   `APIGroupDiscoveryList` each, every group, version and resource with its
//!   subresources in one answer, for clients that ask for it in `Accept`
//!   ([`negotiate`]; the HTTP side is `http/roots.rs`).
//!
//! What a resource's and a subresource's verbs and response kinds are is
//! decided once here (`resource_verbs`, `subresource_doc`) and read by
//! both forms.

use serde_json::{json, Value};

pub mod aggregated;
pub mod negotiate;

use super::registry::{all_with, group_versions_of, ResourceInfo, Subresource};

/// The Kubernetes version this apiserver claims.
pub const GIT_VERSION: &str = "v1.33.0-bosun";

const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The verbs of a resource itself: a review is only created.
fn resource_verbs(r: &ResourceInfo) -> &'static [&'static str] {
    if r.is_review() {
        &["create"]
    } else {
        VERBS
    }
}

/// What a subresource answers with and which verbs it serves; both discovery
/// forms (legacy and aggregated) read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SubresourceDoc {
    /// The response's group and version when they differ from the resource's.
    group_version: Option<(&'static str, &'static str)>,
    /// The response's kind.
    kind: &'static str,
    verbs: &'static [&'static str],
}

fn subresource_doc(r: &ResourceInfo, sub: Subresource) -> SubresourceDoc {
    let own = |kind, verbs| SubresourceDoc { group_version: None, kind, verbs };
    let other = |group, version, kind, verbs| SubresourceDoc { group_version: Some((group, version)), kind, verbs };
    match sub {
        Subresource::Status | Subresource::Resize | Subresource::Approval => {
            own(r.kind_name, &["get", "patch", "update"])
        }
        Subresource::Scale => other("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
        Subresource::Log => own(r.kind_name, &["get"]),
        Subresource::Binding => own("Binding", &["create"]),
        Subresource::Finalize => own(r.kind_name, &["update"]),
        Subresource::Eviction => other("policy", "v1", "Eviction", &["create"]),
        Subresource::Token => other("authentication.k8s.io", "v1", "TokenRequest", &["create"]),
        Subresource::Exec => own("PodExecOptions", &["create", "get"]),
        Subresource::Attach => own("PodAttachOptions", &["create", "get"]),
        Subresource::PortForward => own("PodPortForwardOptions", &["create", "get"]),
    }
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(rows: &[&'static ResourceInfo], group: &str) -> Value {
    let versions: Vec<Value> = group_versions_of(rows)
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

/// `/apis` of the built-in resources.
pub fn group_list() -> Value {
    group_list_in(&[])
}

/// `/apis` of the built-in resources and `custom`.
pub fn group_list_in(custom: &[&'static ResourceInfo]) -> Value {
    let rows = all_with(custom);
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in group_versions_of(&rows) {
        if !g.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut groups: Vec<Value> = groups.into_iter().map(|g| api_group(&rows, g)).collect();
    groups.push(super::metrics_api::api_group());
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>` among the built-in resources and `custom` (None if the group is not served).
pub fn group_in(custom: &[&'static ResourceInfo], group: &str) -> Option<Value> {
    let rows = all_with(custom);
    if group.is_empty() || !rows.iter().any(|r| r.group == group) {
        return None;
    }
    let mut g = api_group(&rows, group);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `/api/v1` or `/apis/<group>/<version>` of the built-in resources (None if not served).
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    resource_list_in(&[], group, version)
}

/// `/api/v1` or `/apis/<group>/<version>` among the built-in resources and `custom` (None if not served).
pub fn resource_list_in(custom: &[&'static ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let rows: Vec<_> = all_with(custom).into_iter().filter(|r| r.group == group && r.version == version).collect();
    if rows.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in rows {
        let mut main = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind_name,
            "verbs": resource_verbs(r),
        });
        if !r.short_names.is_empty() {
            main["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            main["categories"] = json!(r.categories);
        }
        resources.push(main);
        for sub in r.subresources {
            let doc = subresource_doc(r, *sub);
            let mut entry = json!({"name": format!("{}/{}", r.plural, sub.path()), "singularName": "",
                "namespaced": r.namespaced, "kind": doc.kind, "verbs": doc.verbs});
            if let Some((g, v)) = doc.group_version {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            resources.push(entry);
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_subresources_and_short_names() {
        let list = resource_list("", "v1").expect("core");
        let names: Vec<&str> =
            list["resources"].as_array().into_iter().flatten().filter_map(|r| r["name"].as_str()).collect();
        for want in [
            "pods",
            "pods/status",
            "pods/log",
            "pods/binding",
            "pods/exec",
            "pods/attach",
            "pods/portforward",
            "services",
            "nodes/status",
            "namespaces",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let pods = &list["resources"][names.iter().position(|n| *n == "pods").unwrap_or(0)];
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
    }

    #[test]
    fn apps_group_serves_scale_and_groups_are_listed() {
        let apps = resource_list("apps", "v1").expect("apps");
        let scale = apps["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"] == "deployments/scale")
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["group"], "autoscaling");
        let groups = group_list();
        let names: Vec<&str> =
            groups["groups"].as_array().into_iter().flatten().filter_map(|g| g["name"].as_str()).collect();
        assert_eq!(
            names,
            vec![
                "discovery.k8s.io",
                "apps",
                "batch",
                "policy",
                "events.k8s.io",
                "coordination.k8s.io",
                "scheduling.k8s.io",
                "rbac.authorization.k8s.io",
                "authorization.k8s.io",
                "authentication.k8s.io",
                "apiextensions.k8s.io",
                "certificates.k8s.io",
                "metrics.k8s.io"
            ]
        );
        assert!(resource_list("policy", "v1beta1").is_none());
        assert!(resource_list("policy", "v1").is_some());
        assert!(resource_list("batch", "v1").is_some());
        assert!(group_in(&[], "apps").is_some());
    }
}
