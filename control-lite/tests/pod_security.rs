//! Pod Security Admission end to end against the in-process apiserver, with
//! the real kubectl: an `enforce` namespace refuses a privileged pod with
//! upstream's message and accepts a restricted one; a `warn` namespace
//! admits with `Warning:` lines on kubectl's stderr; workloads only warn;
//! labelling a namespace reports the existing pods that violate the new
//! level; an invalid label value is refused; with an
//! `AdmissionConfiguration`, unlabelled namespaces get its default level and
//! its exempt namespaces and users are not evaluated.

use anyhow::{bail, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::Api;
use serde_json::json;

mod support;

use support::Plane;

const PRIVILEGED: &str = "apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  containers:
  - name: c
    image: busybox
    securityContext: {privileged: true}
";

const RESTRICTED: &str = "apiVersion: v1
kind: Pod
metadata: {name: locked}
spec:
  securityContext:
    runAsNonRoot: true
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: c
    image: busybox
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
";

const PLAIN: &str = "apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  containers:
  - name: c
    image: busybox
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: busybox
        securityContext: {privileged: true}
";

/// Writes `manifest` into the plane's directory; returns its path.
fn manifest(plane: &Plane, name: &str, text: &str) -> Result<String> {
    let path = plane.dir.path().join(name);
    std::fs::write(&path, text)?;
    Ok(path.to_string_lossy().into_owned())
}

/// kubectl that must succeed; returns (stdout, stderr).
async fn ok(plane: &Plane, args: &[&str]) -> Result<(String, String)> {
    let out = plane.kubectl_raw(args).await?;
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    if !out.status.success() {
        bail!("kubectl {args:?} failed: {stderr}");
    }
    Ok((stdout, stderr))
}

/// kubectl that must fail; returns its stderr.
async fn fails(plane: &Plane, args: &[&str]) -> Result<String> {
    let out = plane.kubectl_raw(args).await?;
    if out.status.success() {
        bail!("kubectl {args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    }
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn kubectl_sees_enforce_refusals_and_warn_warnings() -> Result<()> {
    let plane = Plane::apiserver().await?;
    let (privileged, restricted, plain, deployment) = (
        manifest(&plane, "priv.yaml", PRIVILEGED)?,
        manifest(&plane, "locked.yaml", RESTRICTED)?,
        manifest(&plane, "plain.yaml", PLAIN)?,
        manifest(&plane, "web.yaml", DEPLOYMENT)?,
    );

    ok(&plane, &["create", "ns", "strict"]).await?;
    ok(&plane, &["label", "ns", "strict", "pod-security.kubernetes.io/enforce=restricted"]).await?;
    let refused = fails(&plane, &["apply", "-n", "strict", "-f", &privileged]).await?;
    let want = "pods \"priv\" is forbidden: violates PodSecurity \"restricted:latest\": \
        privileged (container \"c\" must not set securityContext.privileged=true), \
        allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
        unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
        runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
        seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";
    assert!(refused.contains("Error from server (Forbidden)") && refused.contains(want), "{refused}");
    let (out, err) = ok(&plane, &["apply", "-n", "strict", "-f", &restricted]).await?;
    assert!(out.contains("pod/locked created") && !err.contains("Warning"), "{out}{err}");
    // Workloads are never refused; the unset warn level follows enforce.
    let (out, err) = ok(&plane, &["apply", "-n", "strict", "-f", &deployment]).await?;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    assert!(
        err.contains("Warning: would violate PodSecurity \"restricted:latest\": privileged (container \"c\""),
        "{err}"
    );

    ok(&plane, &["create", "ns", "loose"]).await?;
    ok(&plane, &["label", "ns", "loose", "pod-security.kubernetes.io/warn=baseline"]).await?;
    let (out, err) = ok(&plane, &["apply", "-n", "loose", "-f", &privileged]).await?;
    assert!(out.contains("pod/priv created"), "{out}");
    assert!(
        err.contains(
            "Warning: would violate PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"
        ),
        "{err}"
    );
    ok(&plane, &["apply", "-n", "loose", "-f", &plain]).await?;

    // Enforcing on a namespace with pods reports the ones that would be refused.
    let (_, err) = ok(&plane, &["label", "ns", "loose", "pod-security.kubernetes.io/enforce=baseline"]).await?;
    assert!(
        err.contains(
            "Warning: existing pods in namespace \"loose\" violate the new PodSecurity enforce level \"baseline:latest\""
        ) && err.contains("Warning: priv: privileged")
            && !err.contains("plain:"),
        "{err}"
    );

    let invalid =
        fails(&plane, &["label", "ns", "loose", "--overwrite", "pod-security.kubernetes.io/enforce=bogus"]).await?;
    assert!(
        invalid.contains("metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"bogus\""),
        "{invalid}"
    );
    plane.stop().await;
    Ok(())
}

#[tokio::test]
async fn api_clients_get_403_and_dry_runs_are_evaluated() -> Result<()> {
    let plane = Plane::apiserver().await?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(plane.client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": "base",
        "labels": {"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "v1.30"}}}))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    let pods: Api<Pod> = Api::namespaced(plane.client.clone(), "base");
    let host: Pod = serde_json::from_value(json!({
        "metadata": {"name": "host", "annotations": {"kubernetes.io/config.mirror": "x"}},
        "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "busybox"}]}
    }))?;
    let dry = PostParams { dry_run: true, ..PostParams::default() };
    for params in [&dry, &PostParams::default()] {
        match pods.create(params, &host).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
                assert_eq!(
                    e.message,
                    "pods \"host\" is forbidden: violates PodSecurity \"baseline:v1.30\": host namespaces (hostNetwork=true)"
                );
            }
            other => bail!("expected 403, got {other:?}"),
        }
    }
    assert!(pods.get_opt("host").await?.is_none());
    plane.stop().await;
    Ok(())
}

const ADMISSION_CONFIG: &str = "apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults: {enforce: baseline}
    exemptions: {namespaces: [ops]}
";

#[tokio::test]
async fn cluster_defaults_and_exemptions_from_an_admission_configuration() -> Result<()> {
    let config = bosun_control::apiserver::pod_security::config::parse_admission_config(ADMISSION_CONFIG)?;
    let plane = Plane::apiserver_with(|state| state.with_pod_security(config)).await?;
    let privileged = manifest(&plane, "priv.yaml", PRIVILEGED)?;
    // `default` has no label: the cluster's default (baseline) refuses.
    let refused = fails(&plane, &["apply", "-f", &privileged]).await?;
    assert!(refused.contains("violates PodSecurity \"baseline:latest\": privileged"), "{refused}");
    // The exempt namespace admits it with no warning.
    ok(&plane, &["create", "namespace", "ops"]).await?;
    let (_, stderr) = ok(&plane, &["-n", "ops", "apply", "-f", &privileged]).await?;
    assert!(!stderr.contains("Warning"), "exempt: no evaluation at all: {stderr}");
    // A namespace's own label still wins over the default.
    ok(&plane, &["create", "namespace", "lab"]).await?;
    ok(&plane, &["label", "namespace", "lab", "pod-security.kubernetes.io/enforce=privileged"]).await?;
    ok(&plane, &["-n", "lab", "apply", "-f", &privileged]).await?;
    plane.stop().await;
    Ok(())
}
