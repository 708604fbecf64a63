//! CustomResourceDefinitions end to end with the real `/usr/bin/kubectl`:
//! a CRD with a structural schema is applied and becomes Established,
//! custom resources are applied, validated (422 with field paths), pruned,
//! printed with their printer columns, written through `/status` and
//! scaled through `/scale`; deleting the CRD deletes them and stops serving.

use anyhow::{bail, Result};

mod support;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas, labelSelectorPath: .status.selector}
    additionalPrinterColumns:
    - {name: Image, type: string, jsonPath: .spec.image}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [image]
            properties:
              image: {type: string, pattern: '^[a-z0-9./:-]+$'}
              replicas: {type: integer, minimum: 0, maximum: 10, default: 1}
              mode: {type: string, enum: [fast, safe]}
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
"#;

const GOOD: &str = r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: default}
spec: {image: nginx, mode: fast, unknown: dropped}
"#;

const BAD: &str = r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: w2, namespace: default}
spec: {image: "Bad Image", replicas: 11, mode: slow}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_serves_validates_prints_scales_and_deletes_custom_resources() -> Result<()> {
    let plane = support::Plane::apiserver().await?;
    let dir = plane.dir.path();
    let file = |name: &str, text: &str| -> Result<String> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path.to_string_lossy().into_owned())
    };

    plane.kubectl(&["apply", "-f", &file("crd.yaml", CRD)?]).await?;
    plane.kubectl(&["wait", "--for", "condition=established", "--timeout=60s", "crd/widgets.example.com"]).await?;
    let crds = plane.kubectl(&["get", "crds"]).await?;
    assert!(crds.contains("widgets.example.com"), "{crds}");

    // Unknown fields: refused under kubectl's default Strict validation,
    // pruned with a warning otherwise.
    let good = file("good.yaml", GOOD)?;
    let strict = plane.kubectl_raw(&["apply", "-f", &good]).await?;
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(!strict.status.success() && stderr.contains(".spec.unknown: field not declared in schema"), "{stderr}");
    let warned = plane.kubectl_raw(&["apply", "--validate=warn", "-f", &good]).await?;
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(warned.status.success() && stderr.contains("unknown field \"spec.unknown\""), "{stderr}");
    let got = plane.kubectl(&["get", "widget", "w1", "-o", "json"]).await?;
    let obj: serde_json::Value = serde_json::from_str(&got)?;
    assert_eq!(obj["spec"]["replicas"], 1, "defaulted: {obj}");
    assert!(obj["spec"].get("unknown").is_none(), "pruned: {obj}");

    let bad = plane.kubectl_raw(&["apply", "-f", &file("bad.yaml", BAD)?]).await?;
    let stderr = String::from_utf8_lossy(&bad.stderr);
    if bad.status.success() {
        bail!("an invalid widget was accepted");
    }
    for want in [
        "The Widget \"w2\" is invalid",
        "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
        "spec.image: Invalid value: \"Bad Image\"",
        "spec.mode: Unsupported value: \"slow\"",
    ] {
        assert!(stderr.contains(want), "{want:?} missing in {stderr}");
    }

    // Status only through /status; the main resource ignores it.
    let status =
        r#"{"status": {"replicas": 1, "selector": "app=w", "conditions": [{"type": "Ready", "status": "True"}]}}"#;
    plane.kubectl(&["patch", "wd", "w1", "--subresource=status", "--type=merge", "-p", status]).await?;
    plane.kubectl(&["patch", "wd", "w1", "--type=merge", "-p", r#"{"status": {"replicas": 7}}"#]).await?;
    let replicas = plane.kubectl(&["get", "wd", "w1", "-o", "jsonpath={.status.replicas}"]).await?;
    assert_eq!(replicas, "1");

    let table = plane.kubectl(&["get", "widgets"]).await?;
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "IMAGE", "REPLICAS", "READY", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(&row[..4], ["w1", "nginx", "1", "True"], "{table}");

    let explain = plane.kubectl(&["explain", "widgets.spec"]).await?;
    for want in ["KIND:       Widget", "image\t<string> -required-", "replicas\t<integer>", "mode\t<string>"] {
        assert!(explain.contains(want), "{want:?} missing in {explain}");
    }

    plane.kubectl(&["scale", "widget", "w1", "--replicas=3"]).await?;
    let spec = plane.kubectl(&["get", "widget", "w1", "-o", "jsonpath={.spec.replicas}"]).await?;
    assert_eq!(spec, "3");
    let scale = plane.kubectl(&["get", "--raw", "/apis/example.com/v1/namespaces/default/widgets/w1/scale"]).await?;
    let scale: serde_json::Value = serde_json::from_str(&scale)?;
    assert_eq!((scale["spec"]["replicas"].as_i64(), scale["status"]["selector"].as_str()), (Some(3), Some("app=w")));

    plane.kubectl(&["delete", "crd", "widgets.example.com"]).await?;
    let gone = plane.kubectl_raw(&["get", "--raw", "/apis/example.com/v1/namespaces/default/widgets"]).await?;
    assert!(!gone.status.success(), "still served after the CRD was deleted");
    plane.kubectl(&["apply", "-f", &file("crd.yaml", CRD)?]).await?;
    plane.kubectl(&["wait", "--for", "condition=established", "--timeout=60s", "crd/widgets.example.com"]).await?;
    let empty = plane.kubectl(&["get", "--raw", "/apis/example.com/v1/namespaces/default/widgets"]).await?;
    let empty: serde_json::Value = serde_json::from_str(&empty)?;
    assert_eq!(empty["items"], serde_json::json!([]), "objects outlived their CRD");
    assert_eq!(empty["kind"], "WidgetList");
    plane.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_crd_is_refused_with_field_paths() -> Result<()> {
    let plane = support::Plane::apiserver().await?;
    let bad = CRD
        .replace("name: widgets.example.com", "name: gadgets.example.com")
        .replace("scope: Namespaced", "scope: Global")
        .replace("storage: true", "storage: false");
    let path = plane.dir.path().join("bad-crd.yaml");
    std::fs::write(&path, bad)?;
    let out = plane.kubectl_raw(&["apply", "-f", &path.to_string_lossy()]).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an invalid CRD was accepted");
    for want in [
        "The CustomResourceDefinition \"gadgets.example.com\" is invalid",
        "metadata.name: Invalid value: \"gadgets.example.com\": must be spec.names.plural+\".\"+spec.group",
        "spec.scope: Unsupported value: \"Global\"",
        "spec.versions: Invalid value: \"0 storage versions\": must have exactly one version marked as storage version",
    ] {
        assert!(stderr.contains(want), "{want:?} missing in {stderr}");
    }
    plane.stop().await;
    Ok(())
}

const GIZMOS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.example.com
spec:
  group: example.com
  scope: Cluster
  names: {plural: gizmos, singular: gizmo, kind: Gizmo, shortNames: [gz], categories: [all]}
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema: {type: object, properties: {spec: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, properties: {spec: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
"#;

const GIZMO: &str = r#"
apiVersion: example.com/v1beta1
kind: Gizmo
metadata: {name: g1}
spec: {size: 3, free: {form: true}}
"#;

/// The gizmo `g1` read through `version`.
async fn get(plane: &support::Plane, version: &str) -> Result<serde_json::Value> {
    let text = plane.kubectl(&["get", "--raw", &format!("/apis/example.com/{version}/gizmos/g1")]).await?;
    Ok(serde_json::from_str(&text)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_discovery_server_side_apply_and_watch() -> Result<()> {
    let plane = support::Plane::apiserver().await?;
    let dir = plane.dir.path();
    let file = |name: &str, text: &str| -> Result<String> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path.to_string_lossy().into_owned())
    };
    plane.kubectl(&["apply", "-f", &file("crd.yaml", GIZMOS)?]).await?;
    plane.kubectl(&["wait", "--for", "condition=established", "--timeout=60s", "crd/gizmos.example.com"]).await?;

    let resources = plane.kubectl(&["api-resources", "--api-group=example.com"]).await?;
    let row: Vec<&str> = resources.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(row, ["gizmos", "gz", "example.com/v1", "false", "Gizmo"], "{resources}");

    plane.kubectl(&["apply", "--server-side", "-f", &file("gizmo.yaml", GIZMO)?]).await?;
    let (v1, beta) = (get(&plane, "v1").await?, get(&plane, "v1beta1").await?);
    assert_eq!(
        (v1["apiVersion"].as_str(), beta["apiVersion"].as_str()),
        (Some("example.com/v1"), Some("example.com/v1beta1"))
    );
    assert_eq!(v1["spec"]["free"]["form"], true, "preserved: {v1}");
    assert_eq!(v1["metadata"]["managedFields"][0]["operation"], "Apply", "{v1}");

    // A second apply by the same manager changes the field; a merge patch through v1 too.
    plane
        .kubectl(&["apply", "--server-side", "-f", &file("gizmo.yaml", &GIZMO.replace("size: 3", "size: 4"))?])
        .await?;
    plane.kubectl(&["patch", "gz", "g1", "--type=merge", "-p", r#"{"spec": {"color": "red"}}"#]).await?;
    let sp = plane.kubectl_raw(&["patch", "gz", "g1", "-p", r#"{"spec": {"color": "blue"}}"#]).await?;
    assert!(!sp.status.success(), "strategic merge patch accepted on a custom resource");
    let v1 = get(&plane, "v1").await?;
    assert_eq!((v1["spec"]["size"].as_i64(), v1["spec"]["color"].as_str()), (Some(4), Some("red")), "{v1}");

    // The watch replays the object as the watched version, then ends at its timeout.
    let watch =
        plane.kubectl(&["get", "--raw", "/apis/example.com/v1beta1/gizmos?watch=true&timeoutSeconds=1"]).await?;
    let event: serde_json::Value = serde_json::from_str(watch.lines().next().unwrap_or_default())?;
    assert_eq!(
        (event["type"].as_str(), event["object"]["apiVersion"].as_str()),
        (Some("ADDED"), Some("example.com/v1beta1"))
    );

    let all = plane.kubectl(&["get", "gizmos"]).await?;
    assert!(all.lines().any(|l| l.starts_with("g1 ")), "{all}");
    plane.stop().await;
    Ok(())
}
