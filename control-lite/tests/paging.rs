//! Lists in pages (`limit`/`continue`) and at an exact `resourceVersion`,
//! through HTTP, kube-rs and the real kubectl: every page of one list comes
//! from the first page's revision; an expired token is a 410 that carries a
//! token to go on with.

mod support;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{json, Value};

const NS: &str = "paging";
const BASE: &str = "/api/v1/namespaces/paging/configmaps";
/// Published in every namespace by the apiserver; sorts after the `cm-*`.
const ROOT_CA: &str = "kube-root-ca.crt";

fn names(list: &Value) -> Vec<String> {
    list["items"].as_array().map_or_else(Vec::new, |items| {
        items.iter().filter_map(|i| i["metadata"]["name"].as_str().map(str::to_owned)).collect()
    })
}

fn cm_names(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("cm-{i:02}")).collect()
}

struct Http {
    http: reqwest::Client,
    api: support::Apiserver,
}

impl Http {
    /// GET `path`; returns the status code and the JSON body.
    async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let resp = self.http.get(self.api.url(path)).send().await?;
        let code = resp.status().as_u16();
        Ok((code, resp.json().await.context("JSON body")?))
    }

    async fn page(&self, query: &str) -> Result<Value> {
        let (code, body) = self.get(&format!("{BASE}?{query}")).await?;
        ensure!(code == 200, "{query}: {code} {body}");
        Ok(body)
    }
}

fn encode(token: &str) -> String {
    token.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_one_snapshot_through_http_kube_rs_and_kubectl() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = support::start_apiserver(dir.path()).await?;
    let client = api.kube_client().await?;
    let store = api.store.clone();
    let h = Http { http: api.http()?, api };
    support::kubectl_ok(dir.path(), &["create", "namespace", NS]).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    for i in 0..25 {
        let half = if i % 2 == 0 { "yes" } else { "no" };
        let cm = serde_json::from_value(json!({
            "metadata": {"name": format!("cm-{i:02}"), "labels": {"half": half}},
            "data": {"v": "old"}
        }))?;
        cms.create(&PostParams::default(), &cm).await?;
    }

    // Page 1, then writes, then pages 2 and 3 from the same revision.
    let first = h.page("limit=10").await?;
    assert_eq!(names(&first), cm_names(0, 10));
    assert_eq!(first["metadata"]["remainingItemCount"], 16, "15 more and {ROOT_CA}");
    let rv = first["metadata"]["resourceVersion"].as_str().context("rv")?.to_owned();
    let token = first["metadata"]["continue"].as_str().context("continue")?.to_owned();
    support::kubectl_ok(dir.path(), &["-n", NS, "delete", "configmap", "cm-15"]).await?;
    support::kubectl_ok(dir.path(), &["-n", NS, "create", "configmap", "cm-99"]).await?;
    support::kubectl_ok(dir.path(), &["-n", NS, "patch", "configmap", "cm-12", "-p", r#"{"data":{"v":"new"}}"#])
        .await?;

    let second = h.page(&format!("limit=10&continue={}", encode(&token))).await?;
    assert_eq!(names(&second), cm_names(10, 20), "cm-15 is still there at the first page's revision");
    assert_eq!(second["metadata"]["resourceVersion"], rv.as_str());
    assert_eq!(second["items"][2]["data"]["v"], "old", "cm-12 as it was");
    assert_eq!(second["metadata"]["remainingItemCount"], 6);
    let token = second["metadata"]["continue"].as_str().context("continue")?.to_owned();
    let third = h.page(&format!("limit=10&continue={}", encode(&token))).await?;
    let mut want = cm_names(20, 25);
    want.push(ROOT_CA.into());
    assert_eq!(names(&third), want, "cm-99 was created after the first page");
    assert!(third["metadata"].get("continue").is_none() && third["metadata"].get("remainingItemCount").is_none());

    // The same list at exactly that revision, in one piece.
    let exact = h.page(&format!("resourceVersion={rv}&resourceVersionMatch=Exact")).await?;
    let mut want = cm_names(0, 25);
    want.push(ROOT_CA.into());
    assert_eq!(names(&exact), want);

    // With a selector, pages of 4 matches each, from one revision.
    let mut even = Vec::new();
    let mut query = "limit=4&labelSelector=half%3Dyes".to_string();
    let mut revisions = std::collections::BTreeSet::new();
    loop {
        let page = h.page(&query).await?;
        let got = names(&page);
        revisions.insert(page["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_owned());
        assert!(page["metadata"].get("remainingItemCount").is_none(), "unknown with a selector");
        match page["metadata"]["continue"].as_str() {
            Some(t) => {
                assert_eq!(got.len(), 4);
                query = format!("limit=4&labelSelector=half%3Dyes&continue={}", encode(t));
            }
            None => {
                even.extend(got);
                break;
            }
        }
        even.extend(got);
    }
    let want: Vec<String> = (0..25).step_by(2).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(even, want);
    assert_eq!(revisions.len(), 1, "every page at one revision: {revisions:?}");

    // kube-rs follows continue tokens; kubectl pages with --chunk-size.
    let mut all = Vec::new();
    let mut params = ListParams::default().limit(7);
    loop {
        let page = cms.list(&params).await?;
        all.extend(page.items.into_iter().filter_map(|cm| cm.metadata.name));
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => params = params.continue_token(&t),
            _ => break,
        }
    }
    let mut now = cm_names(0, 25);
    now.retain(|n| n != "cm-15");
    now.extend(["cm-99".to_string(), ROOT_CA.to_string()]);
    assert_eq!(all, now);
    let out = support::kubectl_ok(dir.path(), &["-n", NS, "get", "configmaps", "--chunk-size=3", "-o", "name"]).await?;
    let listed: Vec<&str> = out.lines().map(|l| l.trim_start_matches("configmap/")).collect();
    assert_eq!(listed, now);
    let table =
        support::kubectl_ok(dir.path(), &["-n", NS, "get", "configmaps", "--chunk-size=4", "--no-headers"]).await?;
    assert_eq!(table.lines().count(), now.len(), "{table}");

    // Once the revision is compacted, the token is expired (410) and the
    // error carries a token that continues at the current revision.
    let first = h.page("limit=10").await?;
    let token = first["metadata"]["continue"].as_str().context("continue")?.to_owned();
    support::kubectl_ok(dir.path(), &["-n", NS, "create", "configmap", "cm-77"]).await?;
    store.compact(store.current_revision()).await?;
    let (code, status) = h.get(&format!("{BASE}?limit=10&continue={}", encode(&token))).await?;
    assert_eq!((code, status["reason"].as_str()), (410, Some("Expired")), "{status}");
    let fresh = status["metadata"]["continue"].as_str().context("token in the 410")?;
    let rest = h.page(&format!("limit=100&continue={}", encode(fresh))).await?;
    let mut want = cm_names(10, 25);
    want.retain(|n| n != "cm-15");
    want.extend(["cm-77".to_string(), "cm-99".to_string(), ROOT_CA.to_string()]);
    assert_eq!(names(&rest), want, "the rest, as it is now");

    // Contradictions and strangers.
    let future = store.current_revision() + 1_000;
    for (query, code, reason) in [
        (format!("resourceVersion={future}"), 504, "Timeout"),
        (format!("resourceVersion={future}&resourceVersionMatch=Exact"), 504, "Timeout"),
        ("resourceVersion=1&resourceVersionMatch=Exact".to_string(), 410, "Expired"),
        ("resourceVersionMatch=Exact".to_string(), 422, "Invalid"),
        ("resourceVersion=3&resourceVersionMatch=Newest".to_string(), 422, "Invalid"),
        ("continue=bm90IGEgdG9rZW4%3D".to_string(), 400, "BadRequest"),
        (format!("resourceVersion=5&continue={}", encode(fresh)), 400, "BadRequest"),
    ] {
        let (got, status) = h.get(&format!("{BASE}?{query}")).await?;
        assert_eq!((got, status["reason"].as_str()), (code, Some(reason)), "{query}: {status}");
    }
    Ok(())
}
