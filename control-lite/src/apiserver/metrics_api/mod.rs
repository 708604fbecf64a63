//! `metrics.k8s.io/v1beta1` (NodeMetrics, PodMetrics) served by the
//! apiserver itself, so `kubectl top` works with nothing installed (upstream
//! needs metrics-server). Each request reads the Summary API of the nodes
//! involved through the kubelet API and converts it (`convert`, pure); the
//! apiserver keeps no metrics. A node that does not answer is left out, as
//! metrics-server leaves out nodes it cannot scrape.
//!
//! Paths: `/apis/metrics.k8s.io[/v1beta1]` (discovery),
//! `.../v1beta1/nodes[/<name>]`, `.../v1beta1/pods`,
//! `.../v1beta1/namespaces/<ns>/pods[/<name>]`; GET only.

pub mod convert;
mod fetch;

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::crud;
use super::kubelet_client::KubeletClient;
use super::options::{ListOptions, Query};
use super::pod_kubelet::kubelet_address;
use super::registry::{by_kind, Kind};
use super::response::json_response;
use super::status::{ApiError, Result};
use super::ApiState;

/// The API group.
pub const GROUP: &str = "metrics.k8s.io";
/// Its one version.
pub const VERSION: &str = "v1beta1";

/// What a metrics path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsPath {
    /// `/apis/metrics.k8s.io`.
    Group,
    /// `/apis/metrics.k8s.io/v1beta1`.
    Resources,
    /// NodeMetrics, all or one.
    Nodes(Option<String>),
    /// PodMetrics, in all namespaces or one, all or one.
    Pods {
        /// Namespace, `None` for all.
        namespace: Option<String>,
        /// Name, `None` for all.
        name: Option<String>,
    },
}

/// Parses a path under `/apis/metrics.k8s.io` (pure); `None` for any other path.
pub fn parse(path: &str) -> Option<MetricsPath> {
    let rest = path.trim_end_matches('/').strip_prefix("/apis/metrics.k8s.io")?;
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let owned = |s: &str| Some(s.to_string());
    Some(match segs.as_slice() {
        [] if rest.is_empty() || rest == "/" => MetricsPath::Group,
        [VERSION] => MetricsPath::Resources,
        [VERSION, "nodes"] => MetricsPath::Nodes(None),
        [VERSION, "nodes", name] => MetricsPath::Nodes(owned(name)),
        [VERSION, "pods"] => MetricsPath::Pods { namespace: None, name: None },
        [VERSION, "namespaces", ns, "pods"] => MetricsPath::Pods { namespace: owned(ns), name: None },
        [VERSION, "namespaces", ns, "pods", name] => MetricsPath::Pods { namespace: owned(ns), name: owned(name) },
        _ => return None,
    })
}

/// The group's entry in `/apis` and its `/apis/metrics.k8s.io` document.
pub fn api_group() -> Value {
    let version = json!({"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION});
    json!({"name": GROUP, "versions": [version.clone()], "preferredVersion": version})
}

/// The served resources: (plural, kind, namespaced); both discovery forms read it.
const RESOURCES: &[(&str, &str, bool)] = &[("nodes", "NodeMetrics", false), ("pods", "PodMetrics", true)];
const VERBS: &[&str] = &["get", "list"];

/// `/apis/metrics.k8s.io/v1beta1`.
pub fn resource_list() -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(plural, kind, namespaced)| {
            json!({"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": VERBS})
        })
        .collect();
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": resources,
    })
}

/// The group's item in the aggregated `/apis` document
/// ([`crate::apiserver::discovery::aggregated`]).
pub fn aggregated_group() -> Value {
    use crate::apiserver::discovery::aggregated::{gvk, scope};
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(plural, kind, namespaced)| {
            json!({"resource": plural, "responseKind": gvk(GROUP, VERSION, kind), "scope": scope(*namespaced),
                "singularResource": "", "verbs": VERBS})
        })
        .collect();
    json!({"metadata": {"name": GROUP},
        "versions": [{"version": VERSION, "resources": resources, "freshness": "Current"}]})
}

fn not_found(kind: &str, resource: &str, name: &str) -> ApiError {
    ApiError::NotFound { resource: resource.into(), group: GROUP.into(), kind: kind.into(), name: name.into() }
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": format!("{GROUP}/{VERSION}"), "metadata": {}, "items": items})
}

/// Serves one metrics request.
pub async fn serve(state: &ApiState, method: &Method, path: MetricsPath, query: &Query) -> Result<Response> {
    if method != Method::GET {
        return Err(ApiError::MethodNotAllowed(format!("{method} is not supported on {GROUP}")));
    }
    let doc = match path {
        MetricsPath::Group => {
            let mut group = api_group();
            group["kind"] = json!("APIGroup");
            group["apiVersion"] = json!("v1");
            group
        }
        MetricsPath::Resources => resource_list(),
        MetricsPath::Nodes(name) => nodes(state, name, query).await?,
        MetricsPath::Pods { namespace, name } => pods(state, namespace, name, query).await?,
    };
    Ok(json_response(StatusCode::OK, &doc, &[]))
}

/// The Summaries of the named nodes that answered, by node name.
async fn summaries(kubelet: &KubeletClient, nodes: &[Value]) -> BTreeMap<String, Value> {
    let fetches = nodes.iter().filter_map(|node| {
        let name = node.pointer("/metadata/name")?.as_str()?.to_string();
        let addr = kubelet_address(node)?;
        Some(async move {
            match fetch::summary(kubelet, &addr).await {
                Ok(summary) => Some((name, summary)),
                Err(error) => {
                    tracing::debug!(%error, node = %name, "metrics: no summary");
                    None
                }
            }
        })
    });
    futures::future::join_all(fetches).await.into_iter().flatten().collect()
}

async fn nodes(state: &ApiState, name: Option<String>, query: &Query) -> Result<Value> {
    let info = by_kind(Kind::Node);
    let nodes = match &name {
        Some(name) => vec![crud::get(state, info, None, name).await?.0],
        None => crud::list(state, info, None, &ListOptions::parse(query)?.selectors).await?.0,
    };
    let summaries = summaries(&state.kubelet, &nodes).await;
    let items: Vec<Value> = nodes
        .iter()
        .filter_map(|node| {
            let name = node.pointer("/metadata/name")?.as_str()?;
            convert::node_metrics(node, summaries.get(name)?)
        })
        .collect();
    match name {
        Some(name) => items.into_iter().next().ok_or_else(|| not_found("NodeMetrics", "nodes", &name)),
        None => Ok(list("NodeMetricsList", items)),
    }
}

async fn pods(state: &ApiState, namespace: Option<String>, name: Option<String>, query: &Query) -> Result<Value> {
    let info = by_kind(Kind::Pod);
    let ns = namespace.as_deref();
    let pods = match &name {
        Some(name) => vec![crud::get(state, info, ns, name).await?.0],
        None => crud::list(state, info, ns, &ListOptions::parse(query)?.selectors).await?.0,
    };
    let node_of = |pod: &Value| pod.pointer("/spec/nodeName").and_then(Value::as_str).map(str::to_string);
    let mut wanted: Vec<String> = pods.iter().filter_map(node_of).collect();
    wanted.sort();
    wanted.dedup();
    let mut nodes = Vec::with_capacity(wanted.len());
    for node in &wanted {
        match crud::get(state, by_kind(Kind::Node), None, node).await {
            Ok((node, _)) => nodes.push(node),
            Err(ApiError::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    let summaries = summaries(&state.kubelet, &nodes).await;
    let items: Vec<Value> =
        pods.iter().filter_map(|pod| convert::pod_metrics(pod, summaries.get(&node_of(pod)?)?)).collect();
    match name {
        Some(name) => items.into_iter().next().ok_or_else(|| not_found("PodMetrics", "pods", &name)),
        None => Ok(list("PodMetricsList", items)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        let s = |x: &str| Some(x.to_string());
        let cases = [
            ("/apis/metrics.k8s.io", Some(MetricsPath::Group)),
            ("/apis/metrics.k8s.io/", Some(MetricsPath::Group)),
            ("/apis/metrics.k8s.io/v1beta1", Some(MetricsPath::Resources)),
            ("/apis/metrics.k8s.io/v1beta1/nodes", Some(MetricsPath::Nodes(None))),
            ("/apis/metrics.k8s.io/v1beta1/nodes/n1", Some(MetricsPath::Nodes(s("n1")))),
            ("/apis/metrics.k8s.io/v1beta1/pods", Some(MetricsPath::Pods { namespace: None, name: None })),
            (
                "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
                Some(MetricsPath::Pods { namespace: s("default"), name: None }),
            ),
            (
                "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web",
                Some(MetricsPath::Pods { namespace: s("default"), name: s("web") }),
            ),
            ("/apis/metrics.k8s.io/v1/nodes", None),
            ("/apis/metrics.k8s.io/v1beta1/widgets", None),
            ("/apis/metrics.k8s.io.evil/v1beta1", None),
            ("/apis/apps/v1", None),
        ];
        for (path, want) in cases {
            assert_eq!(parse(path), want, "{path}");
        }
    }

    #[test]
    fn discovery_names_both_kinds() {
        let list = resource_list();
        let kinds: Vec<&str> =
            list["resources"].as_array().unwrap().iter().filter_map(|r| r["kind"].as_str()).collect();
        assert_eq!(kinds, ["NodeMetrics", "PodMetrics"]);
        assert_eq!(api_group()["preferredVersion"]["groupVersion"], "metrics.k8s.io/v1beta1");
    }
}
