//! Who is asking: the identity authentication establishes and authorization checks.

/// An authenticated (or impersonated) user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    /// User name, e.g. `system:node:n1` or `system:serviceaccount:ns:sa`.
    pub name: String,
    /// Unique id of the user, if known.
    pub uid: String,
    /// Groups the user is a member of.
    pub groups: Vec<String>,
}

/// The user name of unauthenticated requests.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of every authenticated user.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of every request without credentials.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group that is allowed everything.
pub const MASTERS: &str = "system:masters";
