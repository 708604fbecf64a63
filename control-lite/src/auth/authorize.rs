//! The authorizer chain: `system:masters` → Node authorizer → RBAC; the
//! first that allows wins, and a request nobody allows is forbidden.

use super::attributes::Request;
use super::node;
use super::node_graph::NodeGraph;
use super::rbac::RbacSnapshot;
use super::user::{UserInfo, MASTERS};

/// An authorization decision with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, and by what.
    Allow(String),
    /// Nothing allows it (the reason may be empty, as upstream's RBAC denial is).
    Deny(String),
}

impl Decision {
    /// Whether the request may proceed.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// The decision for a member of `system:masters` (allowed everything), else `None`.
pub fn masters(user: &UserInfo) -> Option<Decision> {
    user.groups.iter().any(|g| g == MASTERS).then(|| Decision::Allow(format!("{MASTERS} may do anything")))
}

/// Decides `request` by `user` over the RBAC and node-graph snapshots.
pub fn authorize(user: &UserInfo, request: &Request, rbac: &RbacSnapshot, graph: &NodeGraph) -> Decision {
    if let Some(decision) = masters(user) {
        return decision;
    }
    if let Some(node) = node::node_name(user) {
        if node::authorize(node, request, graph) {
            return Decision::Allow(format!("node {node:?} may do this to its own objects"));
        }
    }
    match rbac.allows(user, request) {
        Some(reason) => Decision::Allow(reason),
        None => Decision::Deny(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::attributes::ResourceAttrs;

    #[test]
    fn masters_then_nodes_then_rbac() {
        let (rbac, graph) = (RbacSnapshot::default(), NodeGraph::default());
        let secret = Request::Resource(ResourceAttrs::new("get", "", "secrets", "d", "s"));
        let events = Request::Resource(ResourceAttrs::new("create", "", "events", "d", ""));
        let user = |name: &str, groups: &[&str]| UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        assert!(authorize(&user("root", &[MASTERS]), &secret, &rbac, &graph).allowed());
        assert!(!authorize(&user("alice", &["system:authenticated"]), &secret, &rbac, &graph).allowed());
        let node = user("system:node:n1", &["system:nodes"]);
        assert!(authorize(&node, &events, &rbac, &graph).allowed());
        assert_eq!(authorize(&node, &secret, &rbac, &graph), Decision::Deny(String::new()));
    }
}
