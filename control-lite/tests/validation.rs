//! Admission validation through the real HTTP apiserver (in-process on
//! 127.0.0.1:0) and real kubectl: invalid objects are rejected with a 422
//! `Status` naming the field and are never stored; Service addresses stay
//! inside the service CIDR on every write path.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::{json, Value};

mod support;

const CIDR_BASE: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 0);
const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";

struct Api {
    _dir: tempfile::TempDir,
    server: support::Apiserver,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Result<Api> {
        let dir = tempfile::tempdir()?;
        let server = support::start_apiserver(dir.path()).await?;
        let http = server.http()?;
        Ok(Api { _dir: dir, server, http })
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(StatusCode, Value)> {
        let resp = req.send().await?;
        let code = resp.status();
        let body: Value = resp.json().await.context("JSON body")?;
        Ok((code, body))
    }

    async fn post(&self, path: &str, body: &Value) -> Result<(StatusCode, Value)> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    async fn put(&self, path: &str, body: &Value) -> Result<(StatusCode, Value)> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    async fn patch(&self, path: &str, content_type: &str, body: &Value) -> Result<(StatusCode, Value)> {
        let req = self.http.patch(self.url(path)).header("content-type", content_type).body(body.to_string());
        self.send(req).await
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, Value)> {
        self.send(self.http.get(self.url(path))).await
    }

    async fn stop(self) {
        self.server.token.cancel();
        let _ = self.server.server.await;
        self.server.store.close().await;
    }
}

/// The `details.causes[].field` of a 422, or a failure naming what came back.
fn invalid_fields(code: StatusCode, body: &Value) -> Vec<String> {
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["reason"], "Invalid", "{body}");
    let causes = body.pointer("/details/causes").and_then(Value::as_array).cloned().unwrap_or_default();
    causes.iter().map(|c| c["field"].as_str().unwrap_or_default().to_string()).collect()
}

fn in_cidr(ip: &str) -> bool {
    let base = u32::from(CIDR_BASE);
    ip.parse::<Ipv4Addr>().is_ok_and(|a| u32::from(a) >> 16 == base >> 16)
}

fn pod(name: &str, cpu: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox:1", "resources": {"requests": {"cpu": cpu}}}]}})
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

const PODS: &str = "/api/v1/namespaces/default/pods";
const SERVICES: &str = "/api/v1/namespaces/default/services";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_quantities_are_rejected_with_the_field_and_never_stored() -> Result<()> {
    let api = Api::start().await?;
    for (name, cpu) in
        [("abc", "abc"), ("huge-exp", "0e2147483644"), ("negative", "-1"), ("too-big", "9223372036854775807")]
    {
        let (code, body) = api.post(PODS, &pod(name, cpu)).await?;
        assert_eq!(invalid_fields(code, &body), vec!["spec.containers[0].resources.requests[cpu]"], "{cpu}");
        let (code, _) = api.get(&format!("{PODS}/{name}")).await?;
        assert_eq!(code, StatusCode::NOT_FOUND, "{cpu} must not be stored");
    }
    // limits below requests, and a limit-only pod gets its requests from the limits.
    let mut low = pod("low", "2");
    low["spec"]["containers"][0]["resources"]["limits"] = json!({"cpu": "1"});
    let (code, body) = api.post(PODS, &low).await?;
    assert_eq!(invalid_fields(code, &body), vec!["spec.containers[0].resources.requests[cpu]"]);
    let limited = json!({"metadata": {"name": "limited"}, "spec": {"containers": [{"name": "c", "image": "i",
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]}});
    let (code, body) = api.post(PODS, &limited).await?;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["spec"]["containers"][0]["resources"]["requests"], json!({"cpu": "500m", "memory": "64Mi"}));
    // A valid quantity patched to an invalid one is rejected, and the stored pod is unchanged.
    let (code, body) = api.post(PODS, &pod("ok", "100m")).await?;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, body) = api
        .patch(
            &format!("{PODS}/ok"),
            JSON_PATCH,
            &json!([{"op": "replace", "path": "/spec/containers/0/resources/requests/cpu", "value": "1e999"}]),
        )
        .await?;
    assert!(!invalid_fields(code, &body).is_empty());
    let (_, stored) = api.get(&format!("{PODS}/ok")).await?;
    assert_eq!(stored["spec"]["containers"][0]["resources"]["requests"]["cpu"], "100m");
    api.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_name_services_have_no_cluster_ip_and_get_a_fresh_one_when_changed() -> Result<()> {
    let api = Api::start().await?;
    // The live report: ExternalName with clusterIP 1.1.1.1.
    let hijack =
        service("hijack", json!({"type": "ExternalName", "externalName": "example.com", "clusterIP": "1.1.1.1"}));
    let (code, body) = api.post(SERVICES, &hijack).await?;
    assert_eq!(invalid_fields(code, &body), vec!["spec.clusterIP"]);
    let ext = service("ext", json!({"type": "ExternalName", "externalName": "example.com"}));
    let (code, body) = api.post(SERVICES, &ext).await?;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["spec"].get("clusterIP"), None, "{body}");
    // Changing away from ExternalName allocates inside the CIDR; 1.1.1.1 is refused on every patch type.
    let to_bad = [
        (MERGE, json!({"spec": {"type": "ClusterIP", "clusterIP": "1.1.1.1", "ports": [{"port": 80}]}})),
        (STRATEGIC, json!({"spec": {"type": "ClusterIP", "clusterIP": "1.1.1.1", "ports": [{"port": 80}]}})),
        (
            JSON_PATCH,
            json!([{"op": "replace", "path": "/spec/type", "value": "ClusterIP"},
                {"op": "add", "path": "/spec/clusterIP", "value": "1.1.1.1"},
                {"op": "add", "path": "/spec/ports", "value": [{"port": 80}]}]),
        ),
    ];
    for (ct, patch) in &to_bad {
        let (code, body) = api.patch(&format!("{SERVICES}/ext"), ct, patch).await?;
        assert_eq!(invalid_fields(code, &body), vec!["spec.clusterIPs"], "{ct}");
    }
    let mut put = ext.clone();
    put["spec"] = json!({"type": "ClusterIP", "clusterIP": "1.1.1.1", "ports": [{"port": 80}]});
    let (code, body) = api.put(&format!("{SERVICES}/ext"), &put).await?;
    assert_eq!(invalid_fields(code, &body), vec!["spec.clusterIPs"], "PUT");
    let (_, stored) = api.get(&format!("{SERVICES}/ext")).await?;
    assert_eq!(stored["spec"]["type"], "ExternalName");
    assert_eq!(stored["spec"].get("clusterIP"), None);

    let (code, body) = api
        .patch(&format!("{SERVICES}/ext"), MERGE, &json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}))
        .await?;
    assert_eq!(code, StatusCode::OK, "{body}");
    let ip = body["spec"]["clusterIP"].as_str().unwrap_or_default().to_string();
    assert!(in_cidr(&ip), "fresh address {ip:?} inside 10.96.0.0/16");
    assert_eq!(body["spec"]["clusterIPs"], json!([ip]));
    // Back to ExternalName: the address is released and dropped.
    let (code, body) = api
        .patch(
            &format!("{SERVICES}/ext"),
            STRATEGIC,
            &json!({"spec": {"type": "ExternalName", "externalName": "example.org"}}),
        )
        .await?;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["spec"].get("clusterIP"), None, "{body}");
    // The released address can be asked for explicitly by a new Service.
    let reuse = service("reuse", json!({"clusterIP": ip, "ports": [{"port": 80}]}));
    let (code, body) = api.post(SERVICES, &reuse).await?;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    api.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ips_stay_in_the_cidr_and_are_immutable_on_every_path() -> Result<()> {
    let api = Api::start().await?;
    let (code, body) =
        api.post(SERVICES, &service("out", json!({"clusterIP": "1.1.1.1", "ports": [{"port": 80}]}))).await?;
    assert_eq!(invalid_fields(code, &body), vec!["spec.clusterIPs"]);
    let (code, body) = api.post(SERVICES, &service("web", json!({"ports": [{"port": 80}]}))).await?;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let ip = body["spec"]["clusterIP"].as_str().unwrap_or_default().to_string();
    assert!(in_cidr(&ip));
    let changes = [
        (MERGE, json!({"spec": {"clusterIP": "1.1.1.1", "clusterIPs": ["1.1.1.1"]}})),
        (STRATEGIC, json!({"spec": {"clusterIP": "10.96.7.7", "clusterIPs": ["10.96.7.7"]}})),
        (
            JSON_PATCH,
            json!([{"op": "replace", "path": "/spec/clusterIP", "value": "1.1.1.1"},
                {"op": "replace", "path": "/spec/clusterIPs", "value": ["1.1.1.1"]}]),
        ),
    ];
    for (ct, patch) in &changes {
        let (code, body) = api.patch(&format!("{SERVICES}/web"), ct, patch).await?;
        assert_eq!(invalid_fields(code, &body), vec!["spec.clusterIP"], "{ct}");
    }
    let (_, mut current) = api.get(&format!("{SERVICES}/web")).await?;
    current["spec"]["clusterIP"] = json!("1.1.1.1");
    current["spec"]["clusterIPs"] = json!(["1.1.1.1"]);
    let (code, body) = api.put(&format!("{SERVICES}/web"), &current).await?;
    assert_eq!(invalid_fields(code, &body), vec!["spec.clusterIP"], "PUT");
    // A PUT that leaves the address out keeps it (as upstream); a type change to NodePort keeps it too.
    let (_, mut current) = api.get(&format!("{SERVICES}/web")).await?;
    if let Some(spec) = current["spec"].as_object_mut() {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    let (code, body) = api.put(&format!("{SERVICES}/web"), &current).await?;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["spec"]["clusterIP"], json!(ip));
    let (code, body) = api.patch(&format!("{SERVICES}/web"), MERGE, &json!({"spec": {"type": "NodePort"}})).await?;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["spec"]["clusterIP"], json!(ip));
    // Dry runs are checked too.
    let (code, body) = api
        .post(
            &format!("{SERVICES}?dryRun=All"),
            &service("dry", json!({"clusterIP": "8.8.8.8", "ports": [{"port": 80}]})),
        )
        .await?;
    assert_eq!(invalid_fields(code, &body), vec!["spec.clusterIPs"]);
    let (code, body) = api
        .post(SERVICES, &service("np", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]})))
        .await?;
    assert_eq!(invalid_fields(code, &body), vec!["spec.ports[0].nodePort"]);
    api.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_fields_are_rejected_on_update() -> Result<()> {
    let api = Api::start().await?;
    let (code, body) = api.post(PODS, &pod("p", "100m")).await?;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let p = format!("{PODS}/p");
    let (code, body) = api.patch(&p, STRATEGIC, &json!({"spec": {"restartPolicy": "Never"}})).await?;
    assert_eq!(invalid_fields(code, &body), vec!["spec"]);
    let (code, body) = api.patch(&p, MERGE, &json!({"spec": {"nodeName": "n1"}})).await?;
    assert_eq!(invalid_fields(code, &body), vec!["spec.nodeName"]);
    let (code, body) = api
        .patch(&p, JSON_PATCH, &json!([{"op": "replace", "path": "/spec/containers/0/image", "value": "busybox:2"}]))
        .await?;
    assert_eq!(code, StatusCode::OK, "image may change: {body}");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    let (code, body) = api.post(&format!("{p}/binding"), &binding).await?;
    assert_eq!(code, StatusCode::CREATED, "binding sets nodeName: {body}");
    let (code, body) = api.patch(&p, MERGE, &json!({"spec": {"nodeName": "n2"}})).await?;
    assert_eq!(invalid_fields(code, &body), vec!["spec"]);

    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "a", "tier": "x"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let (code, body) = api.post("/apis/apps/v1/namespaces/default/deployments", &deployment).await?;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, body) = api
        .patch(
            "/apis/apps/v1/namespaces/default/deployments/d",
            MERGE,
            &json!({"spec": {"selector": {"matchLabels": {"tier": "x"}}}}),
        )
        .await?;
    assert_eq!(invalid_fields(code, &body), vec!["spec.selector"]);
    let (code, body) = api
        .patch(
            "/apis/apps/v1/namespaces/default/deployments/d",
            MERGE,
            &json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}}),
        )
        .await?;
    assert_eq!(invalid_fields(code, &body), vec!["spec.strategy.rollingUpdate.maxUnavailable"]);
    // A JSON patch whose rollback json-patch 4.2 cannot undo (a fuzz finding) is a 422, not a panic.
    let cm = json!({"metadata": {"name": "cm"}, "data": {"x": "y"}});
    let (code, body) = api.post("/api/v1/namespaces/default/configmaps", &cm).await?;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let undo_bomb = json!([{"op": "move", "from": "/data/x", "path": "/data"}, {"op": "remove", "path": "/nope"}]);
    let (code, body) = api.patch("/api/v1/namespaces/default/configmaps/cm", JSON_PATCH, &undo_bomb).await?;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, stored) = api.get("/api/v1/namespaces/default/configmaps/cm").await?;
    assert_eq!(stored["data"], json!({"x": "y"}));
    api.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reports_the_invalid_field() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = support::start_apiserver(dir.path()).await?;
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n    image: busybox:1\n    resources:\n      requests:\n        cpu: abc\n";
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = tokio::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["create", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().context("stdin")?;
        stdin.write_all(manifest.as_bytes()).await?;
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output()).await??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("spec.containers[0].resources.requests[cpu]"), "{stderr}");
    assert!(stderr.contains("is invalid"), "{stderr}");
    server.token.cancel();
    let _ = server.server.await;
    server.store.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_services_with_hijacking_addresses_are_repaired_at_startup() -> Result<()> {
    use bosun_control::apiserver::registry::{by_kind, Kind};
    // Services written before these rules: ExternalName with 1.1.1.1, and one
    // patched from it to ClusterIP that kept 1.1.1.1.
    let dir = tempfile::tempdir()?;
    let store = bosun_control::store::Store::open(&dir.path().join("store.db"))?;
    let info = by_kind(Kind::Service);
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
    store.create(&by_kind(Kind::Namespace).key(None, "default"), ns.to_string().into_bytes()).await?;
    for (name, kind) in [("ext", "ExternalName"), ("kept", "ClusterIP")] {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"type": kind, "externalName": "example.com", "clusterIP": "1.1.1.1", "clusterIPs": ["1.1.1.1"],
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}});
        store.create(&info.key(Some("default"), name), svc.to_string().into_bytes()).await?;
    }
    store.close().await;
    let server = support::start_apiserver(dir.path()).await?;
    let http = server.http()?;
    let get = |name: &str| http.get(server.url(&format!("{SERVICES}/{name}"))).send();
    let ext: Value = get("ext").await?.json().await?;
    assert_eq!(ext["spec"].get("clusterIP"), None, "{ext}");
    assert_eq!(ext["spec"].get("clusterIPs"), None, "{ext}");
    let kept: Value = get("kept").await?.json().await?;
    let ip = kept["spec"]["clusterIP"].as_str().unwrap_or_default();
    assert!(in_cidr(ip), "{kept}");
    assert_eq!(kept["spec"]["clusterIPs"], json!([ip]));
    server.token.cancel();
    let _ = server.server.await;
    server.store.close().await;
    Ok(())
}
