//! Who may call the kubelet API, as upstream's kubelet decides it.
//!
//! **Authentication**: a client certificate verified against the client CA
//! during the TLS handshake (`kubelet_tls` puts its user into the request),
//! else an `Authorization: Bearer` token checked by a TokenReview at the
//! apiserver; anything else is 401. **Authorization**: a
//! SubjectAccessReview at the apiserver for the request's attributes
//! (`attributes`: resource `nodes`, a subresource from the path, the verb
//! from the method); a denial is 403. Answers are cached (`cache`): tokens
//! 2 minutes (10 s when invalid), decisions 5 minutes (30 s when denied),
//! as upstream's defaults.
//!
//! The reviews go through the narrow [`Reviews`] trait (the apiserver with
//! the agent's own credentials in [`KubeReviews`], a fake in tests).
//! Must not: serve anything itself or decide anything the apiserver decides.

pub mod attributes;
pub mod cache;
pub mod reviews;
pub mod user;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use attributes::{attributes_for, Attributes, NODES};
use cache::{Ttl, TtlCache};
pub use reviews::{KubeReviews, Reviews};
use user::User;

/// Token answers: 2 minutes, 10 s when invalid.
const TOKEN_TTL: Ttl = Ttl { positive: Duration::from_secs(120), negative: Duration::from_secs(10), capacity: 4096 };
/// Decisions: 5 minutes when allowed, 30 s when denied (upstream's kubelet).
const DECISION_TTL: Ttl =
    Ttl { positive: Duration::from_secs(300), negative: Duration::from_secs(30), capacity: 10_000 };

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No or invalid credentials: 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// Authenticated but not allowed: 403, upstream's message.
    #[error("{0}")]
    Forbidden(String),
    /// A review could not be made: 500.
    #[error("{0}")]
    Review(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match self {
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::Review(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, self.to_string()).into_response()
    }
}

/// The decision key: who asks what.
type DecisionKey = (String, String, Vec<String>, Attributes);

/// The kubelet API's authenticator and authorizer for one node.
pub struct KubeletAuth {
    node: String,
    reviews: Arc<dyn Reviews>,
    tokens: TtlCache<String, Option<User>>,
    decisions: TtlCache<DecisionKey, (bool, String)>,
}

impl KubeletAuth {
    /// For node `node`, asking `reviews`.
    pub fn new(node: &str, reviews: Arc<dyn Reviews>) -> KubeletAuth {
        KubeletAuth {
            node: node.to_string(),
            reviews,
            tokens: TtlCache::new(TOKEN_TTL),
            decisions: TtlCache::new(DECISION_TTL),
        }
    }

    /// The user of a request with a client certificate's user `cert` and
    /// an `Authorization` header.
    pub async fn authenticate(&self, cert: Option<&User>, authorization: Option<&str>) -> Result<User, Refusal> {
        if let Some(user) = cert {
            return Ok(user.clone().authenticated());
        }
        let token = authorization.and_then(bearer).ok_or(Refusal::Unauthorized)?;
        let now = Instant::now();
        let known = match self.tokens.get(&token.to_string(), now) {
            Some(known) => known,
            None => {
                let reviewed = self.reviews.token(token).await.map_err(|e| {
                    tracing::warn!(error = %e, "kubelet API: TokenReview failed");
                    Refusal::Unauthorized
                })?;
                self.tokens.put(token.to_string(), reviewed.clone(), reviewed.is_some(), now);
                reviewed
            }
        };
        known.ok_or(Refusal::Unauthorized)
    }

    /// Whether `user` may `method path` (any of the path's attributes).
    pub async fn authorize(&self, user: &User, method: &Method, path: &str) -> Result<(), Refusal> {
        let candidates = attributes_for(method, path, &self.node);
        for attrs in &candidates {
            let key = (user.name.clone(), user.uid.clone(), user.groups.clone(), attrs.clone());
            let now = Instant::now();
            let (allowed, _) = match self.decisions.get(&key, now) {
                Some(decision) => decision,
                None => {
                    let decision = self.reviews.access(user, attrs).await.map_err(Refusal::Review)?;
                    self.decisions.put(key, decision.clone(), decision.0, now);
                    decision
                }
            };
            if allowed {
                return Ok(());
            }
        }
        let (verb, subresource) = candidates.first().map_or(("get", "proxy"), |a| (a.verb, a.subresource));
        Err(Refusal::Forbidden(format!(
            "Forbidden (user={}, verb={verb}, resource={NODES}, subresource({subresource}))",
            user.name
        )))
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The middleware in front of every kubelet API route.
pub async fn check(State(auth): State<Arc<KubeletAuth>>, req: Request, next: Next) -> Response {
    let cert = req.extensions().get::<crate::kubelet_tls::PeerCert>().and_then(|p| p.0.clone());
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let user = match auth.authenticate(cert.as_ref(), authorization).await {
        Ok(user) => user,
        Err(refused) => return refused.into_response(),
    };
    if let Err(refused) = auth.authorize(&user, req.method(), req.uri().path()).await {
        tracing::debug!(user = %user.name, path = %req.uri().path(), %refused, "kubelet API: refused");
        return refused.into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::reviews::testing::FakeReviews;
    use super::*;

    fn alice() -> User {
        User { name: "alice".into(), uid: "1".into(), groups: vec!["dev".into()] }
    }

    #[tokio::test]
    async fn a_certificate_is_its_user_a_token_is_reviewed_once_and_nothing_else_is_401() {
        let reviews = Arc::new(FakeReviews::default().with_token("good", alice()));
        let auth = KubeletAuth::new("n1", reviews.clone());
        let admin = User { name: "admin".into(), uid: String::new(), groups: vec!["system:masters".into()] };
        let user = auth.authenticate(Some(&admin), Some("Bearer bad")).await.expect("cert wins");
        assert_eq!(user.groups, ["system:masters", user::AUTHENTICATED]);
        for _ in 0..3 {
            assert_eq!(auth.authenticate(None, Some("Bearer good")).await, Ok(alice()));
            assert_eq!(auth.authenticate(None, Some("Bearer bad")).await, Err(Refusal::Unauthorized));
        }
        assert_eq!(reviews.token_calls(), 2, "one review per token, then the cache");
        assert_eq!(auth.authenticate(None, None).await, Err(Refusal::Unauthorized));
        assert_eq!(auth.authenticate(None, Some("Basic YTpi")).await, Err(Refusal::Unauthorized));
        assert_eq!(reviews.token_calls(), 2);
    }

    #[tokio::test]
    async fn decisions_ask_the_apiserver_once_and_fall_back_to_proxy() {
        let reviews = Arc::new(FakeReviews::default().allowing("alice", "stats").allowing("bob", "proxy"));
        let auth = KubeletAuth::new("n1", reviews.clone());
        let bob = User { name: "bob".into(), ..alice() };
        assert_eq!(auth.authorize(&alice(), &Method::GET, "/stats/summary").await, Ok(()));
        assert_eq!(auth.authorize(&alice(), &Method::GET, "/stats/summary").await, Ok(()));
        assert_eq!(reviews.access_calls(), 1, "cached");
        let denied = auth.authorize(&alice(), &Method::GET, "/pods").await.expect_err("no pods, no proxy");
        assert_eq!(
            denied,
            Refusal::Forbidden("Forbidden (user=alice, verb=get, resource=nodes, subresource(pods))".into())
        );
        assert_eq!(auth.authorize(&bob, &Method::GET, "/pods").await, Ok(()), "nodes/proxy covers /pods");
        assert!(auth.authorize(&bob, &Method::GET, "/stats/summary").await.is_err(), "proxy does not cover stats");
        let calls = reviews.access_calls();
        let _ = auth.authorize(&alice(), &Method::GET, "/pods").await;
        assert_eq!(reviews.access_calls(), calls, "denials are cached too");
        let asked = reviews.asked();
        assert!(asked.iter().all(|(_, a)| a.node == "n1"), "{asked:?}");
    }

    #[tokio::test]
    async fn a_failed_review_is_an_error_not_a_decision() {
        let reviews = Arc::new(FakeReviews::default().failing());
        let auth = KubeletAuth::new("n1", reviews.clone());
        assert!(matches!(auth.authorize(&alice(), &Method::GET, "/pods").await, Err(Refusal::Review(_))));
        assert_eq!(auth.authenticate(None, Some("Bearer x")).await, Err(Refusal::Unauthorized));
        let _ = auth.authorize(&alice(), &Method::GET, "/pods").await;
        assert_eq!(reviews.access_calls(), 2, "errors are not cached");
    }
}
