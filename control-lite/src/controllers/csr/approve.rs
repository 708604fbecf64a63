//! The approving decision (upstream's `csrapproving` SubjectAccessReview
//! approver): a node client request — signer
//! `kubernetes.io/kube-apiserver-client-kubelet`, CN `system:node:<name>`, O
//! exactly `system:nodes`, no SANs, usages `client auth` with at most
//! `digital signature` and `key encipherment` — is approved when its
//! requester may create `certificatesigningrequests/selfnodeclient` (renewing
//! its own identity: the requester is the CN) or
//! `certificatesigningrequests/nodeclient` (anyone's, e.g. a bootstrap
//! token). Anything else is left alone: pending for a human.

use serde_json::Value;

use crate::apiserver::certificates::{has_condition, request_bytes, APPROVED, DENIED};
use crate::auth::csr::{self, Request};

/// The signer of kubelet client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The group every node identity is in.
pub const NODES_GROUP: &str = crate::auth::node::NODES_GROUP;
/// The usages a node client request may ask for (client auth required).
pub const NODE_CLIENT_USAGES: &[&str] = &["client auth", "digital signature", "key encipherment"];

/// The subresource whose `create` permission approves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// `certificatesigningrequests/selfnodeclient`: a node renewing its own certificate.
    SelfNodeClient,
    /// `certificatesigningrequests/nodeclient`: any node client certificate.
    NodeClient,
}

impl Permission {
    /// The subresource the SubjectAccessReview asks about.
    pub fn subresource(self) -> &'static str {
        match self {
            Permission::SelfNodeClient => "selfnodeclient",
            Permission::NodeClient => "nodeclient",
        }
    }

    /// The Approved condition's message, as upstream.
    pub fn message(self) -> &'static str {
        match self {
            Permission::SelfNodeClient => "Auto approving self kubelet client certificate after SubjectAccessReview.",
            Permission::NodeClient => "Auto approving kubelet client certificate after SubjectAccessReview.",
        }
    }
}

/// Whether `req` with `usages` is a node client certificate request.
pub fn is_node_client(req: &Request, usages: &[&str]) -> bool {
    req.organizations == [NODES_GROUP]
        && req.common_name.strip_prefix(crate::auth::node::NODE_USER_PREFIX).is_some_and(|n| !n.is_empty())
        && req.dns_names.is_empty()
        && req.ips.is_empty()
        && req.other_sans == 0
        && usages.contains(&"client auth")
        && usages.iter().all(|u| NODE_CLIENT_USAGES.contains(u))
}

/// The usages of a request object.
pub fn usages(obj: &Value) -> Vec<&str> {
    obj.pointer("/spec/usages").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect()
}

/// The permissions that would approve `obj`, in the order to ask (none:
/// not ours to approve, or decided already).
pub fn candidates(obj: &Value) -> Vec<Permission> {
    if has_condition(obj, APPROVED) || has_condition(obj, DENIED) {
        return Vec::new();
    }
    if obj.pointer("/spec/signerName").and_then(Value::as_str) != Some(KUBELET_CLIENT_SIGNER) {
        return Vec::new();
    }
    let Some(req) = request_bytes(obj).and_then(|b| csr::parse_pem(&b).ok()) else { return Vec::new() };
    if !is_node_client(&req, &usages(obj)) {
        return Vec::new();
    }
    let requester = obj.pointer("/spec/username").and_then(Value::as_str).unwrap_or_default();
    if requester == req.common_name {
        vec![Permission::SelfNodeClient, Permission::NodeClient]
    } else {
        vec![Permission::NodeClient]
    }
}

/// The first permission the requester holds (`allowed` asks the
/// authorizer), which approves the request; `None` leaves it pending.
pub fn decide(candidates: &[Permission], mut allowed: impl FnMut(Permission) -> bool) -> Option<Permission> {
    candidates.iter().copied().find(|p| allowed(*p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    fn obj(cn: &str, orgs: &[&str], signer: &str, usages: &[&str], username: &str) -> Value {
        let key = rcgen::KeyPair::generate().expect("key");
        let pem = csr::make_pem(cn, orgs, &key).expect("csr");
        json!({"spec": {"request": base64::engine::general_purpose::STANDARD.encode(pem), "signerName": signer,
            "usages": usages, "username": username}})
    }

    #[test]
    fn only_node_client_requests_are_candidates() {
        use Permission::*;
        let node = "system:node:n1";
        let nodes: &[&str] = &[NODES_GROUP];
        let client: &[&str] = &["client auth", "digital signature", "key encipherment"];
        let boot = "system:bootstrap:abcdef";
        let cases: Vec<(&str, Value, Vec<Permission>)> = vec![
            ("bootstrap", obj(node, nodes, KUBELET_CLIENT_SIGNER, client, boot), vec![NodeClient]),
            (
                "renewal",
                obj(node, nodes, KUBELET_CLIENT_SIGNER, &["client auth"], node),
                vec![SelfNodeClient, NodeClient],
            ),
            ("other signer", obj(node, nodes, "kubernetes.io/kube-apiserver-client", client, boot), vec![]),
            ("not a node", obj("alice", nodes, KUBELET_CLIENT_SIGNER, client, boot), vec![]),
            ("empty node", obj("system:node:", nodes, KUBELET_CLIENT_SIGNER, client, boot), vec![]),
            ("extra org", obj(node, &[NODES_GROUP, "system:masters"], KUBELET_CLIENT_SIGNER, client, boot), vec![]),
            ("server auth", obj(node, nodes, KUBELET_CLIENT_SIGNER, &["client auth", "server auth"], boot), vec![]),
            ("no client auth", obj(node, nodes, KUBELET_CLIENT_SIGNER, &["digital signature"], boot), vec![]),
        ];
        for (what, o, want) in cases {
            assert_eq!(candidates(&o), want, "{what}");
        }
        let mut decided = obj(node, nodes, KUBELET_CLIENT_SIGNER, client, boot);
        decided["status"] = json!({"conditions": [{"type": DENIED, "status": "True"}]});
        assert_eq!(candidates(&decided), vec![]);
    }

    #[test]
    fn the_first_held_permission_approves() {
        use Permission::*;
        let both = [SelfNodeClient, NodeClient];
        assert_eq!(decide(&both, |_| true), Some(SelfNodeClient));
        assert_eq!(decide(&both, |p| p == NodeClient), Some(NodeClient));
        assert_eq!(decide(&both, |_| false), None);
        assert_eq!(decide(&[], |_| true), None);
    }
}
