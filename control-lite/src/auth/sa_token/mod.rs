//! ServiceAccount tokens: bound, expiring JWTs signed by the cluster's key
//! ([`key::SigningKey`]), as upstream's TokenRequest issues them.
//!
//! Two pure decisions, with the clock and the looked-up objects passed in:
//! - [`plan_token`]: what a TokenRequest for a ServiceAccount (optionally
//!   bound to a Pod) yields: the claims (`iss`, `sub`
//!   `system:serviceaccount:<ns>:<name>`, `aud`, `exp`, `iat`, `nbf`, `jti`
//!   and the `kubernetes.io` claim naming the namespace, the ServiceAccount
//!   and the pod with their uids), or why it is refused;
//! - [`decide`]: whether a presented token's claims still stand (time,
//!   audience, issuer, the ServiceAccount and the bound pod still exist with
//!   the same uids) and the user they stand for.
//!
//! The HTTP layer looks the objects up in the store and applies these.

pub mod key;

use serde::{Deserialize, Serialize};

use super::user::{UserInfo, AUTHENTICATED};

/// The issuer of our tokens (upstream's default `--service-account-issuer`).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The audience of a token that asks for none: the apiserver's (= issuer).
pub const DEFAULT_AUDIENCE: &str = ISSUER;
/// Lifetime of a token that asks for none (upstream: 1 h).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// Shortest lifetime a request may ask for (upstream: 10 min).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Longest lifetime issued; longer requests are cut to it (upstream's
/// `--service-account-max-token-expiration`, which it also caps silently).
pub const MAX_EXPIRATION_SECONDS: i64 = 48 * 3600;
/// Clock skew tolerated on `nbf` and `exp` (upstream: 60 s on `nbf`).
pub const LEEWAY_SECONDS: i64 = 60;
/// The group of every ServiceAccount.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// The user name prefix of ServiceAccounts.
pub const USER_PREFIX: &str = "system:serviceaccount:";

/// An object a token names: its name and uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// The `kubernetes.io` private claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KubernetesClaim {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
}

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    #[serde(default)]
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

/// What a TokenRequest's `spec` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenSpec {
    pub audiences: Vec<String>,
    /// `None`: the default lifetime.
    pub expiration_seconds: Option<i64>,
    pub bound: Option<BoundRef>,
}

/// `spec.boundObjectRef`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BoundRef {
    pub kind: String,
    pub name: String,
    /// Empty: any uid (the current pod's is used).
    pub uid: String,
}

/// A Pod as token binding needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodInfo {
    pub name: String,
    pub uid: String,
    pub service_account: String,
}

/// Why a TokenRequest is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 422 on `spec.expirationSeconds`.
    #[error("spec.expirationSeconds: Invalid value: {0}: may not specify a duration less than 10 minutes")]
    TooShort(i64),
    /// 400: only pods are bound here.
    #[error("cannot bind token to object of kind {0:?}: only Pod is supported")]
    UnsupportedKind(String),
    /// 404: the bound pod does not exist.
    #[error("pods \"{0}\" not found")]
    PodNotFound(String),
    /// 409: the bound pod is another one of that name.
    #[error("the UID in the bound object reference ({given}) does not match the UID in record ({stored}). The object might have been deleted and then recreated")]
    PodUid { given: String, stored: String },
    /// 400: the pod runs as another ServiceAccount.
    #[error("cannot bind token for serviceaccount {0:?} to pod running with different serviceaccount name.")]
    OtherServiceAccount(String),
}

/// The claims of a token for ServiceAccount `sa` in `namespace` asked by
/// `spec` at `now` (unix seconds), bound to `pod` when the spec names one
/// (`pod` is what the store holds under that name).
pub fn plan_token(
    namespace: &str,
    sa: &ObjectRef,
    spec: &TokenSpec,
    pod: Option<&PodInfo>,
    now: i64,
    jti: String,
) -> Result<Claims, Refusal> {
    let lifetime = match spec.expiration_seconds {
        None => DEFAULT_EXPIRATION_SECONDS,
        Some(s) if s < MIN_EXPIRATION_SECONDS => return Err(Refusal::TooShort(s)),
        Some(s) => s.min(MAX_EXPIRATION_SECONDS),
    };
    let pod = match &spec.bound {
        None => None,
        Some(bound) if bound.kind != "Pod" => return Err(Refusal::UnsupportedKind(bound.kind.clone())),
        Some(bound) => {
            let pod = pod.filter(|p| p.name == bound.name).ok_or_else(|| Refusal::PodNotFound(bound.name.clone()))?;
            if !bound.uid.is_empty() && bound.uid != pod.uid {
                return Err(Refusal::PodUid { given: bound.uid.clone(), stored: pod.uid.clone() });
            }
            if pod.service_account != sa.name {
                return Err(Refusal::OtherServiceAccount(sa.name.clone()));
            }
            Some(ObjectRef { name: pod.name.clone(), uid: pod.uid.clone() })
        }
    };
    let audiences = if spec.audiences.is_empty() { vec![DEFAULT_AUDIENCE.to_string()] } else { spec.audiences.clone() };
    Ok(Claims {
        iss: ISSUER.into(),
        sub: format!("{USER_PREFIX}{namespace}:{}", sa.name),
        aud: audiences,
        exp: now.saturating_add(lifetime),
        iat: now,
        nbf: now,
        jti,
        kubernetes: KubernetesClaim { namespace: namespace.into(), serviceaccount: sa.clone(), pod },
    })
}

/// Why a presented token does not authenticate (401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token has no audience of this apiserver")]
    Audience,
    #[error("token has another issuer or subject")]
    Issuer,
    #[error("service account {0} has been deleted")]
    ServiceAccountGone(String),
    #[error("pod {0} has been deleted")]
    PodGone(String),
}

/// What the store holds for the objects a token names: the uids of the
/// ServiceAccount and of the bound pod (`None`: no such object).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lookup {
    pub service_account_uid: Option<String>,
    pub pod_uid: Option<String>,
}

/// The user a token with `claims` stands for at `now`, for an apiserver
/// that accepts `audiences`.
pub fn decide(claims: &Claims, now: i64, audiences: &[&str], found: &Lookup) -> Result<UserInfo, Invalid> {
    let k = &claims.kubernetes;
    let user = format!("{USER_PREFIX}{}:{}", k.namespace, k.serviceaccount.name);
    if claims.iss != ISSUER || claims.sub != user || k.namespace.is_empty() || k.serviceaccount.name.is_empty() {
        return Err(Invalid::Issuer);
    }
    if now >= claims.exp.saturating_add(LEEWAY_SECONDS) {
        return Err(Invalid::Expired);
    }
    if now.saturating_add(LEEWAY_SECONDS) < claims.nbf {
        return Err(Invalid::NotYetValid);
    }
    if !claims.aud.iter().any(|a| audiences.contains(&a.as_str())) {
        return Err(Invalid::Audience);
    }
    if found.service_account_uid.as_deref() != Some(k.serviceaccount.uid.as_str()) {
        return Err(Invalid::ServiceAccountGone(format!("{}/{}", k.namespace, k.serviceaccount.name)));
    }
    if let Some(pod) = &k.pod {
        if found.pod_uid.as_deref() != Some(pod.uid.as_str()) {
            return Err(Invalid::PodGone(format!("{}/{}", k.namespace, pod.name)));
        }
    }
    Ok(UserInfo {
        name: user,
        uid: k.serviceaccount.uid.clone(),
        groups: vec![
            SERVICE_ACCOUNTS_GROUP.into(),
            format!("{SERVICE_ACCOUNTS_GROUP}:{}", k.namespace),
            AUTHENTICATED.into(),
        ],
    })
}

/// Whether `token` has a JWT's shape (three base64url parts), so it is
/// worth a signature check.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

#[cfg(test)]
mod tests;
