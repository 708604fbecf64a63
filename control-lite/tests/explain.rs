//! OpenAPI v3 end to end with the real `/usr/bin/kubectl` (1.32): `kubectl
//! explain` prints the generated schemas, while client-side apply keeps
//! computing strategic merge patches from its compiled-in types (the v3
//! PATCH operations have no request body) and field validation stays on the
//! server.

use anyhow::{bail, Result};

mod support;

/// Every line of `want` appears in `text` (whitespace-normalized), else the text.
fn assert_lines(text: &str, want: &[&str]) {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let text_lines: Vec<String> = text.lines().map(squash).collect();
    for w in want {
        let w = squash(w);
        assert!(text_lines.iter().any(|l| l.contains(&w)), "missing {w:?} in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explain_prints_generated_schemas() -> Result<()> {
    let plane = support::Plane::apiserver().await?;

    let pods = plane.kubectl(&["explain", "pods"]).await?;
    assert_lines(
        &pods,
        &[
            "KIND: Pod",
            "VERSION: v1",
            "Pod is a collection of containers that can run on a host.",
            "FIELDS:",
            "metadata <ObjectMeta>",
            "spec <PodSpec>",
            "status <PodStatus>",
            "Specification of the desired behavior of the pod.",
        ],
    );
    assert!(!pods.contains("-required-"), "metadata is not required:\n{pods}");

    let resources = plane.kubectl(&["explain", "pod.spec.containers.resources"]).await?;
    assert_lines(
        &resources,
        &[
            "FIELD: resources <ResourceRequirements>",
            "ResourceRequirements describes the compute resource requirements.",
            "limits <map[string]Quantity>",
            "requests <map[string]Quantity>",
            "claims <[]ResourceClaim>",
        ],
    );

    let strategy = plane.kubectl(&["explain", "deployments.spec.strategy", "--api-version", "apps/v1"]).await?;
    assert_lines(
        &strategy,
        &[
            "GROUP: apps",
            "KIND: Deployment",
            "FIELD: strategy <DeploymentStrategy>",
            "The deployment strategy to use to replace existing pods with new ones.",
            "rollingUpdate <RollingUpdateDeployment>",
            "type <string>",
        ],
    );

    let jobs = plane.kubectl(&["explain", "jobs.spec", "--recursive"]).await?;
    assert_lines(
        &jobs,
        &[
            "GROUP: batch",
            "KIND: Job",
            "backoffLimit <integer>",
            "podFailurePolicy <PodFailurePolicy>",
            "containers <[]Container> -required-",
        ],
    );
    // Nested fields of the pod template, indented under it.
    assert!(jobs.lines().any(|l| l.starts_with("        image\t<string>")), "{jobs}");

    let containers = plane.kubectl(&["explain", "pods.spec.containers"]).await?;
    assert_lines(
        &containers,
        &["FIELD: containers <[]Container>", "A single application container", "name <string> -required-"],
    );

    let unknown = plane.kubectl_raw(&["explain", "pods.spec.nope"]).await?;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("field \"nope\" does not exist"));

    plane.stop().await;
    Ok(())
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: "25%"}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
"#;

/// Quantities and ports both as numbers and as strings.
const CONTAINER_A: &str = r#"      - name: a
        image: nginx:1.27
        ports:
        - {name: http, containerPort: 80}
        resources:
          limits: {cpu: 1, memory: 64Mi}
          requests: {cpu: 0.5, memory: 33554432}
        readinessProbe:
          httpGet: {path: /, port: http}
        livenessProbe:
          tcpSocket: {port: 80}
"#;

/// The Deployment with these containers.
fn deployment(containers: &[&str]) -> String {
    format!("{DEPLOYMENT}{}", containers.concat())
}

/// Runs kubectl on a manifest file in the plane's directory.
async fn kubectl_file(
    plane: &support::Plane,
    args: &[&str],
    name: &str,
    manifest: &str,
) -> Result<std::process::Output> {
    let path = plane.dir.path().join(name);
    tokio::fs::write(&path, manifest).await?;
    let path = path.to_string_lossy().into_owned();
    let mut all = args.to_vec();
    all.extend(["-f", path.as_str()]);
    plane.kubectl_raw(&all).await
}

/// `name=image` of the web Deployment's containers, in order.
async fn container_images(plane: &support::Plane) -> Result<String> {
    let jsonpath = "jsonpath={range .spec.template.spec.containers[*]}{.name}={.image} {end}";
    Ok(plane.kubectl(&["get", "deployment", "web", "-o", jsonpath]).await?.trim().to_string())
}

/// Requires success; returns stderr (kubectl's log).
fn ok(out: std::process::Output) -> Result<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("kubectl failed: {stderr}");
    }
    Ok(stderr.into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_and_validation_still_use_builtin_types_and_the_server() -> Result<()> {
    let plane = support::Plane::apiserver().await?;

    // A valid manifest with int-or-string quantities and ports is created.
    let b = "      - {name: b, image: busybox:1.36}\n";
    let two = deployment(&[CONTAINER_A, b]);
    ok(kubectl_file(&plane, &["create", "--validate=strict"], "web.yaml", &two).await?)?;
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports:\n  - {name: web, port: 80, targetPort: http}\n  - {name: alt, port: 81, targetPort: 8081}\n";
    ok(kubectl_file(&plane, &["create"], "svc.yaml", service).await?)?;
    ok(kubectl_file(&plane, &["delete"], "web.yaml", &two).await?)?;

    // Apply, someone else adds a container, then re-apply with b's image changed.
    ok(kubectl_file(&plane, &["apply"], "web.yaml", &two).await?)?;
    let extra = r#"{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:1.37"}]}}}}"#;
    plane.kubectl(&["patch", "deployment", "web", "--type=strategic", "-p", extra]).await?;
    let new_b = "      - {name: b, image: busybox:1.37}\n";
    let changed = deployment(&[CONTAINER_A, new_b]);
    // -v=5 shows which way kubectl chose to build the patch.
    let log = ok(kubectl_file(&plane, &["apply", "-v=5"], "web.yaml", &changed).await?)?;
    assert!(log.contains("OpenAPI V3 path does not support strategic merge patch"), "{log}");
    assert!(!log.contains("OpenAPI V3 path does not exist"), "the v3 document parses: {log}");
    assert!(!log.contains("error calculating patch"), "{log}");
    let images = container_images(&plane).await?;
    // Merged by name: a kept, b updated, the other manager's c still there.
    assert_eq!(images, "a=nginx:1.27 b=busybox:1.37 c=busybox:1.37");
    // Dropping a from the manifest deletes just a: only a patch built with
    // the compiled-in merge keys says so (`$patch: delete`); one built from
    // schemas without them would send a plain list that the server merges.
    ok(kubectl_file(&plane, &["apply"], "web.yaml", &deployment(&[new_b])).await?)?;
    let images = container_images(&plane).await?;
    assert_eq!(images, "b=busybox:1.37 c=busybox:1.37");

    // The core/v1 document parses too (kubectl finds the kind's PATCH operation).
    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: \"1\"}\n";
    ok(kubectl_file(&plane, &["apply"], "cm.yaml", config).await?)?;
    let log = ok(kubectl_file(&plane, &["apply", "-v=5"], "cm.yaml", &config.replace("a: \"1\"", "a: \"2\"")).await?)?;
    assert!(log.contains("OpenAPI V3 path does not support strategic merge patch"), "{log}");

    // Unknown fields are still refused (server-side strict validation), by name.
    let typo = two.replace("replicas: 1", "replicas: 1\n  replicaz: 3");
    let out = kubectl_file(&plane, &["apply", "--validate=strict"], "typo.yaml", &typo).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("replicaz"), "{stderr}");

    plane.stop().await;
    Ok(())
}
