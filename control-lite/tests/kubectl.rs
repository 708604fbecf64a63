//! End-to-end tests of the apiserver with the real `/usr/bin/kubectl` and a
//! kube-rs client. The apiserver runs in-process on 127.0.0.1:0 over a
//! temporary store; no controllers run, so Deployments get no pods.

use std::path::PathBuf;
use std::process::Output;

use anyhow::{bail, Context, Result};
use bosun_control::store::Store;
use serde_json::Value;

mod support;

const KUBECTL: &str = "/usr/bin/kubectl";

struct Cluster {
    dir: tempfile::TempDir,
    store: Store,
    api: support::Apiserver,
}

impl Cluster {
    async fn start() -> Result<Cluster> {
        Cluster::start_in(tempfile::tempdir()?).await
    }

    /// Starts over an existing data directory (a restart).
    async fn start_in(dir: tempfile::TempDir) -> Result<Cluster> {
        let api = support::start_apiserver(dir.path()).await?;
        Ok(Cluster { dir, store: api.store.clone(), api })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let mut cmd = tokio::process::Command::new(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(self.path("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.path("kube-cache"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().context("spawn kubectl")?;
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().context("stdin")?;
            pipe.write_all(input.as_bytes()).await?;
        }
        drop(child.stdin.take());
        let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
            .await
            .context("kubectl timed out")??;
        Ok(out)
    }

    /// Runs kubectl, requires success and an empty stderr; returns stdout.
    async fn ok(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.kubectl(args, stdin).await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || !stderr.trim().is_empty() {
            bail!(
                "kubectl {args:?} failed ({}): stderr: {stderr}\nstdout: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    async fn client(&self) -> Result<kube::Client> {
        self.api.kube_client().await
    }

    async fn stop(self) -> tempfile::TempDir {
        self.api.token.cancel();
        let _ = self.api.server.await;
        self.store.close().await;
        self.dir
    }
}

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_scale_delete() -> Result<()> {
    let c = Cluster::start().await?;

    let out = c.ok(&["apply", "-f", "-"], Some(APP)).await?;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    assert!(out.contains("service/web created"), "{out}");

    let wide = c.ok(&["get", "deploy,svc,pods", "-o", "wide"], None).await?;
    for col in [
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
        "CLUSTER-IP",
        "PORT(S)",
        "nginx:1.27",
        "80/TCP",
        "10.96.0.",
    ] {
        assert!(wide.contains(col), "missing {col} in:\n{wide}");
    }

    let deploy: Value = serde_json::from_str(&c.ok(&["get", "deploy", "web", "-o", "json"], None).await?)?;
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(deploy["metadata"]["generation"], 1);
    assert_eq!(deploy["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert!(deploy["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));

    let out = c.ok(&["scale", "deploy/web", "--replicas=5"], None).await?;
    assert!(out.contains("scaled"), "{out}");
    let replicas = c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"], None).await?;
    assert_eq!(replicas, "5");

    // Re-apply with a change: client-side apply computes a strategic merge patch.
    let changed = APP.replace("nginx:1.27", "nginx:1.28");
    let out = c.ok(&["apply", "-f", "-"], Some(&changed)).await?;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("service/web unchanged"), "{out}");
    let deploy: Value = serde_json::from_str(&c.ok(&["get", "deploy", "web", "-o", "json"], None).await?)?;
    assert_eq!(deploy["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.28");
    assert_eq!(deploy["spec"]["replicas"], 2, "apply restores the declared replicas");
    assert_eq!(deploy["metadata"]["generation"], 3);

    // Invalid: no containers -> 422 naming the field, nothing stored.
    let invalid = APP.split("---").next().unwrap_or_default().replace("name: web\n  labels", "name: broken\n  labels");
    let invalid = invalid.replace(
        "      containers:\n      - name: nginx\n        image: nginx:1.27\n        ports:\n        - containerPort: 80\n",
        "      containers: []\n",
    );
    let out = c.kubectl(&["apply", "-f", "-"], Some(&invalid)).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("spec.template.spec.containers: Required value"), "{stderr}");
    let out = c.kubectl(&["get", "deploy", "broken"], None).await?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));

    // Generator subcommands send protobuf bodies (decoded for simple kinds).
    let out = c.ok(&["create", "namespace", "team"], None).await?;
    assert!(out.contains("namespace/team created"), "{out}");
    c.ok(&["-n", "team", "create", "configmap", "cfg", "--from-literal=a=b"], None).await?;
    c.ok(&["-n", "team", "create", "secret", "generic", "s", "--from-literal=p=hunter2"], None).await?;
    c.ok(&["-n", "team", "create", "serviceaccount", "robot"], None).await?;
    let cm: Value = serde_json::from_str(&c.ok(&["-n", "team", "get", "cm", "cfg", "-o", "json"], None).await?)?;
    assert_eq!(cm["data"]["a"], "b");
    let secret = c.ok(&["-n", "team", "get", "secret", "s", "-o", "jsonpath={.data.p}"], None).await?;
    assert_eq!(secret, "aHVudGVyMg==");
    let ns = c.ok(&["get", "ns", "team", "-o", "jsonpath={.status.phase}"], None).await?;
    assert_eq!(ns, "Active");
    c.ok(&["create", "deployment", "gen", "--image=nginx:1.27", "--replicas=2", "--port=8080"], None).await?;
    let gen: Value = serde_json::from_str(&c.ok(&["get", "deploy", "gen", "-o", "json"], None).await?)?;
    assert_eq!(gen["spec"]["replicas"], 2);
    assert_eq!(gen["spec"]["selector"]["matchLabels"]["app"], "gen");
    let container = &gen["spec"]["template"]["spec"]["containers"][0];
    assert_eq!((container["name"].as_str(), container["image"].as_str()), (Some("nginx"), Some("nginx:1.27")));
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(gen["spec"]["strategy"]["type"], "RollingUpdate");
    let out = c.ok(&["expose", "deploy", "gen", "--port=80", "--target-port=8080"], None).await?;
    assert!(out.contains("service/gen exposed"), "{out}");
    let svc: Value = serde_json::from_str(&c.ok(&["get", "svc", "gen", "-o", "json"], None).await?)?;
    assert_eq!(svc["spec"]["selector"]["app"], "gen");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    c.ok(&["delete", "deploy,svc", "gen"], None).await?;
    let out = c.kubectl(&["create", "service", "clusterip", "gen", "--tcp=80:8080"], None).await?;
    assert!(!out.status.success(), "protobuf Services are not decoded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("kubectl apply -f"));

    // Invalid name.
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\ndata:\n  a: b\n";
    let out = c.kubectl(&["apply", "-f", "-"], Some(bad)).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("metadata.name: Invalid value: \"Bad_Name\""), "{stderr}");

    // Unknown fields are rejected by server-side strict validation.
    let typo = APP.split("---").next().unwrap_or_default().replace("replicas: 2", "replicas: 2\n  replicaz: 3");
    let out = c.kubectl(&["apply", "-f", "-"], Some(&typo)).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("replicaz"), "{stderr}");

    let out = c.ok(&["delete", "-f", "-"], Some(APP)).await?;
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
    let left = c.ok(&["get", "deploy,svc", "-o", "name"], None).await?;
    assert_eq!(left.trim(), "service/kubernetes");

    c.stop().await;
    Ok(())
}

fn pod(name: &str, labels: &[(&str, &str)]) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>()},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}
    }))
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_create_list_watch_patch_and_conflict() -> Result<()> {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};

    let c = Cluster::start().await?;
    let client = c.client().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let created = pods.create(&PostParams::default(), &pod("a", &[("app", "web")])).await?;
    let rv_a = created.metadata.resource_version.clone().unwrap_or_default();
    assert!(!rv_a.is_empty());
    assert_eq!(created.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Pending"));
    assert_eq!(created.spec.as_ref().and_then(|s| s.restart_policy.as_deref()), Some("Always"));

    // Watch from the current list revision with a label selector.
    let list = pods.list(&ListParams::default().labels("app=web")).await?;
    assert_eq!(list.items.len(), 1);
    let list_rv = list.metadata.resource_version.clone().unwrap_or_default();
    let mut stream = pods.watch(&WatchParams::default().labels("app=web").timeout(20), &list_rv).await?.boxed();

    pods.create(&PostParams::default(), &pod("b", &[("app", "db")])).await?;
    pods.create(&PostParams::default(), &pod("c", &[("app", "web")])).await?;
    // Relabel a: it leaves the selection -> DELETED for this watcher.
    pods.patch("a", &PatchParams::default(), &Patch::Merge(serde_json::json!({"metadata": {"labels": {"app": "db"}}})))
        .await?;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(10), stream.try_next())
            .await
            .context("watch event timeout")??
            .context("watch ended")?;
        match ev {
            WatchEvent::Added(p) => seen.push(format!("ADDED {}", p.metadata.name.unwrap_or_default())),
            WatchEvent::Deleted(p) => seen.push(format!("DELETED {}", p.metadata.name.unwrap_or_default())),
            WatchEvent::Modified(p) => seen.push(format!("MODIFIED {}", p.metadata.name.unwrap_or_default())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => bail!("watch error {e:?}"),
        }
    }
    assert_eq!(seen, vec!["ADDED c", "DELETED a"]);

    // Replace with a stale resourceVersion -> 409 Conflict.
    let mut stale = created.clone();
    stale.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    match pods.replace("a", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409, "{s:?}"),
        other => bail!("expected 409, got {other:?}"),
    }
    // Without a resourceVersion the replace wins.
    stale.metadata.resource_version = None;
    let replaced = pods.replace("a", &PostParams::default(), &stale).await?;
    assert_eq!(replaced.metadata.labels.unwrap_or_default().get("x").map(String::as_str), Some("y"));

    // A uid in the body is a precondition: a status write meant for an older
    // pod of the same name is refused, one with the right uid lands.
    let uid = replaced.metadata.uid.clone().unwrap_or_default();
    let wrong = serde_json::json!({"metadata": {"uid": "not-this-pod"}, "status": {"phase": "Running"}});
    match pods.patch_status("a", &PatchParams::default(), &Patch::Merge(wrong)).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 409, "{s:?}");
            assert!(s.message.contains("Precondition failed: UID"), "{s:?}");
        }
        other => bail!("expected 409 for a uid mismatch, got {other:?}"),
    }
    let right = serde_json::json!({"metadata": {"uid": uid}, "status": {"phase": "Running"}});
    let patched = pods.patch_status("a", &PatchParams::default(), &Patch::Merge(right)).await?;
    assert_eq!(patched.status.and_then(|s| s.phase).as_deref(), Some("Running"));

    // Field selector and all-namespaces list.
    let all: Api<Pod> = Api::all(client.clone());
    let named = all.list(&ListParams::default().fields("metadata.name=c")).await?;
    assert_eq!(named.items.len(), 1);

    // Status subresource writes only status; main writes keep it.
    let status =
        serde_json::json!({"status": {"phase": "Running", "podIP": "10.0.0.5"}, "spec": {"nodeName": "ignored"}});
    let after = pods.patch_status("c", &PatchParams::default(), &Patch::Merge(status)).await?;
    assert_eq!(after.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running"));
    assert_eq!(after.spec.as_ref().and_then(|s| s.node_name.as_deref()), None);
    let after = pods
        .patch("c", &PatchParams::default(), &Patch::Merge(serde_json::json!({"status": {"phase": "Failed"}})))
        .await?;
    assert_eq!(after.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running"));

    drop(stream);
    c.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_graceful_pod_deletion_and_logs_proxy() -> Result<()> {
    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::api::{Api, DeleteParams, PostParams};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let c = Cluster::start().await?;
    let client = c.client().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let nodes: Api<Node> = Api::all(client.clone());

    // A fake kubelet log endpoint on loopback (HTTPS, a certificate the
    // apiserver does not verify, as upstream's default).
    let kubelet = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let kubelet_port = kubelet.local_addr()?.port();
    let other_ca = bosun_control::auth::ca::Ca::generate()?;
    let serving = other_ca.issue_server(&[], &["127.0.0.1".parse()?])?;
    let acceptor =
        tokio_rustls::TlsAcceptor::from(bosun_control::auth::tls::server_config(other_ca.cert_pem(), &serving)?);
    let fake = tokio::spawn(async move {
        if let Ok((conn, _)) = kubelet.accept().await {
            let Ok(mut conn) = acceptor.accept(conn).await else { return };
            let mut buf = vec![0u8; 4096];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = format!("log line for {}\n", req.lines().next().unwrap_or_default());
            let resp =
                format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}", body.len());
            let _ = conn.write_all(resp.as_bytes()).await;
        }
    });
    let node: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}}}
    }))?;
    nodes.create(&PostParams::default(), &node).await?;

    pods.create(&PostParams::default(), &pod("p", &[])).await?;
    let binding = serde_json::json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    let bind = |body: Value| {
        http::Request::post("/api/v1/namespaces/default/pods/p/binding")
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
    };
    // A binding carrying another pod's uid (a pod deleted and re-created
    // under this name) is refused and binds nothing.
    let stale = serde_json::json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": "p", "uid": "uid-of-an-older-pod"}, "target": {"kind": "Node", "name": "n1"}});
    match client.request::<Value>(bind(stale)?).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409, "{s:?}"),
        other => bail!("a binding with a stale uid should conflict: {other:?}"),
    }
    let unbound = pods.get("p").await?;
    assert_eq!(unbound.spec.as_ref().and_then(|s| s.node_name.as_deref()), None);
    let first: Value = client.request(bind(binding.clone())?).await?;
    assert_eq!(first["status"], "Success");
    match client.request::<Value>(bind(binding)?).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409),
        other => bail!("second binding should conflict: {other:?}"),
    }

    let logs = c.ok(&["logs", "p", "--tail=5"], None).await?;
    assert!(logs.contains("GET /containerLogs/default/p/c?tailLines=5"), "{logs}");
    fake.await?;

    // Bound and running: delete only marks it.
    let marked = pods.delete("p", &DeleteParams::default()).await?;
    let marked = marked.left().context("graceful delete returns the object")?;
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    let table = c.ok(&["get", "pods"], None).await?;
    assert!(table.contains("Terminating"), "{table}");
    // The kubelet confirms with grace 0: gone.
    pods.delete("p", &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() }).await?;
    assert!(pods.get_opt("p").await?.is_none());

    // Finalizers hold deletion until removed.
    let mut held = pod("f", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    pods.create(&PostParams::default(), &held).await?;
    pods.delete("f", &DeleteParams::default()).await?;
    let still = pods.get("f").await?;
    assert!(still.metadata.deletion_timestamp.is_some());
    pods.patch(
        "f",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert!(pods.get_opt("f").await?.is_none());

    c.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_generate_name_orphans_namespaces_and_expired_watch() -> Result<()> {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use kube::api::{Api, DeleteParams, PostParams};

    let c = Cluster::start().await?;
    let client = c.client().await?;

    // Server-side dry run stores nothing.
    let out = c.ok(&["apply", "--dry-run=server", "-f", "-"], Some(APP)).await?;
    assert!(out.contains("(server dry run)"), "{out}");
    assert_eq!(c.ok(&["get", "deploy", "-o", "name"], None).await?.trim(), "");

    // Objects in a missing namespace: 404 like upstream.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "x"}}))?;
    match cms.create(&PostParams::default(), &cm).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.message.as_str()), (404, "namespaces \"nope\" not found")),
        other => bail!("expected 404, got {other:?}"),
    }

    // Duplicate keys: 422 under Strict (what kubectl sends by default).
    let dup = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1","a":"2"}}"#.to_vec();
    let req = http::Request::post("/api/v1/namespaces/default/configmaps?fieldValidation=Strict")
        .header("content-type", "application/json")
        .body(dup.clone())?;
    match client.request::<Value>(req).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains(".data.a: duplicate field"), "{}", s.message);
        }
        other => bail!("expected 422, got {other:?}"),
    }
    let req = http::Request::post("/api/v1/namespaces/default/configmaps?fieldValidation=Ignore")
        .header("content-type", "application/json")
        .body(dup)?;
    let stored: Value = client.request(req).await?;
    assert_eq!(stored["data"]["a"], "2");

    // generateName.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut generated = pod("", &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let made = pods.create(&PostParams::default(), &generated).await?;
    let name = made.metadata.name.unwrap_or_default();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    // --cascade=orphan strips ownerReferences of dependents.
    c.ok(&["apply", "-f", "-"], Some(APP)).await?;
    let deploy: Value = serde_json::from_str(&c.ok(&["get", "deploy", "web", "-o", "json"], None).await?)?;
    let uid = deploy["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-1", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid, "controller": true}]},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    }))?;
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    rss.create(&PostParams::default(), &rs).await?;
    c.ok(&["delete", "deploy", "web", "--cascade=orphan"], None).await?;
    let left = rss.get("web-1").await?;
    assert!(left.metadata.owner_references.unwrap_or_default().is_empty());

    // Deleting a namespace only marks it Terminating (no namespace
    // controller runs here to empty it): its content stays, new content is
    // refused, and the namespace stays until its finalizer is removed.
    c.ok(&["apply", "-f", "-"], Some("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n")).await?;
    c.ok(
        &["-n", "team", "apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n"),
    )
    .await?;
    c.ok(&["delete", "namespace", "team", "--wait=false"], None).await?;
    assert!(c.ok(&["get", "namespace", "team"], None).await?.contains("Terminating"));
    let team: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    assert!(team.get_opt("cfg").await?.is_some());
    let out = c.kubectl(&["-n", "team", "create", "configmap", "late"], None).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("configmaps \"late\" is forbidden: unable to create new content in namespace team because it is being terminated"), "{stderr}");
    let out = c.kubectl(&["delete", "namespace", "team", "--wait=false"], None).await?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("Error from server (Conflict)"));
    match pods.delete("x", &DeleteParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => bail!("expected 404, got {other:?}"),
    }

    // A watch from a compacted revision gets an ERROR event with 410 Expired.
    c.store.compact(c.store.current_revision()).await?;
    let url = "/api/v1/namespaces/default/pods?watch=true&resourceVersion=1";
    let req = http::Request::get(url).body(Vec::new())?;
    let text = client.request_text(req).await?;
    let event: Value = serde_json::from_str(text.lines().next().unwrap_or_default())?;
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");

    c.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ips_and_objects_survive_a_restart_and_shutdown_ends_watches() -> Result<()> {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, WatchParams};

    let c = Cluster::start().await?;
    c.ok(&["apply", "-f", "-"], Some(APP)).await?;
    let first = c.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"], None).await?;
    assert_eq!(first, "10.96.0.2");
    // An open watch must not keep the server from shutting down.
    let services: Api<Service> = Api::namespaced(c.client().await?, "default");
    let watch = services.watch(&WatchParams::default(), "0").await?;
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), c.stop()).await;
    let dir = stopped.context("shutdown with an open watch")?;
    drop(watch);

    let c = Cluster::start_in(dir).await?;
    assert_eq!(c.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"], None).await?, first);
    let other = APP.split("---").nth(1).unwrap_or_default().replace("name: web", "name: other");
    c.ok(&["apply", "-f", "-"], Some(&other)).await?;
    let second = c.ok(&["get", "svc", "other", "-o", "jsonpath={.spec.clusterIP}"], None).await?;
    assert_eq!(second, "10.96.0.3");
    assert_eq!(c.ok(&["get", "deploy", "-o", "name"], None).await?.trim(), "deployment.apps/web");
    c.stop().await;
    Ok(())
}
