//! Aggregated discovery: `/api` and `/apis` as one `APIGroupDiscoveryList`
//! each (`apidiscovery.k8s.io/v2` or `v2beta1`), so a client learns every
//! group, version and resource in two requests instead of one per group
//! version. Built from the same resource table as the legacy documents
//! ([`super::resource_list`]); pure.
//!
//! Shape (upstream's `k8s.io/api/apidiscovery/v2` types): a list of groups
//! (`metadata.name`, empty for core), each with its versions (preferred
//! first, `freshness: Current`), each with its resources (`resource`,
//! `responseKind`, `scope`, `singularResource`, `verbs`, optional
//! `shortNames`, `categories`, `subresources`).

use serde_json::{json, Value};

use super::negotiate::{DiscoveryVersion, LIST_KIND};
use super::{resource_verbs, subresource_doc};
use crate::apiserver::metrics_api;
use crate::apiserver::registry::{all_with, ResourceInfo};

/// Which root document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// `/api`: the core group.
    Core,
    /// `/apis`: every named group.
    Groups,
}

/// The served document of `root` (the resource table and the `custom`
/// rows, plus `metrics.k8s.io` under `/apis`).
pub fn document(custom: &[&'static ResourceInfo], root: Root, version: DiscoveryVersion) -> Value {
    let mut doc = aggregated(&all_with(custom), root, version);
    if root == Root::Groups {
        if let Some(items) = doc["items"].as_array_mut() {
            items.push(metrics_api::aggregated_group());
        }
    }
    doc
}

/// The `APIGroupDiscoveryList` of `resources` for `root`: groups and their
/// versions in table order (the first version of a group is preferred).
pub fn aggregated(resources: &[&ResourceInfo], root: Root, version: DiscoveryVersion) -> Value {
    let mut groups: Vec<&str> = Vec::new();
    for r in resources {
        let wanted = (root == Root::Core) == r.group.is_empty();
        if wanted && !groups.contains(&r.group) {
            groups.push(r.group);
        }
    }
    let items: Vec<Value> = groups.into_iter().map(|g| group(resources, g)).collect();
    json!({"kind": LIST_KIND, "apiVersion": version.api_version(), "metadata": {}, "items": items})
}

fn group(resources: &[&ResourceInfo], name: &str) -> Value {
    let mut versions: Vec<&str> = Vec::new();
    for r in resources.iter().filter(|r| r.group == name) {
        if !versions.contains(&r.version) {
            versions.push(r.version);
        }
    }
    let versions: Vec<Value> = versions
        .into_iter()
        .map(|v| {
            let rows: Vec<Value> =
                resources.iter().filter(|r| r.group == name && r.version == v).map(|r| resource(r)).collect();
            json!({"version": v, "resources": rows, "freshness": "Current"})
        })
        .collect();
    let metadata = if name.is_empty() { json!({}) } else { json!({"name": name}) };
    json!({"metadata": metadata, "versions": versions})
}

/// `{group, version, kind}`.
pub fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

/// `Namespaced` or `Cluster`.
pub fn scope(namespaced: bool) -> &'static str {
    if namespaced {
        "Namespaced"
    } else {
        "Cluster"
    }
}

fn resource(r: &ResourceInfo) -> Value {
    let mut out = json!({
        "resource": r.plural,
        "responseKind": gvk(r.group, r.version, r.kind_name),
        "scope": scope(r.namespaced),
        "singularResource": r.singular,
        "verbs": resource_verbs(r),
    });
    if !r.short_names.is_empty() {
        out["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        out["categories"] = json!(r.categories);
    }
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|sub| {
            let doc = subresource_doc(r, *sub);
            let (g, v) = doc.group_version.unwrap_or((r.group, r.version));
            json!({"subresource": sub.path(), "responseKind": gvk(g, v, doc.kind), "verbs": doc.verbs})
        })
        .collect();
    if !subresources.is_empty() {
        out["subresources"] = json!(subresources);
    }
    out
}

/// A strong `ETag` of a rendered document: FNV-1a (64 bit) of its bytes, in
/// hex and quoted. Equal documents get equal tags across restarts.
pub fn etag(body: &[u8]) -> String {
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    format!("\"{hash:016x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::discovery::resource_list;
    use crate::apiserver::registry::group_versions;

    fn find<'a>(list: &'a Value, field: &str, name: &str) -> &'a Value {
        list.as_array().into_iter().flatten().find(|v| v[field] == name).unwrap_or(&Value::Null)
    }

    fn resources_of<'a>(doc: &'a Value, group: &str, version: &str) -> &'a Value {
        let item = doc["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["metadata"]["name"].as_str().unwrap_or_default() == group)
            .unwrap_or(&Value::Null);
        &find(&item["versions"], "version", version)["resources"]
    }

    #[test]
    fn core_document_holds_the_core_group_only() {
        let doc = aggregated(&all_with(&[]), Root::Core, DiscoveryVersion::V2);
        assert_eq!(doc["kind"], "APIGroupDiscoveryList");
        assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2");
        assert_eq!(doc["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(doc["items"][0]["metadata"], json!({}));
        assert_eq!(doc["items"][0]["versions"][0]["version"], "v1");
        assert_eq!(doc["items"][0]["versions"][0]["freshness"], "Current");
        let pods = find(resources_of(&doc, "", "v1"), "resource", "pods");
        assert_eq!(pods["responseKind"], gvk("", "v1", "Pod"));
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["singularResource"], "pod");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        let subs: Vec<&str> =
            pods["subresources"].as_array().into_iter().flatten().filter_map(|s| s["subresource"].as_str()).collect();
        assert_eq!(subs, ["status", "log", "binding", "exec", "attach", "portforward", "resize", "eviction"]);
        let eviction = find(&pods["subresources"], "subresource", "eviction");
        assert_eq!(eviction["responseKind"], gvk("policy", "v1", "Eviction"));
        assert_eq!(eviction["verbs"], json!(["create"]));
        assert_eq!(find(&pods["subresources"], "subresource", "exec")["responseKind"]["kind"], "PodExecOptions");
        let nodes = find(resources_of(&doc, "", "v1"), "resource", "nodes");
        assert_eq!(nodes["scope"], "Cluster");
        let endpoints = find(resources_of(&doc, "", "v1"), "resource", "endpoints");
        assert!(endpoints.get("subresources").is_none() && endpoints.get("categories").is_none());
        let token = find(
            &find(resources_of(&doc, "", "v1"), "resource", "serviceaccounts")["subresources"],
            "subresource",
            "token",
        );
        assert_eq!(token["responseKind"], gvk("authentication.k8s.io", "v1", "TokenRequest"));
    }

    #[test]
    fn groups_document_has_apps_with_scale_and_status() {
        let doc = aggregated(&all_with(&[]), Root::Groups, DiscoveryVersion::V2Beta1);
        assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        let names: Vec<&str> =
            doc["items"].as_array().into_iter().flatten().filter_map(|g| g["metadata"]["name"].as_str()).collect();
        assert!(!names.contains(&""), "core is under /api only");
        let deployments = find(resources_of(&doc, "apps", "v1"), "resource", "deployments");
        assert_eq!(deployments["responseKind"], gvk("apps", "v1", "Deployment"));
        assert_eq!(deployments["shortNames"], json!(["deploy"]));
        let scale = find(&deployments["subresources"], "subresource", "scale");
        assert_eq!(scale["responseKind"], gvk("autoscaling", "v1", "Scale"));
        assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));
        let status = find(&deployments["subresources"], "subresource", "status");
        assert_eq!(status["responseKind"], gvk("apps", "v1", "Deployment"));
        let review = find(resources_of(&doc, "authorization.k8s.io", "v1"), "resource", "selfsubjectaccessreviews");
        assert_eq!(review["verbs"], json!(["create"]));
        assert_eq!(review["scope"], "Cluster");
        let served = document(&[], Root::Groups, DiscoveryVersion::V2);
        let metrics = find(resources_of(&served, metrics_api::GROUP, metrics_api::VERSION), "resource", "pods");
        assert_eq!(metrics["responseKind"]["kind"], "PodMetrics");
    }

    #[test]
    fn aggregated_and_legacy_documents_list_the_same_resources() {
        // Every legacy `APIResourceList` entry (including `x/sub`) has its
        // aggregated counterpart with the same kind, verbs and scope.
        for (g, v) in group_versions() {
            let root = if g.is_empty() { Root::Core } else { Root::Groups };
            let doc = aggregated(&all_with(&[]), root, DiscoveryVersion::V2);
            let agg = resources_of(&doc, g, v);
            let legacy = resource_list(g, v).unwrap_or(Value::Null);
            for entry in legacy["resources"].as_array().into_iter().flatten() {
                let name = entry["name"].as_str().unwrap_or_default();
                let (found, kind) = match name.split_once('/') {
                    Some((plural, sub)) => {
                        let s = find(&find(agg, "resource", plural)["subresources"], "subresource", sub);
                        (s, &s["responseKind"]["kind"])
                    }
                    None => {
                        let r = find(agg, "resource", name);
                        assert_eq!(r["scope"] == "Namespaced", entry["namespaced"] == true, "{name}");
                        (r, &r["responseKind"]["kind"])
                    }
                };
                assert_eq!(kind, &entry["kind"], "{g}/{v} {name}");
                assert_eq!(found["verbs"], entry["verbs"], "{g}/{v} {name}");
            }
        }
    }

    #[test]
    fn etag_follows_content() {
        let a = document(&[], Root::Groups, DiscoveryVersion::V2).to_string();
        assert_eq!(etag(a.as_bytes()), etag(a.as_bytes()));
        assert_ne!(etag(a.as_bytes()), etag(document(&[], Root::Core, DiscoveryVersion::V2).to_string().as_bytes()));
        assert_eq!(etag(b""), "\"cbf29ce484222325\"");
    }
}
