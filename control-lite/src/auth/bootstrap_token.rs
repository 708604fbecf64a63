//! Bootstrap tokens, as upstream's bootstrap-token authenticator: a bearer
//! token `<id>.<secret>` (`[a-z0-9]{6}.[a-z0-9]{16}`) names the Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`;
//! it stands for user `system:bootstrap:<id>` in `system:bootstrappers` (and
//! the Secret's `auth-extra-groups`) while the Secret allows authentication,
//! is not expired or being deleted, and its `token-secret` matches (compared
//! in constant time). [`decide`] is pure; the HTTP layer looks the Secret up.
//! [`secret_for`] builds such a Secret (`bosun token create`).

use base64::Engine as _;
use serde_json::{json, Value};

use super::user::UserInfo;

/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// Where bootstrap token Secrets live.
pub const NAMESPACE: &str = "kube-system";
/// A token Secret's name is this prefix and the token id.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The user name prefix of a bootstrap token's user.
pub const USER_PREFIX: &str = "system:bootstrap:";
/// The group of every bootstrap token user.
pub const GROUP: &str = "system:bootstrappers";
/// Length of a token id.
pub const ID_LEN: usize = 6;
/// Length of a token secret.
pub const SECRET_LEN: usize = 16;
/// Most extra groups one token may carry.
const MAX_EXTRA_GROUPS: usize = 16;

/// Why a bootstrap token does not authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no token Secret")]
    NoSecret,
    #[error("the Secret is not of type {SECRET_TYPE}")]
    WrongType,
    #[error("the Secret is being deleted")]
    Deleting,
    #[error("the token does not match")]
    Mismatch,
    #[error("the token is not for authentication")]
    NotForAuthentication,
    #[error("the token expired")]
    Expired,
    #[error("bad expiration {0:?}")]
    BadExpiration(String),
    #[error("bad extra group {0:?}")]
    BadGroup(String),
}

/// The id and secret of a bearer token of the bootstrap form.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (ok(id, ID_LEN) && ok(secret, SECRET_LEN)).then_some((id, secret))
}

/// The Secret name of token `id`.
pub fn secret_name(id: &str) -> String {
    format!("{SECRET_PREFIX}{id}")
}

fn data(secret: &Value, key: &str) -> Option<String> {
    let raw = secret.pointer(&format!("/data/{key}")).and_then(Value::as_str)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    String::from_utf8(bytes).ok()
}

/// Byte-wise equality whose time depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether token `id.presented` authenticates against its Secret at `now_unix`.
pub fn decide(id: &str, presented: &str, secret: Option<&Value>, now_unix: i64) -> Result<UserInfo, Refused> {
    let secret = secret.ok_or(Refused::NoSecret)?;
    if secret.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
        return Err(Refused::WrongType);
    }
    if secret.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(Refused::Deleting);
    }
    let stored_id = data(secret, "token-id").unwrap_or_default();
    let stored_secret = data(secret, "token-secret").unwrap_or_default();
    // Both compared, always, so timing tells nothing about which differed.
    let same_id = constant_time_eq(stored_id.as_bytes(), id.as_bytes());
    let same_secret = constant_time_eq(stored_secret.as_bytes(), presented.as_bytes());
    if !(same_id & same_secret) {
        return Err(Refused::Mismatch);
    }
    if data(secret, "usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(Refused::NotForAuthentication);
    }
    if let Some(expiration) = data(secret, "expiration") {
        let at: jiff::Timestamp = expiration.parse().map_err(|_| Refused::BadExpiration(expiration.clone()))?;
        if at.as_second() <= now_unix {
            return Err(Refused::Expired);
        }
    }
    let mut groups = vec![GROUP.to_string()];
    for g in data(secret, "auth-extra-groups").unwrap_or_default().split(',').map(str::trim).filter(|g| !g.is_empty()) {
        if !g.starts_with(&format!("{GROUP}:")) || groups.len() > MAX_EXTRA_GROUPS {
            return Err(Refused::BadGroup(g.to_string()));
        }
        if !groups.iter().any(|have| have == g) {
            groups.push(g.to_string());
        }
    }
    Ok(UserInfo { name: format!("{USER_PREFIX}{id}"), uid: String::new(), groups })
}

/// A new random token `<id>.<secret>`.
pub fn generate() -> (String, String) {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut pick =
        |n: usize| -> String { (0..n).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect() };
    (pick(ID_LEN), pick(SECRET_LEN))
}

/// The Secret of token `id.secret` for authentication, expiring at
/// `expiration` (RFC 3339) if given.
pub fn secret_for(id: &str, secret: &str, expiration: Option<&str>, extra_groups: &[&str], description: &str) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut data = json!({
        "token-id": b64(id),
        "token-secret": b64(secret),
        "usage-bootstrap-authentication": b64("true"),
        "usage-bootstrap-signing": b64("true"),
        "description": b64(description),
    });
    if let Some(at) = expiration {
        data["expiration"] = json!(b64(at));
    }
    if !extra_groups.is_empty() {
        data["auth-extra-groups"] = json!(b64(&extra_groups.join(",")));
    }
    json!({"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
        "metadata": {"name": secret_name(id), "namespace": NAMESPACE}, "data": data})
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn secret(expiration: Option<&str>, groups: &[&str]) -> Value {
        secret_for("abcdef", "0123456789abcdef", expiration, groups, "test")
    }

    #[test]
    fn only_the_bootstrap_form_parses() {
        assert_eq!(parse("abcdef.0123456789abcdef"), Some(("abcdef", "0123456789abcdef")));
        for bad in ["abcdef", "ABCDEF.0123456789abcdef", "abcde.0123456789abcdef", "abcdef.0123456789abcde", "a.b.c"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        let (id, secret) = generate();
        assert!(parse(&format!("{id}.{secret}")).is_some());
    }

    #[test]
    fn decisions() {
        let future = "2030-01-01T00:00:00Z";
        let past = "2020-01-01T00:00:00Z";
        let mut wrong_type = secret(None, &[]);
        wrong_type["type"] = json!("Opaque");
        let mut deleting = secret(None, &[]);
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut no_auth = secret(None, &[]);
        no_auth["data"]["usage-bootstrap-authentication"] = json!("ZmFsc2U=");
        type Case<'a> = (&'a str, Option<Value>, &'a str, Result<&'a [&'a str], Refused>);
        let cases: Vec<Case<'_>> = vec![
            ("valid", Some(secret(Some(future), &[])), "0123456789abcdef", Ok(&[GROUP])),
            ("no expiry", Some(secret(None, &[])), "0123456789abcdef", Ok(&[GROUP])),
            (
                "extra groups",
                Some(secret(None, &["system:bootstrappers:worker"])),
                "0123456789abcdef",
                Ok(&[GROUP, "system:bootstrappers:worker"]),
            ),
            ("wrong secret", Some(secret(None, &[])), "0123456789abcdee", Err(Refused::Mismatch)),
            ("expired", Some(secret(Some(past), &[])), "0123456789abcdef", Err(Refused::Expired)),
            ("missing", None, "0123456789abcdef", Err(Refused::NoSecret)),
            ("type", Some(wrong_type), "0123456789abcdef", Err(Refused::WrongType)),
            ("deleting", Some(deleting), "0123456789abcdef", Err(Refused::Deleting)),
            ("not for authn", Some(no_auth), "0123456789abcdef", Err(Refused::NotForAuthentication)),
            (
                "foreign group",
                Some(secret(None, &["system:masters"])),
                "0123456789abcdef",
                Err(Refused::BadGroup("system:masters".into())),
            ),
        ];
        for (what, s, presented, want) in cases {
            let got = decide("abcdef", presented, s.as_ref(), NOW);
            match want {
                Ok(groups) => {
                    let user = got.unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(user.name, "system:bootstrap:abcdef", "{what}");
                    assert_eq!(user.groups, groups, "{what}");
                }
                Err(e) => assert_eq!(got, Err(e), "{what}"),
            }
        }
    }
}
