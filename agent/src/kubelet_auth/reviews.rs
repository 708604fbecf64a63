//! The apiserver's reviews the kubelet API asks: TokenReview
//! (`authentication.k8s.io/v1`) for bearer tokens and SubjectAccessReview
//! (`authorization.k8s.io/v1`) for decisions, made with the agent's own
//! credentials (the `system:node` identity may create both).

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::PostParams;

use super::attributes::{Attributes, NODES};
use super::user::User;

/// The reviews, behind a narrow trait (a fake in tests).
#[async_trait]
pub trait Reviews: Send + Sync {
    /// The user of `token`; `None` when the apiserver does not know it.
    async fn token(&self, token: &str) -> Result<Option<User>, String>;
    /// Whether `user` may do `attrs`, and the apiserver's reason.
    async fn access(&self, user: &User, attrs: &Attributes) -> Result<(bool, String), String>;
}

/// The reviews at the apiserver of `client`.
pub struct KubeReviews {
    client: kube::Client,
}

impl KubeReviews {
    /// Reviews through `client`.
    pub fn new(client: kube::Client) -> KubeReviews {
        KubeReviews { client }
    }
}

#[async_trait]
impl Reviews for KubeReviews {
    async fn token(&self, token: &str) -> Result<Option<User>, String> {
        let review = TokenReview {
            spec: TokenReviewSpec { token: Some(token.to_string()), ..Default::default() },
            ..Default::default()
        };
        let api = kube::Api::<TokenReview>::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await.map_err(|e| e.to_string())?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Ok(None);
        }
        let user = status.user.unwrap_or_default();
        Ok(Some(User {
            name: user.username.unwrap_or_default(),
            uid: user.uid.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
        }))
    }

    async fn access(&self, user: &User, attrs: &Attributes) -> Result<(bool, String), String> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(attrs.verb.to_string()),
                    group: Some(String::new()),
                    version: Some("v1".into()),
                    resource: Some(NODES.into()),
                    subresource: Some(attrs.subresource.to_string()),
                    name: Some(attrs.node.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api = kube::Api::<SubjectAccessReview>::all(self.client.clone());
        let answer =
            api.create(&PostParams::default(), &review).await.map_err(|e| format!("SubjectAccessReview: {e}"))?;
        let status = answer.status.unwrap_or_default();
        Ok((status.allowed, status.reason.unwrap_or_default()))
    }
}

/// A recording fake for tests.
#[cfg(test)]
pub mod testing {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// Knows some tokens and allows some (user, subresource) pairs.
    #[derive(Default)]
    pub struct FakeReviews {
        tokens: HashMap<String, User>,
        allowed: Vec<(String, &'static str)>,
        fail: bool,
        token_calls: Mutex<usize>,
        asked: Mutex<Vec<(String, Attributes)>>,
    }

    impl FakeReviews {
        /// `token` is `user`.
        pub fn with_token(mut self, token: &str, user: User) -> FakeReviews {
            self.tokens.insert(token.into(), user);
            self
        }

        /// `user` may do anything on `subresource`.
        pub fn allowing(mut self, user: &str, subresource: &'static str) -> FakeReviews {
            self.allowed.push((user.into(), subresource));
            self
        }

        /// Every review fails.
        pub fn failing(mut self) -> FakeReviews {
            self.fail = true;
            self
        }

        /// Token reviews made.
        pub fn token_calls(&self) -> usize {
            *self.token_calls.lock().expect("lock")
        }

        /// Access reviews made.
        pub fn access_calls(&self) -> usize {
            self.asked.lock().expect("lock").len()
        }

        /// The access reviews made, in order.
        pub fn asked(&self) -> Vec<(String, Attributes)> {
            self.asked.lock().expect("lock").clone()
        }
    }

    #[async_trait]
    impl Reviews for FakeReviews {
        async fn token(&self, token: &str) -> Result<Option<User>, String> {
            *self.token_calls.lock().expect("lock") += 1;
            if self.fail {
                return Err("apiserver down".into());
            }
            Ok(self.tokens.get(token).cloned())
        }

        async fn access(&self, user: &User, attrs: &Attributes) -> Result<(bool, String), String> {
            self.asked.lock().expect("lock").push((user.name.clone(), attrs.clone()));
            if self.fail {
                return Err("apiserver down".into());
            }
            let allowed = self.allowed.iter().any(|(u, s)| *u == user.name && *s == attrs.subresource);
            Ok((allowed, String::new()))
        }
    }
}
