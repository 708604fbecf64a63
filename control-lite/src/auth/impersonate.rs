//! Impersonation (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`;
//! kubectl's `--as`, `--as-group`, `--as-uid`): which `impersonate` checks the
//! real user must pass, and the user the request then runs as (pure).

use super::attributes::ResourceAttrs;
use super::user::{UserInfo, ANONYMOUS, AUTHENTICATED};

/// `Impersonate-User`.
pub const USER_HEADER: &str = "impersonate-user";
/// `Impersonate-Group` (repeatable).
pub const GROUP_HEADER: &str = "impersonate-group";
/// `Impersonate-Uid`.
pub const UID_HEADER: &str = "impersonate-uid";

const SA_PREFIX: &str = "system:serviceaccount:";

/// What the request asks to act as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Impersonation {
    /// The user name.
    pub user: String,
    /// Groups asked for.
    pub groups: Vec<String>,
    /// The uid asked for (`""`: none).
    pub uid: String,
}

/// Errors of impersonation headers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Groups or uid without a user.
    #[error("requested {0} without impersonating a user")]
    NoUser(String),
}

/// Reads the headers' values (`None`: no impersonation asked).
pub fn parse(user: Option<&str>, groups: Vec<String>, uid: Option<&str>) -> Result<Option<Impersonation>, Error> {
    let uid = uid.unwrap_or_default().to_string();
    match user.filter(|u| !u.is_empty()) {
        Some(user) => Ok(Some(Impersonation { user: user.to_string(), groups, uid })),
        None if !groups.is_empty() => Err(Error::NoUser(format!("groups {groups:?}"))),
        None if !uid.is_empty() => Err(Error::NoUser(format!("uid {uid:?}"))),
        None => Ok(None),
    }
}

/// The `impersonate` checks the real user must pass, one per asked identity:
/// `users` (or `serviceaccounts` in their namespace), `groups`, `uids`.
pub fn required_checks(imp: &Impersonation) -> Vec<ResourceAttrs> {
    let mut out = vec![match service_account(&imp.user) {
        Some((ns, name)) => ResourceAttrs::new("impersonate", "", "serviceaccounts", ns, name),
        None => ResourceAttrs::new("impersonate", "", "users", "", &imp.user),
    }];
    out.extend(imp.groups.iter().map(|g| ResourceAttrs::new("impersonate", "", "groups", "", g)));
    if !imp.uid.is_empty() {
        out.push(ResourceAttrs::new("impersonate", "authentication.k8s.io", "uids", "", &imp.uid));
    }
    out
}

fn service_account(user: &str) -> Option<(&str, &str)> {
    user.strip_prefix(SA_PREFIX)?.split_once(':').filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
}

/// The user the request runs as: the asked groups (a ServiceAccount also
/// gets `system:serviceaccounts` and `system:serviceaccounts:<ns>` when no
/// group was asked), plus `system:authenticated` unless anonymous.
pub fn impersonated_user(imp: &Impersonation) -> UserInfo {
    let mut groups = imp.groups.clone();
    if groups.is_empty() {
        if let Some((ns, _)) = service_account(&imp.user) {
            groups = vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")];
        }
    }
    if imp.user != ANONYMOUS && !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.into());
    }
    UserInfo { name: imp.user.clone(), uid: imp.uid.clone(), groups }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_need_a_user() {
        assert_eq!(parse(None, vec![], None), Ok(None));
        assert!(parse(None, vec!["g".into()], None).is_err());
        assert!(parse(None, vec![], Some("u1")).is_err());
        let imp = parse(Some("alice"), vec!["g".into()], None).ok().flatten().unwrap_or_default();
        assert_eq!(imp.user, "alice");
    }

    #[test]
    fn checks_and_resulting_users() {
        let node =
            Impersonation { user: "system:node:n1".into(), groups: vec!["system:nodes".into()], uid: String::new() };
        assert_eq!(
            required_checks(&node),
            vec![
                ResourceAttrs::new("impersonate", "", "users", "", "system:node:n1"),
                ResourceAttrs::new("impersonate", "", "groups", "", "system:nodes"),
            ]
        );
        assert_eq!(impersonated_user(&node).groups, vec!["system:nodes", AUTHENTICATED]);
        let sa = Impersonation { user: "system:serviceaccount:ns:sa".into(), ..Impersonation::default() };
        assert_eq!(required_checks(&sa), vec![ResourceAttrs::new("impersonate", "", "serviceaccounts", "ns", "sa")]);
        assert_eq!(
            impersonated_user(&sa).groups,
            vec!["system:serviceaccounts", "system:serviceaccounts:ns", AUTHENTICATED]
        );
        let anon =
            Impersonation { user: ANONYMOUS.into(), groups: vec!["system:unauthenticated".into()], uid: "u".into() };
        assert_eq!(impersonated_user(&anon).groups, vec!["system:unauthenticated"]);
        assert_eq!(required_checks(&anon).len(), 3);
    }
}
