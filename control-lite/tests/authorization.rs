//! Authorization with the real `/usr/bin/kubectl` against the in-process
//! apiserver: identities come from impersonation (`--as`, `--as-group`),
//! the only way to be someone else before authentication exists (a request
//! without identity is the insecure-port superuser).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

mod support;

use support::{eventually, kubectl, kubectl_ok, start_apiserver};

const NODE: [&str; 2] = ["--as=system:node:n1", "--as-group=system:nodes"];
const WAIT: Duration = Duration::from_secs(60);

/// `kubectl auth can-i` prints `yes`/`no` (exit 0/1).
async fn can_i(dir: &Path, args: &[&str]) -> Result<bool> {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let out = kubectl(dir, &all).await?;
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => bail!("can-i {args:?}: {other:?} {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// Waits until `can-i` answers `want` (the authorizer's view follows the store by a watch).
async fn expect_can_i(dir: &Path, args: &[&str], want: bool) -> Result<()> {
    eventually(&format!("can-i {args:?} == {want}"), WAIT, || async move {
        Ok((can_i(dir, args).await? == want).then_some(()))
    })
    .await
}

/// Runs kubectl expecting a 403 whose message contains `want`.
async fn forbidden(dir: &Path, args: &[&str], want: &str) -> Result<()> {
    let out = kubectl(dir, args).await?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !err.contains("is forbidden") || !err.contains(want) {
        bail!("kubectl {args:?}: want forbidden with {want:?}, got ok={} {err}", out.status.success());
    }
    Ok(())
}

fn with<'a>(args: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    args.iter().chain(extra).copied().collect()
}

const POD: &str = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team"},
  "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
    "envFrom": [{"configMapRef": {"name": "settings"}}]}],
    "volumes": [{"name": "creds", "secret": {"secretName": "used"}}]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_node_authorizer_and_impersonation_with_kubectl() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = start_apiserver(dir.path()).await?;
    let d = dir.path();

    // The superuser (no identity) may do anything; defaults are bootstrapped.
    assert!(can_i(d, &["*", "*"]).await?);
    let roles = kubectl_ok(d, &["get", "clusterroles", "-o", "name"]).await?;
    for want in ["cluster-admin", "admin", "edit", "view", "system:node", "system:discovery"] {
        assert!(
            roles.lines().any(|l| l == format!("clusterrole.rbac.authorization.k8s.io/{want}")),
            "{want} in {roles}"
        );
    }

    // A ServiceAccount-like user gets exactly its Role.
    kubectl_ok(d, &["create", "namespace", "team"]).await?;
    kubectl_ok(d, &["create", "role", "pod-reader", "-n", "team", "--verb=get,list,watch", "--resource=pods"]).await?;
    kubectl_ok(
        d,
        &["create", "rolebinding", "bot-reads", "-n", "team", "--role=pod-reader", "--serviceaccount=team:bot"],
    )
    .await?;
    let sa = "--as=system:serviceaccount:team:bot";
    expect_can_i(d, &["list", "pods", "-n", "team", sa], true).await?;
    assert!(!can_i(d, &["create", "pods", "-n", "team", sa]).await?);
    assert!(!can_i(d, &["list", "pods", "-n", "default", sa]).await?);
    assert!(!can_i(d, &["list", "secrets", "-n", "team", sa]).await?);

    // ClusterRoles and ClusterRoleBindings from kubectl's generators.
    kubectl_ok(d, &["create", "clusterrole", "node-reader", "--verb=get,list", "--resource=nodes"]).await?;
    kubectl_ok(d, &["create", "clusterrolebinding", "ops-read-nodes", "--clusterrole=node-reader", "--group=ops"])
        .await?;
    expect_can_i(d, &["list", "nodes", "--as=carol", "--as-group=ops"], true).await?;
    assert!(!can_i(d, &["delete", "nodes", "--as=carol", "--as-group=ops"]).await?);

    // A `view` RoleBinding: may list pods, may not create them (403, upstream wording).
    kubectl_ok(d, &["create", "rolebinding", "viewer", "-n", "team", "--clusterrole=view", "--user=viewer"]).await?;
    expect_can_i(d, &["list", "pods", "-n", "team", "--as=viewer"], true).await?;
    kubectl_ok(d, &["get", "pods", "-n", "team", "--as=viewer"]).await?;
    forbidden(
        d,
        &["create", "configmap", "x", "-n", "team", "--as=viewer"],
        r#"configmaps is forbidden: User "viewer" cannot create resource "configmaps" in API group "" in the namespace "team""#,
    )
    .await?;
    forbidden(d, &["get", "secrets", "-n", "team", "--as=viewer"], "cannot list resource \"secrets\"").await?;

    // A node: its own Node, and the Secrets its pods use.
    for n in ["n1", "n2"] {
        let node = format!(r#"{{"apiVersion": "v1", "kind": "Node", "metadata": {{"name": "{n}"}}}}"#);
        kubectl_ok(d, &["create", "-f", &write(d, n, &node)?]).await?;
    }
    kubectl_ok(d, &["create", "secret", "generic", "used", "-n", "team", "--from-literal=k=v"]).await?;
    kubectl_ok(d, &["create", "secret", "generic", "unused", "-n", "team", "--from-literal=k=v"]).await?;
    kubectl_ok(d, &["create", "configmap", "settings", "-n", "team", "--from-literal=k=v"]).await?;
    kubectl_ok(d, &["create", "-f", &write(d, "pod", POD)?]).await?;
    expect_can_i(d, &with(&NODE, &["get", "secret/used", "-n", "team"]), true).await?;
    kubectl_ok(d, &with(&NODE, &["get", "secret", "used", "-n", "team"])).await?;
    kubectl_ok(d, &with(&NODE, &["get", "configmap", "settings", "-n", "team"])).await?;
    forbidden(d, &with(&NODE, &["get", "secret", "unused", "-n", "team"]), r#"User "system:node:n1" cannot get"#)
        .await?;
    forbidden(d, &with(&NODE, &["get", "secrets", "-n", "team"]), "cannot list").await?;
    assert!(!can_i(d, &with(&NODE, &["get", "secret/unused", "-n", "team"])).await?);
    let label = r#"{"metadata": {"labels": {"x": "y"}}}"#;
    kubectl_ok(d, &with(&NODE, &["patch", "node", "n1", "-p", label])).await?;
    forbidden(
        d,
        &with(&NODE, &["patch", "node", "n2", "-p", label]),
        r#"nodes "n2" is forbidden: User "system:node:n1" cannot patch resource "nodes" in API group "" at the cluster scope"#,
    )
    .await?;
    assert!(can_i(d, &with(&NODE, &["list", "pods", "--all-namespaces"])).await?);
    assert!(!can_i(d, &with(&NODE, &["delete", "pods/other", "-n", "team"])).await?);
    assert!(can_i(d, &with(&NODE, &["delete", "pods/web", "-n", "team"])).await?);
    // NodeRestriction: only mirror pods bound to itself.
    forbidden(d, &with(&NODE, &["run", "plain", "-n", "team", "--image=busybox"]), "can only create mirror pods")
        .await?;

    // Anonymous: health and version only.
    let anon = ["--as=system:anonymous", "--as-group=system:unauthenticated"];
    kubectl_ok(d, &with(&anon, &["get", "--raw", "/healthz"])).await?;
    kubectl_ok(d, &with(&anon, &["get", "--raw", "/version"])).await?;
    forbidden(d, &with(&anon, &["get", "--raw", "/api/v1/namespaces/team/pods"]), "system:anonymous").await?;

    // The rules review lists what the viewer may do in the namespace.
    let rules = kubectl_ok(d, &["auth", "can-i", "--list", "-n", "team", "--as=viewer"]).await?;
    assert!(rules.lines().any(|l| l.starts_with("pods ") && l.contains("list")), "{rules}");

    api.token.cancel();
    Ok(())
}

/// A LocalSubjectAccessReview of `user` getting secrets in `ns`, posted to `url_ns`.
fn local_review(user: &str, ns: &str) -> String {
    format!(
        r#"{{"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
  "spec": {{"user": "{user}", "resourceAttributes": {{"verb": "get", "resource": "secrets", "namespace": "{ns}"}}}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_subject_access_reviews_answer_within_their_namespace() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = start_apiserver(dir.path()).await?;
    let d = dir.path();
    kubectl_ok(d, &["create", "namespace", "team"]).await?;
    kubectl_ok(d, &["create", "rolebinding", "ed", "-n", "team", "--clusterrole=edit", "--user=ed"]).await?;
    expect_can_i(d, &["get", "secrets", "-n", "team", "--as=ed"], true).await?;
    let review = |user: &str, ns: &str| {
        let file = write(d, &format!("lsar-{user}-{ns}"), &local_review(user, ns));
        async move { kubectl(d, &["create", "-n", "team", "-o", "json", "-f", &file?]).await }
    };
    let allowed = |out: std::process::Output| -> Result<bool> {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(v["metadata"]["namespace"], "team", "{v}");
        Ok(v["status"]["allowed"] == true)
    };
    assert!(allowed(review("ed", "team").await?)?);
    assert!(!allowed(review("someone", "team").await?)?);
    // The spec's namespace must be the URL's.
    let other = review("ed", "default").await?;
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success() && err.contains("must match metadata.namespace"), "{err}");
    api.token.cancel();
    Ok(())
}

fn write(dir: &Path, name: &str, body: &str) -> Result<String> {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, body)?;
    Ok(path.display().to_string())
}
