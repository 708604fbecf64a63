//! Who calls the kubelet API, as the apiserver's authenticators name users.

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct User {
    /// User name (a certificate's CN, a token's user).
    pub name: String,
    /// UID (tokens may carry one).
    pub uid: String,
    /// Groups (a certificate's O values, a token's groups).
    pub groups: Vec<String>,
}

impl User {
    /// The same user with `system:authenticated` among its groups.
    pub fn authenticated(mut self) -> User {
        if !self.groups.iter().any(|g| g == AUTHENTICATED) {
            self.groups.push(AUTHENTICATED.into());
        }
        self
    }
}
