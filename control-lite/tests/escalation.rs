//! RBAC escalation prevention with the real `/usr/bin/kubectl` against the
//! in-process apiserver: a user who may write Roles and RoleBindings may
//! grant only what it holds, unless it may `escalate` roles or `bind` the
//! role; `system:masters` may grant anything.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

mod support;

use support::{eventually, kubectl, kubectl_ok, start_apiserver};

const WAIT: Duration = Duration::from_secs(60);
const AS: &str = "--as=mallory";
const RBAC: &str = "rbac.authorization.k8s.io";

/// Waits until `kubectl auth can-i` answers yes (the authorizer follows the store by a watch).
async fn expect_can(dir: &Path, args: &[&str]) -> Result<()> {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let all = &all;
    eventually(&format!("can-i {args:?}"), WAIT, || async move {
        let out = kubectl(dir, all).await?;
        Ok((String::from_utf8_lossy(&out.stdout).trim() == "yes").then_some(()))
    })
    .await
}

/// Runs kubectl expecting a 403 whose message contains every one of `want`.
async fn forbidden(dir: &Path, args: &[&str], want: &[&str]) -> Result<()> {
    let out = kubectl(dir, args).await?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !err.contains("is forbidden") || !want.iter().all(|w| err.contains(w)) {
        bail!("kubectl {args:?}: want forbidden with {want:?}, got ok={} {err}", out.status.success());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_held_permissions_are_granted_unless_escalate_or_bind() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = start_apiserver(dir.path()).await?;
    let d = dir.path();

    // mallory may write Roles and RoleBindings in `team`, and read pods; not secrets.
    kubectl_ok(d, &["create", "namespace", "team"]).await?;
    let writer = ["create", "role", "rbac-writer", "-n", "team", "--verb=get,list,create,update,patch,delete"];
    let resources = "--resource=roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io,pods";
    kubectl_ok(d, &[&writer[..], &[resources]].concat()).await?;
    kubectl_ok(d, &["create", "rolebinding", "rbac-writer", "-n", "team", "--role=rbac-writer", "--user=mallory"])
        .await?;
    expect_can(d, &["create", "roles", "-n", "team", AS]).await?;

    // A Role within its rights, and a binding to it, are fine.
    kubectl_ok(d, &["create", "role", "pod-reader", "-n", "team", "--verb=get,list", "--resource=pods", AS]).await?;
    kubectl_ok(d, &["create", "rolebinding", "bot", "-n", "team", "--role=pod-reader", "--user=bot", AS]).await?;

    // A Role granting `get secrets` is refused with upstream's message; so is a patch adding it.
    let refusal = "is attempting to grant RBAC permissions not currently held:\n\
                   {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}";
    let peek = ["create", "role", "peek", "-n", "team", "--verb=get", "--resource=secrets", AS];
    forbidden(
        d,
        &peek,
        &[
            r#"roles.rbac.authorization.k8s.io "peek" is forbidden: user "mallory" (groups=["system:authenticated"])"#,
            refusal,
        ],
    )
    .await?;
    let add = r#"[{"op": "add", "path": "/rules/-", "value": {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}}]"#;
    forbidden(d, &["patch", "role", "pod-reader", "-n", "team", "--type=json", "-p", add, AS], &[refusal]).await?;

    // A RoleBinding to `admin` is refused; so is one to a role that does not exist.
    let grab = ["create", "rolebinding", "grab", "-n", "team", "--clusterrole=admin", "--user=mallory", AS];
    forbidden(
        d,
        &grab,
        &[r#"rolebindings.rbac.authorization.k8s.io "grab" is forbidden: user "mallory""#, "not currently held"],
    )
    .await?;
    let ghost = kubectl(d, &["create", "rolebinding", "ghost", "-n", "team", "--role=nope", "--user=x", AS]).await?;
    assert!(String::from_utf8_lossy(&ghost.stderr).contains("not found"), "{ghost:?}");

    // With `escalate` on roles, the Role is accepted.
    let verb = |v: &str| format!("--verb={v}");
    let escalate = verb("escalate");
    kubectl_ok(d, &["create", "role", "escalator", "-n", "team", &escalate, &format!("--resource=roles.{RBAC}")])
        .await?;
    kubectl_ok(d, &["create", "rolebinding", "escalator", "-n", "team", "--role=escalator", "--user=mallory"]).await?;
    expect_can(d, &["escalate", &format!("roles.{RBAC}"), "-n", "team", AS]).await?;
    kubectl_ok(d, &peek).await?;

    // With `bind` on ClusterRole `admin` (by name), the binding is accepted; `cluster-admin` stays refused.
    let bind = verb("bind");
    let clusterroles = format!("--resource=clusterroles.{RBAC}");
    kubectl_ok(d, &["create", "clusterrole", "admin-binder", &bind, &clusterroles, "--resource-name=admin"]).await?;
    kubectl_ok(
        d,
        &["create", "rolebinding", "admin-binder", "-n", "team", "--clusterrole=admin-binder", "--user=mallory"],
    )
    .await?;
    expect_can(d, &["bind", &format!("clusterroles.{RBAC}/admin"), "-n", "team", AS]).await?;
    kubectl_ok(d, &grab).await?;
    let root = ["create", "rolebinding", "root", "-n", "team", "--clusterrole=cluster-admin", "--user=mallory", AS];
    forbidden(d, &root, &["not currently held"]).await?;

    // A ClusterRole needs its permissions cluster-wide: `get pods` held only in `team` is not enough,
    // and an aggregationRule needs full authority.
    let crw = ["create", "clusterrole", "cr-writer", "--verb=create", &clusterroles];
    kubectl_ok(d, &crw).await?;
    kubectl_ok(d, &["create", "clusterrolebinding", "cr-writer", "--clusterrole=cr-writer", "--user=mallory"]).await?;
    expect_can(d, &["create", &format!("clusterroles.{RBAC}"), AS]).await?;
    let wide = ["create", "clusterrole", "wide", "--verb=get", "--resource=pods", AS];
    forbidden(d, &wide, &[r#"clusterroles.rbac.authorization.k8s.io "wide" is forbidden"#, "Resources:[\"pods\"]"])
        .await?;
    let aggregate = ["create", "clusterrole", "agg", "--aggregation-rule=x=y", AS];
    forbidden(d, &aggregate, &["must have cluster-admin privileges to use the aggregationRule"]).await?;

    // An admin (system:masters) grants anything.
    let admin = ["--as=root", "--as-group=system:masters"];
    kubectl_ok(
        d,
        &[&["create", "role", "secrets", "-n", "team", "--verb=*", "--resource=secrets"][..], &admin].concat(),
    )
    .await?;
    kubectl_ok(
        d,
        &[&["create", "rolebinding", "root", "-n", "team", "--clusterrole=cluster-admin", "--user=x"][..], &admin]
            .concat(),
    )
    .await?;

    api.token.cancel();
    Ok(())
}
