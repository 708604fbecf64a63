//! Authorization on the real stack (`bosun up`, real kubectl). Before
//! authentication exists every request without identity is the local
//! superuser (so the agent, scheduler and controllers keep working, which
//! the running pod below proves); other identities come from impersonation
//! (`--as`, `--as-group`):
//! - `kubectl auth can-i` for the admin, the node and a ServiceAccount
//!   granted a Role with `kubectl create role/rolebinding`;
//! - the node reads the Secret its running pod mounts, and gets 403 for a
//!   Secret no pod of it uses and for patching another Node;
//! - a user with a `view` RoleBinding lists pods but may not create them.

mod support;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use support::cluster::Cluster;
use support::pods::wait_pod;

const NODE_NAME: &str = "authz-node";
const AS_NODE: [&str; 2] = ["--as=system:node:authz-node", "--as-group=system:nodes"];
const SA: &str = "--as=system:serviceaccount:default:bot";
const WAIT: Duration = Duration::from_secs(120);

fn with<'a>(who: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
    who.iter().chain(args).copied().collect()
}

/// `kubectl auth can-i` (yes: exit 0, no: exit 1).
fn can_i(cluster: &Cluster, args: &[&str]) -> Result<bool> {
    let (_, out, err) = cluster.kubectl(&with(&["auth", "can-i"], args))?;
    match out.trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => bail!("can-i {args:?}: {other:?} {err}"),
    }
}

/// Waits until `can-i` answers `want` (the authorizer's view follows the store by a watch).
fn wait_can_i(cluster: &Cluster, args: &[&str], want: bool) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while can_i(cluster, args)? != want {
        ensure!(Instant::now() < deadline, "can-i {args:?} is not {want} after {WAIT:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// The command fails with a 403 whose message contains `want`.
fn forbidden(cluster: &Cluster, args: &[&str], want: &str) -> Result<()> {
    let (ok, out, err) = cluster.kubectl(args)?;
    ensure!(
        !ok && err.contains("is forbidden") && err.contains(want),
        "kubectl {args:?}: want 403 with {want:?}: {err}{out}"
    );
    Ok(())
}

#[test]
fn rbac_and_node_authorization_with_kubectl() -> Result<()> {
    let cluster = Cluster::start(NODE_NAME)?;
    let image = format!("{}/bosun/app:1.0", cluster.registry);

    // The admin (no identity: the superuser) may do anything.
    ensure!(can_i(&cluster, &["*", "*"])?, "admin can do anything");

    // A pod of the node mounts one Secret; another Secret is used by no pod.
    cluster.kubectl_ok(&["create", "secret", "generic", "mounted", "--from-literal=k=v"])?;
    cluster.kubectl_ok(&["create", "secret", "generic", "unused", "--from-literal=k=v"])?;
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: reader\nspec:\n  containers:\n    - name: c\n      image: {image}\n      command: [\"sleep\", \"3600\"]\n      volumeMounts:\n        - {{ name: s, mountPath: /s }}\n  volumes:\n    - name: s\n      secret:\n        secretName: mounted\n"
    );
    let (ok, out, err) = cluster.apply_stdin(&pod)?;
    ensure!(ok, "apply pod: {err}{out}");
    wait_pod(&cluster, "reader", "Running", WAIT, |p| p["status"]["phase"] == "Running")?;

    // The node: its pod's Secret yes, any other no; its own Node only.
    wait_can_i(&cluster, &with(&AS_NODE, &["get", "secret/mounted"]), true)?;
    cluster.kubectl_ok(&with(&AS_NODE, &["get", "secret", "mounted"]))?;
    forbidden(
        &cluster,
        &with(&AS_NODE, &["get", "secret", "unused"]),
        r#"secrets "unused" is forbidden: User "system:node:authz-node" cannot get resource "secrets" in API group "" in the namespace "default""#,
    )?;
    ensure!(!can_i(&cluster, &with(&AS_NODE, &["get", "secret/unused"]))?, "node may not read unused");
    ensure!(can_i(&cluster, &with(&AS_NODE, &["patch", "node/authz-node"]))?, "node may patch itself");
    let label = r#"{"metadata": {"labels": {"authz": "self"}}}"#;
    cluster.kubectl_ok(&with(&AS_NODE, &["patch", "node", NODE_NAME, "-p", label]))?;
    // Another Node (tainted: nothing is scheduled to this object without an agent).
    let other = "apiVersion: v1\nkind: Node\nmetadata:\n  name: other-node\nspec:\n  taints: [{key: authz-test, effect: NoSchedule}]\n";
    let (ok, out, err) = cluster.apply_stdin(other)?;
    ensure!(ok, "create other-node: {err}{out}");
    forbidden(
        &cluster,
        &with(&AS_NODE, &["patch", "node", "other-node", "-p", label]),
        r#"nodes "other-node" is forbidden: User "system:node:authz-node" cannot patch resource "nodes" in API group "" at the cluster scope"#,
    )?;
    cluster.kubectl_ok(&["delete", "node", "other-node"])?;

    // A ServiceAccount: exactly its Role.
    cluster.kubectl_ok(&["create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods"])?;
    cluster.kubectl_ok(&["create", "rolebinding", "bot-reads", "--role=pod-reader", "--serviceaccount=default:bot"])?;
    wait_can_i(&cluster, &["list", "pods", SA], true)?;
    ensure!(!can_i(&cluster, &["create", "pods", SA])?, "bot may not create pods");
    ensure!(!can_i(&cluster, &["get", "secrets", SA])?, "bot may not read secrets");

    // `view`: list pods, not create them.
    cluster.kubectl_ok(&["create", "rolebinding", "viewer", "--clusterrole=view", "--user=viewer"])?;
    wait_can_i(&cluster, &["list", "pods", "--as=viewer"], true)?;
    let listed = cluster.kubectl_ok(&["get", "pods", "--as=viewer", "-o", "name"])?;
    ensure!(listed.contains("pod/reader"), "viewer lists pods: {listed}");
    forbidden(
        &cluster,
        &["run", "intruder", "--image", &image, "--as=viewer"],
        r#"User "viewer" cannot create resource "pods" in API group "" in the namespace "default""#,
    )?;

    // The agent kept working throughout (its requests carry no identity).
    let node = cluster.json(&["get", "node", NODE_NAME])?;
    ensure!(support::pods::is_ready(&node), "node still Ready: {node}");
    Ok(())
}
