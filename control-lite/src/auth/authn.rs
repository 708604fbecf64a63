//! Authentication: who a request is from. Upstream's order: a client
//! certificate verified against the cluster CA (CN = user, O = groups)
//! wins; otherwise an `Authorization: Bearer` token from the static token
//! file; otherwise the request is anonymous, which only the health and
//! version paths accept (everything else is 401 Unauthorized). A bearer
//! token that is not known is 401 on every path. Every authenticated user
//! also gets the group `system:authenticated`.

use super::tokens::TokenTable;
use super::user::{UserInfo, ANONYMOUS, AUTHENTICATED};

pub use crate::auth::user::UNAUTHENTICATED;

/// What the TLS handshake verified about the peer: the user its client
/// certificate names (put into every request's extensions by the
/// connection layer; `None` without a certificate).
#[derive(Debug, Clone, Default)]
pub struct PeerCert(pub Option<UserInfo>);

/// Why a request is refused with 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("invalid bearer token")]
    InvalidToken,
    #[error("no credentials")]
    NoCredentials,
}

/// The authenticators of one apiserver.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    tokens: TokenTable,
}

impl Authenticator {
    pub fn new(tokens: TokenTable) -> Authenticator {
        Authenticator { tokens }
    }

    /// The user of a request to `path` with these credentials.
    pub fn authenticate(
        &self,
        path: &str,
        cert: Option<&UserInfo>,
        authorization: Option<&str>,
    ) -> Result<UserInfo, Refused> {
        decide(path, cert, authorization, &self.tokens)
    }

    /// The user of a bearer token, exactly as a request carrying it would
    /// be authenticated (TokenReview answers with this).
    pub fn authenticate_token(&self, token: &str) -> Result<UserInfo, Refused> {
        self.authenticate("", None, Some(&format!("Bearer {token}")))
    }
}

/// The decision, as data: see the module overview.
pub fn decide(
    path: &str,
    cert: Option<&UserInfo>,
    authorization: Option<&str>,
    tokens: &TokenTable,
) -> Result<UserInfo, Refused> {
    if let Some(user) = cert {
        return Ok(authenticated(user.clone()));
    }
    if let Some(token) = authorization.and_then(bearer) {
        return tokens.user(token).cloned().map(authenticated).ok_or(Refused::InvalidToken);
    }
    if anonymous_may_read(path) {
        return Ok(UserInfo { name: ANONYMOUS.into(), uid: String::new(), groups: vec![UNAUTHENTICATED.into()] });
    }
    Err(Refused::NoCredentials)
}

/// The token of an `Authorization: Bearer <token>` header (scheme
/// case-insensitive); an empty token is none.
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Paths anyone may read: health and version, and their subpaths.
pub fn anonymous_may_read(path: &str) -> bool {
    ["/healthz", "/livez", "/readyz", "/version"]
        .iter()
        .any(|open| path.strip_prefix(open).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

fn authenticated(mut user: UserInfo) -> UserInfo {
    if !user.groups.iter().any(|g| g == AUTHENTICATED) {
        user.groups.push(AUTHENTICATED.into());
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::user::MASTERS;

    fn tokens() -> TokenTable {
        TokenTable::parse("sekret,alice,1001,\"dev\"\n").expect("tokens")
    }

    fn admin() -> UserInfo {
        UserInfo { name: "bosun-admin".into(), uid: String::new(), groups: vec![MASTERS.into()] }
    }

    #[test]
    fn a_client_certificate_wins_and_gains_system_authenticated() {
        let user = decide("/api/v1/secrets", Some(&admin()), Some("Bearer wrong"), &tokens()).expect("user");
        assert_eq!(user.name, "bosun-admin");
        assert_eq!(user.groups, [MASTERS, AUTHENTICATED]);
    }

    #[test]
    fn a_known_bearer_token_is_its_user() {
        for header in ["Bearer sekret", "bearer  sekret "] {
            let user = decide("/api/v1/pods", None, Some(header), &tokens()).expect("user");
            assert_eq!((user.name.as_str(), user.uid.as_str()), ("alice", "1001"));
            assert_eq!(user.groups, ["dev", AUTHENTICATED]);
        }
    }

    #[test]
    fn an_unknown_token_is_refused_everywhere() {
        for path in ["/api/v1/pods", "/healthz"] {
            assert_eq!(decide(path, None, Some("Bearer nope"), &tokens()), Err(Refused::InvalidToken), "{path}");
        }
    }

    #[test]
    fn anonymous_may_read_only_health_and_version() {
        for path in ["/healthz", "/livez", "/readyz", "/version", "/readyz/ping", "/healthz/etcd"] {
            let user = decide(path, None, None, &tokens()).expect(path);
            assert_eq!(
                (user.name.as_str(), user.groups.as_slice()),
                (ANONYMOUS, [UNAUTHENTICATED.to_string()].as_slice())
            );
        }
        for path in
            ["/api/v1/secrets", "/", "/api", "/healthzz", "/versions", "/openapi/v2", "/apis/metrics.k8s.io/v1beta1"]
        {
            assert_eq!(decide(path, None, None, &tokens()), Err(Refused::NoCredentials), "{path}");
        }
        // Another scheme is no credential.
        assert_eq!(decide("/api/v1/pods", None, Some("Basic YTpi"), &tokens()), Err(Refused::NoCredentials));
    }
}
