//! Authentication: who a request is from. Upstream's order: a client
//! certificate verified against the cluster CA (CN = user, O = groups)
//! wins; otherwise an `Authorization: Bearer` token from the static token
//! file, or a ServiceAccount token (a JWT our key signed: its claims still
//! need [`super::sa_token::decide`] with the objects they name, which the
//! HTTP layer looks up); otherwise the request is anonymous, which only the
//! health and version paths accept (everything else is 401 Unauthorized). A
//! bearer token of the bootstrap form (`[a-z0-9]{6}.[a-z0-9]{16}`) is checked
//! against its Secret by the HTTP layer ([`super::bootstrap_token`]). A
//! bearer token that is not known is 401 on every path. Every authenticated
//! user also gets the group `system:authenticated`.

use std::sync::Arc;

use super::sa_token::key::SigningKey;
use super::sa_token::{looks_like_jwt, Claims};
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

/// Who the credentials name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identified {
    /// A user, final.
    User(UserInfo),
    /// A signed ServiceAccount token: its claims are checked against the
    /// store by [`super::sa_token::decide`].
    ServiceAccount(Box<Claims>),
    /// A bootstrap token `id.secret`: checked against its Secret by
    /// [`super::bootstrap_token::decide`].
    BootstrapToken { id: String, secret: String },
}

/// The authenticators of one apiserver.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    tokens: TokenTable,
    service_accounts: Option<Arc<SigningKey>>,
}

impl Authenticator {
    pub fn new(tokens: TokenTable) -> Authenticator {
        Authenticator { tokens, service_accounts: None }
    }

    /// Also accepts ServiceAccount tokens signed by `key`.
    pub fn with_service_account_key(self, key: Arc<SigningKey>) -> Authenticator {
        Authenticator { service_accounts: Some(key), ..self }
    }

    /// Who a request to `path` with these credentials is from.
    pub fn authenticate(
        &self,
        path: &str,
        cert: Option<&UserInfo>,
        authorization: Option<&str>,
    ) -> Result<Identified, Refused> {
        decide(path, cert, authorization, &self.tokens, self.service_accounts.as_deref())
    }

    /// Who a bearer token names, exactly as for a request carrying it
    /// (TokenReview answers with this; a ServiceAccount token's objects are
    /// still to be checked, as for a request).
    pub fn authenticate_token(&self, token: &str) -> Result<Identified, Refused> {
        self.authenticate("", None, Some(&format!("Bearer {token}")))
    }
}

/// The decision, as data: see the module overview.
pub fn decide(
    path: &str,
    cert: Option<&UserInfo>,
    authorization: Option<&str>,
    tokens: &TokenTable,
    sa_key: Option<&SigningKey>,
) -> Result<Identified, Refused> {
    if let Some(user) = cert {
        return Ok(Identified::User(authenticated(user.clone())));
    }
    if let Some(token) = authorization.and_then(bearer) {
        if let Some(user) = tokens.user(token) {
            return Ok(Identified::User(authenticated(user.clone())));
        }
        if let Some((id, secret)) = super::bootstrap_token::parse(token) {
            return Ok(Identified::BootstrapToken { id: id.into(), secret: secret.into() });
        }
        return match sa_key.filter(|_| looks_like_jwt(token)).map(|key| key.verify(token)) {
            Some(Ok(claims)) => Ok(Identified::ServiceAccount(Box::new(claims))),
            _ => Err(Refused::InvalidToken),
        };
    }
    if anonymous_may_read(path) {
        let anonymous = UserInfo { name: ANONYMOUS.into(), uid: String::new(), groups: vec![UNAUTHENTICATED.into()] };
        return Ok(Identified::User(anonymous));
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

/// `user` with the group every authenticated user has.
pub fn authenticated(mut user: UserInfo) -> UserInfo {
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

    fn decide(
        path: &str,
        cert: Option<&UserInfo>,
        authorization: Option<&str>,
        tokens: &TokenTable,
    ) -> Result<UserInfo, Refused> {
        match super::decide(path, cert, authorization, tokens, None)? {
            Identified::User(user) => Ok(user),
            Identified::ServiceAccount(_) | Identified::BootstrapToken { .. } => Err(Refused::InvalidToken),
        }
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

    #[test]
    fn a_token_our_key_signed_is_handed_on_as_claims_others_are_refused() {
        use crate::auth::sa_token::{plan_token, ObjectRef, TokenSpec};
        let key = SigningKey::generate().expect("key");
        let sa = ObjectRef { name: "default".into(), uid: "u".into() };
        let claims = plan_token("d", &sa, &TokenSpec::default(), None, 1, String::new()).expect("claims");
        let header = format!("Bearer {}", key.sign(&claims).expect("signed"));
        let got = super::decide("/api/v1/pods", None, Some(&header), &tokens(), Some(&key));
        assert_eq!(got, Ok(Identified::ServiceAccount(Box::new(claims))));
        let other = SigningKey::generate().expect("other");
        assert_eq!(
            super::decide("/api/v1/pods", None, Some(&header), &tokens(), Some(&other)),
            Err(Refused::InvalidToken)
        );
        assert_eq!(super::decide("/api/v1/pods", None, Some(&header), &tokens(), None), Err(Refused::InvalidToken));
        assert_eq!(
            super::decide("/healthz", None, Some("Bearer a.b.c"), &tokens(), Some(&key)),
            Err(Refused::InvalidToken)
        );
    }
}
