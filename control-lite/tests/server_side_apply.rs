//! Server-side apply end to end: the real `/usr/bin/kubectl` (`apply
//! --server-side`, `scale`, client-side `apply`) and kube-rs `Patch::Apply`
//! against the in-process apiserver (no controllers).

use anyhow::Result;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{json, Value};

mod support;

use support::Plane;

fn deployment(replicas: u32, image: &str, env: &[(&str, &str)]) -> String {
    let env: String = env
        .iter()
        .map(|(n, v)| format!("        - name: {n}\n          value: \"{v}\"\n"))
        .collect::<Vec<_>>()
        .join("");
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  replicas: {replicas}\n  \
         selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      \
         containers:\n      - name: nginx\n        image: {image}\n        env:\n{env}"
    )
}

fn configmap(data: &[(&str, &str)]) -> String {
    let data: String = data.iter().map(|(k, v)| format!("  {k}: \"{v}\"\n")).collect();
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n{data}")
}

/// Writes `manifest` to a file in the plane's directory and returns its path.
fn manifest(plane: &Plane, name: &str, manifest: &str) -> Result<String> {
    let path = plane.dir.path().join(name);
    std::fs::write(&path, manifest)?;
    Ok(path.to_string_lossy().into_owned())
}

async fn ssa(plane: &Plane, file: &str) -> Result<String> {
    plane.kubectl(&["apply", "--server-side", "-f", file]).await
}

async fn get_json(plane: &Plane, what: &[&str]) -> Result<Value> {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "json", "--show-managed-fields"]);
    Ok(serde_json::from_str(&plane.kubectl(&args).await?)?)
}

/// The managers of `obj` as `(manager, operation)`.
fn managers(obj: &Value) -> Vec<(String, String)> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|e| {
                    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                    (s("manager"), s("operation"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_side_apply_creates_updates_prunes_and_conflicts() -> Result<()> {
    let plane = Plane::apiserver().await?;
    let f = manifest(&plane, "d1.yaml", &deployment(2, "nginx:1.27", &[("A", "1"), ("B", "2")]))?;
    let out = ssa(&plane, &f).await?;
    assert!(out.contains("deployment.apps/web serverside-applied"), "{out}");
    let out = ssa(&plane, &manifest(&plane, "c1.yaml", &configmap(&[("x", "1")]))?).await?;
    assert!(out.contains("configmap/cfg serverside-applied"), "{out}");

    let d = get_json(&plane, &["deploy", "web"]).await?;
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(managers(&d), vec![("kubectl".to_string(), "Apply".to_string())]);
    let fields = &d["metadata"]["managedFields"][0]["fieldsV1"];
    assert_eq!(fields.pointer("/f:spec/f:replicas"), Some(&json!({})), "{fields}");
    assert!(
        fields
            .pointer("/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"nginx\"}/f:env/k:{\"name\":\"B\"}/f:value")
            .is_some(),
        "{fields}"
    );
    let yaml = plane.kubectl(&["get", "deploy", "web", "-o", "yaml", "--show-managed-fields"]).await?;
    assert!(
        yaml.contains("manager: kubectl") && yaml.contains("operation: Apply") && yaml.contains("fieldsType: FieldsV1"),
        "{yaml}"
    );

    // A changed field updates; a dropped env var goes.
    ssa(&plane, &manifest(&plane, "d2.yaml", &deployment(2, "nginx:1.28", &[("A", "1")]))?).await?;
    let d = get_json(&plane, &["deploy", "web"]).await?;
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.28");
    assert_eq!(container["env"], json!([{"name": "A", "value": "1"}]));
    assert_eq!(container["imagePullPolicy"], "IfNotPresent", "defaults stay");

    // kubectl scale (manager "kubectl" from its User-Agent, on the scale
    // subresource) owns replicas now: applying another value conflicts.
    plane.kubectl(&["scale", "deploy/web", "--replicas=5"]).await?;
    let f3 = manifest(&plane, "d3.yaml", &deployment(3, "nginx:1.28", &[("A", "1")]))?;
    let out = plane.kubectl_raw(&["apply", "--server-side", "-f", &f3]).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let expected = "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas";
    assert!(stderr.contains(expected), "{stderr}");
    let replicas = plane.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]).await?;
    assert_eq!(replicas, "5");
    // --force-conflicts takes it.
    plane.kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &f3]).await?;
    let d = get_json(&plane, &["deploy", "web"]).await?;
    assert_eq!(d["spec"]["replicas"], 3);
    let scale = d["metadata"]["managedFields"].as_array().into_iter().flatten().find(|e| e["subresource"] == "scale");
    assert!(scale.is_none_or(|e| e.pointer("/fieldsV1/f:spec/f:replicas").is_none()), "{scale:?}");

    // A second manager applying a disjoint field coexists; removing a field
    // from the first manager's manifest removes it, the other's stays.
    ssa(&plane, &manifest(&plane, "c2.yaml", &configmap(&[("x", "1"), ("z", "3")]))?).await?;
    let other = manifest(&plane, "c3.yaml", &configmap(&[("w", "2")]))?;
    plane.kubectl(&["apply", "--server-side", "--field-manager=other", "-f", &other]).await?;
    let c4 = manifest(&plane, "c4.yaml", &configmap(&[("x", "1")]))?;
    ssa(&plane, &c4).await?;
    let cm = get_json(&plane, &["cm", "cfg"]).await?;
    // The same apply again stores nothing.
    ssa(&plane, &c4).await?;
    let again = get_json(&plane, &["cm", "cfg"]).await?;
    assert_eq!(again["metadata"]["resourceVersion"], cm["metadata"]["resourceVersion"]);
    assert_eq!(cm["data"], json!({"w": "2", "x": "1"}));
    let m = managers(&cm);
    assert!(m.contains(&("kubectl".into(), "Apply".into())) && m.contains(&("other".into(), "Apply".into())), "{m:?}");

    // A Service: apply-as-create allocates its address; a port added later
    // merges by key and the address stays.
    let svc = |ports: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n{ports}")
    };
    ssa(&plane, &manifest(&plane, "s1.yaml", &svc("  - port: 80\n"))?).await?;
    let ip = plane.kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]).await?;
    assert!(ip.starts_with("10.96."), "{ip}");
    ssa(&plane, &manifest(&plane, "s2.yaml", &svc("  - port: 80\n    name: http\n  - port: 443\n    name: https\n"))?)
        .await?;
    let s = get_json(&plane, &["svc", "web"]).await?;
    assert_eq!(s["spec"]["clusterIP"], ip.as_str());
    assert_eq!(s["spec"]["ports"].as_array().map(Vec::len), Some(2), "{s}");

    // Dry run changes nothing.
    let dry = manifest(&plane, "c5.yaml", &configmap(&[("x", "dry")]))?;
    plane.kubectl(&["apply", "--server-side", "--dry-run=server", "-f", &dry]).await?;
    let x = plane.kubectl(&["get", "cm", "cfg", "-o", "jsonpath={.data.x}"]).await?;
    assert_eq!(x, "1");
    plane.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_upgrades_to_server_side_apply() -> Result<()> {
    let plane = Plane::apiserver().await?;
    let first = manifest(&plane, "c1.yaml", &configmap(&[("x", "1"), ("w", "2")]))?;
    plane.kubectl(&["apply", "-f", &first]).await?;
    let cm = get_json(&plane, &["cm", "cfg"]).await?;
    assert_eq!(managers(&cm), vec![("kubectl-client-side-apply".to_string(), "Update".to_string())]);
    // The same manifest with a change and a field dropped: no conflict, the
    // dropped field goes.
    let next = manifest(&plane, "c2.yaml", &configmap(&[("x", "9")]))?;
    let out = plane.kubectl(&["apply", "--server-side", "-f", &next]).await?;
    assert!(out.contains("configmap/cfg serverside-applied"), "{out}");
    let cm = get_json(&plane, &["cm", "cfg"]).await?;
    assert_eq!(cm["data"], json!({"x": "9"}));
    assert!(managers(&cm).contains(&("kubectl".into(), "Apply".into())), "{:?}", managers(&cm));
    // And back: client-side apply diffs against the refreshed annotation.
    let back = manifest(&plane, "c3.yaml", &configmap(&[("x", "5"), ("v", "6")]))?;
    plane.kubectl(&["apply", "-f", &back]).await?;
    let cm = get_json(&plane, &["cm", "cfg"]).await?;
    assert_eq!(cm["data"], json!({"v": "6", "x": "5"}));
    plane.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_patch_apply_conflicts_and_needs_a_field_manager() -> Result<()> {
    let plane = Plane::apiserver().await?;
    let cms: Api<ConfigMap> = Api::namespaced(plane.client.clone(), "default");
    let cm = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k"}, "data": {"a": v}});
    let created = cms.patch("k", &PatchParams::apply("one"), &Patch::Apply(cm("1"))).await?;
    assert_eq!(created.data.and_then(|d| d.get("a").cloned()).as_deref(), Some("1"));
    // The same value from another manager is shared; another value conflicts.
    cms.patch("k", &PatchParams::apply("two"), &Patch::Apply(cm("1"))).await?;
    cms.patch("k", &PatchParams::apply("one"), &Patch::Apply(cm("1"))).await?;
    let err = cms.patch("k", &PatchParams::apply("two"), &Patch::Apply(cm("2"))).await.expect_err("conflict");
    let kube::Error::Api(status) = err else { anyhow::bail!("not an API error: {err}") };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(status.message, "Apply failed with 1 conflict: conflict with \"one\": .data.a");
    let causes = status.details.map(|d| d.causes).unwrap_or_default();
    let causes: Vec<(&str, &str, &str)> =
        causes.iter().map(|c| (c.reason.as_str(), c.field.as_str(), c.message.as_str())).collect();
    assert_eq!(causes, vec![("FieldManagerConflict", ".data.a", "conflict with \"one\"")]);
    cms.patch("k", &PatchParams::apply("two").force(), &Patch::Apply(cm("2"))).await?;
    assert_eq!(cms.get("k").await?.data.and_then(|d| d.get("a").cloned()).as_deref(), Some("2"));
    // Apply to /status owns status fields under the status subresource.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(plane.client.clone(), "default");
    let d: Value = serde_yaml_ng::from_str(&deployment(1, "nginx:1.27", &[("A", "1")]))?;
    deployments.patch("web", &PatchParams::apply("one"), &Patch::Apply(&d)).await?;
    let status = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "status": {"observedGeneration": 1, "replicas": 0}});
    let d = deployments.patch_status("web", &PatchParams::apply("status-writer"), &Patch::Apply(&status)).await?;
    assert_eq!(d.status.and_then(|s| s.observed_generation), Some(1));
    let entry = d
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.manager.as_deref() == Some("status-writer"));
    let entry = entry.expect("a status entry");
    assert_eq!((entry.operation.as_deref(), entry.subresource.as_deref()), (Some("Apply"), Some("status")));
    let fields = entry.fields_v1.map(|f| f.0).unwrap_or_default();
    assert_eq!(fields, json!({"f:status": {"f:observedGeneration": {}, "f:replicas": {}}}));

    // No fieldManager: 422 as upstream.
    let req = http::Request::patch("/api/v1/namespaces/default/configmaps/k")
        .header("content-type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(&cm("3"))?)?;
    let err = plane.client.request_text(req).await.expect_err("no manager");
    let kube::Error::Api(status) = err else { anyhow::bail!("not an API error: {err}") };
    assert_eq!(status.code, 422, "{status:?}");
    plane.stop().await;
    Ok(())
}

fn resource_version(obj: &Value) -> String {
    obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reapplying_numeric_quantities_is_a_no_op_and_equal_values_are_shared() -> Result<()> {
    let plane = Plane::apiserver().await?;
    let resources = "        resources:\n          limits:\n            cpu: 1\n            memory: 33554432\n        \
                     ports:\n        - containerPort: 80\n";
    let numeric = format!("{}{resources}", deployment(1, "nginx:1.27", &[]).replace("        env:\n", ""));
    let file = manifest(&plane, "numeric.yaml", &numeric)?;
    ssa(&plane, &file).await?;
    let first = get_json(&plane, &["deployment", "web"]).await?;
    assert_eq!(first.pointer("/spec/template/spec/containers/0/resources/limits/cpu"), Some(&json!("1")), "{first}");
    ssa(&plane, &file).await?;
    let second = get_json(&plane, &["deployment", "web"]).await?;
    assert_eq!(resource_version(&second), resource_version(&first), "a re-apply stores nothing");
    // Another manager applying the same numeric value shares the field.
    let limits = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      \
                  containers:\n      - name: nginx\n        resources:\n          limits:\n            cpu: 1\n";
    let other = manifest(&plane, "limits.yaml", limits)?;
    plane.kubectl(&["apply", "--server-side", "--field-manager=other", "-f", &other]).await?;
    let shared = get_json(&plane, &["deployment", "web"]).await?;
    let cpu = "/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"nginx\"}/f:resources/f:limits/f:cpu";
    let mut owners: Vec<&str> = shared["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["fieldsV1"].pointer(cpu).is_some())
        .filter_map(|e| e["manager"].as_str())
        .collect();
    owners.sort_unstable();
    assert_eq!(owners, ["kubectl", "other"], "{shared}");
    plane.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_without_time_keeps_the_object_writable_and_readable() -> Result<()> {
    let plane = Plane::apiserver().await?;
    let cms: Api<ConfigMap> = Api::namespaced(plane.client.clone(), "default");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "notime"}, "data": {"a": "1"}});
    cms.create(&Default::default(), &serde_json::from_value(cm)?).await?;
    // A write that sends an entry without time and changes a field, so the entries are rewritten.
    let patch = json!({"metadata": {"managedFields": [{"manager": "tool", "operation": "Update",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}]}, "data": {"b": "2"}});
    let patched = cms
        .patch(
            "notime",
            &PatchParams { field_manager: Some("creator".into()), ..Default::default() },
            &Patch::Merge(patch),
        )
        .await?;
    let entries = patched.metadata.managed_fields.unwrap_or_default();
    let entry = entries.iter().find(|e| e.manager.as_deref() == Some("tool")).expect("the sent entry");
    assert!(entry.time.is_none(), "{entry:?}");
    // Later writes by anyone still work, and lists decode.
    plane.kubectl(&["patch", "configmap", "notime", "-p", r#"{"data":{"d":"4"}}"#]).await?;
    cms.patch(
        "notime",
        &PatchParams::apply("one"),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "notime"}, "data": {"c": "3"}})),
    )
    .await?;
    let listed = cms.list(&Default::default()).await?;
    let data = listed.items.iter().find(|c| c.metadata.name.as_deref() == Some("notime")).and_then(|c| c.data.clone());
    assert_eq!(data.map(|d| d.len()), Some(4));
    plane.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_and_recorded_entries_stay_within_the_object_size_limit() -> Result<()> {
    let plane = Plane::apiserver().await?;
    let cms: Api<ConfigMap> = Api::namespaced(plane.client.clone(), "default");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(plane.client.clone(), "default");
    // Each configuration is under the 1.5 MiB object limit, their merge is not.
    let big = |env: &str| -> Result<Value> {
        let value = env.repeat(800_000);
        Ok(serde_yaml_ng::from_str(&deployment(1, "nginx:1.27", &[(env, &value)]))?)
    };
    deployments.patch("web", &PatchParams::apply("one"), &Patch::Apply(big("A")?)).await?;
    let before = deployments.get("web").await?;
    let err =
        deployments.patch("web", &PatchParams::apply("two"), &Patch::Apply(big("B")?)).await.expect_err("too large");
    let kube::Error::Api(status) = err else { anyhow::bail!("not an API error: {err}") };
    assert_eq!(status.code, 413, "{status:?}");
    assert_eq!(deployments.get("web").await?.metadata.resource_version, before.metadata.resource_version);
    // A body under the limit whose recorded managedFields push it over it.
    // (1 MB of data, under ConfigMap's 1 MiB; its entry adds as much again.)
    let keys: serde_json::Map<String, Value> = (0..5_000).map(|i| (format!("{i:0200}"), json!(""))).collect();
    let many = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "many"}, "data": keys});
    let params = kube::api::PostParams { field_manager: Some("writer".into()), ..Default::default() };
    let err = cms.create(&params, &serde_json::from_value(many)?).await.expect_err("too large with entries");
    let kube::Error::Api(status) = err else { anyhow::bail!("not an API error: {err}") };
    assert_eq!(status.code, 413, "{status:?}");
    assert!(cms.get_opt("many").await?.is_none());
    plane.stop().await;
    Ok(())
}
