//! The kubelet API's TLS and access settings from a `KubeletConfiguration`
//! file (`tlsCertFile`, `tlsPrivateKeyFile`, `authentication`,
//! `authorization`), combined with the flags (a flag wins, as upstream).
//!
//! bosun's kubelet API always authenticates (client certificates against
//! the client CA, bearer tokens through TokenReview) and authorizes
//! (SubjectAccessReview). A file that asks for less — anonymous access,
//! no token webhook, `AlwaysAllow` — is refused with the field named,
//! rather than started with a different security posture than the
//! operator wrote. Sub-fields the agent does not act on (cache TTLs) are
//! named back to the caller, like the file's other ignored fields.
//!
//! Pure: the caller reads the files.

use std::path::PathBuf;

use serde_json::{Map, Value};

/// The top-level fields read here.
pub const FIELDS: &[&str] = &["tlsCertFile", "tlsPrivateKeyFile", "authentication", "authorization"];

/// A field that asks for something the kubelet API does not do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kubelet config field {field}: {message}")]
pub struct Error {
    pub field: String,
    pub message: String,
}

fn error(field: &str, message: &str) -> Error {
    Error { field: field.to_string(), message: message.to_string() }
}

/// What the file sets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileApiAccess {
    /// `tlsCertFile` and `tlsPrivateKeyFile`, given together.
    pub serving: Option<(PathBuf, PathBuf)>,
    /// `authentication.x509.clientCAFile`.
    pub client_ca_file: Option<PathBuf>,
    /// Sub-fields not acted on (`authentication.webhook.cacheTTL`...).
    pub ignored: Vec<String>,
}

/// The flags' side.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApiAccessFlags {
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
}

/// Flags and file combined.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApiAccess {
    /// The serving certificate and key (`None`: self-signed in `<root>/pki`).
    pub serving: Option<(PathBuf, PathBuf)>,
    /// The client CA (`None`: the kubeconfig's CA).
    pub client_ca_file: Option<PathBuf>,
}

fn object<'a>(map: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a Map<String, Value>>, Error> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(_) => Err(error(path, "must be a mapping")),
    }
}

fn string(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, Error> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(error(path, "must be a string")),
    }
}

fn boolean(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, Error> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(error(path, "must be true or false")),
    }
}

/// Names `prefix.<key>` for each key of `map` not in `known`.
fn others(map: &Map<String, Value>, known: &[&str], prefix: &str, into: &mut Vec<String>) {
    into.extend(map.keys().filter(|k| !known.contains(&k.as_str())).map(|k| format!("{prefix}.{k}")));
}

/// Reads the fields of [`FIELDS`] from a parsed file.
pub fn parse_file(map: &Map<String, Value>) -> Result<FileApiAccess, Error> {
    let mut ignored = Vec::new();
    let cert = string(map, "tlsCertFile", "tlsCertFile")?;
    let key = string(map, "tlsPrivateKeyFile", "tlsPrivateKeyFile")?;
    let serving = match (cert, key) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        (Some(_), None) => return Err(error("tlsPrivateKeyFile", "required with tlsCertFile")),
        (None, Some(_)) => return Err(error("tlsCertFile", "required with tlsPrivateKeyFile")),
    };
    let mut client_ca_file = None;
    if let Some(authn) = object(map, "authentication", "authentication")? {
        others(authn, &["x509", "webhook", "anonymous"], "authentication", &mut ignored);
        if let Some(x509) = object(authn, "x509", "authentication.x509")? {
            others(x509, &["clientCAFile"], "authentication.x509", &mut ignored);
            client_ca_file = string(x509, "clientCAFile", "authentication.x509.clientCAFile")?.map(PathBuf::from);
        }
        if let Some(anonymous) = object(authn, "anonymous", "authentication.anonymous")? {
            others(anonymous, &["enabled"], "authentication.anonymous", &mut ignored);
            if boolean(anonymous, "enabled", "authentication.anonymous.enabled")? == Some(true) {
                return Err(error(
                    "authentication.anonymous.enabled",
                    "true is not supported: the kubelet API never serves anonymous requests",
                ));
            }
        }
        if let Some(webhook) = object(authn, "webhook", "authentication.webhook")? {
            others(webhook, &["enabled"], "authentication.webhook", &mut ignored);
            if boolean(webhook, "enabled", "authentication.webhook.enabled")? == Some(false) {
                return Err(error(
                    "authentication.webhook.enabled",
                    "false is not supported: bearer tokens are always checked with TokenReview",
                ));
            }
        }
    }
    if let Some(authz) = object(map, "authorization", "authorization")? {
        others(authz, &["mode"], "authorization", &mut ignored);
        match string(authz, "mode", "authorization.mode")?.as_deref() {
            None | Some("Webhook") => {}
            Some(other) => {
                return Err(error(
                    "authorization.mode",
                    &format!(
                        "{other:?} is not supported: the kubelet API authorizes with SubjectAccessReview (Webhook)"
                    ),
                ))
            }
        }
    }
    Ok(FileApiAccess { serving, client_ca_file, ignored })
}

/// Combines flags and file: a flag wins. The serving pair is taken whole
/// from one side (a flag's certificate never goes with the file's key).
pub fn resolve(flags: &ApiAccessFlags, file: &FileApiAccess) -> ApiAccess {
    let from_flags = flags.tls_cert_file.clone().zip(flags.tls_private_key_file.clone());
    ApiAccess {
        serving: from_flags.or_else(|| file.serving.clone()),
        client_ca_file: flags.client_ca_file.clone().or_else(|| file.client_ca_file.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<FileApiAccess, Error> {
        let value: Value = serde_yaml_ng::from_str(yaml).expect("yaml");
        parse_file(value.as_object().expect("mapping"))
    }

    #[test]
    fn kubeadms_settings_are_honoured_and_cache_ttls_named() {
        let file = parse(
            "tlsCertFile: /pki/kubelet.crt\ntlsPrivateKeyFile: /pki/kubelet.key\n\
             authentication:\n  anonymous: {enabled: false}\n  webhook: {enabled: true, cacheTTL: 2m}\n  \
             x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}\n\
             authorization:\n  mode: Webhook\n  webhook: {cacheAuthorizedTTL: 5m}\n",
        )
        .expect("parsed");
        assert_eq!(file.serving, Some(("/pki/kubelet.crt".into(), "/pki/kubelet.key".into())));
        assert_eq!(file.client_ca_file, Some("/etc/kubernetes/pki/ca.crt".into()));
        assert_eq!(file.ignored, ["authentication.webhook.cacheTTL", "authorization.webhook"]);
        assert_eq!(parse("port: 1\n").expect("nothing of ours"), FileApiAccess::default());
    }

    #[test]
    fn a_weaker_posture_or_half_a_pair_is_refused_naming_the_field() {
        for (yaml, field) in [
            ("authentication: {anonymous: {enabled: true}}", "authentication.anonymous.enabled"),
            ("authentication: {webhook: {enabled: false}}", "authentication.webhook.enabled"),
            ("authorization: {mode: AlwaysAllow}", "authorization.mode"),
            ("tlsCertFile: /a.crt", "tlsPrivateKeyFile"),
            ("tlsPrivateKeyFile: /a.key", "tlsCertFile"),
            ("authentication: {x509: {clientCAFile: 3}}", "authentication.x509.clientCAFile"),
            ("authentication: yes", "authentication"),
        ] {
            let err = parse(yaml).expect_err(yaml);
            assert_eq!(err.field, field, "{yaml}: {err}");
        }
    }

    #[test]
    fn flags_win_and_the_serving_pair_comes_from_one_side() {
        let file = FileApiAccess {
            serving: Some(("/file.crt".into(), "/file.key".into())),
            client_ca_file: Some("/file-ca.crt".into()),
            ignored: Vec::new(),
        };
        assert_eq!(
            resolve(&ApiAccessFlags::default(), &file),
            ApiAccess { serving: file.serving.clone(), client_ca_file: file.client_ca_file.clone() }
        );
        let flags = ApiAccessFlags {
            tls_cert_file: Some("/flag.crt".into()),
            tls_private_key_file: Some("/flag.key".into()),
            client_ca_file: Some("/flag-ca.crt".into()),
        };
        assert_eq!(
            resolve(&flags, &file),
            ApiAccess {
                serving: Some(("/flag.crt".into(), "/flag.key".into())),
                client_ca_file: Some("/flag-ca.crt".into())
            }
        );
    }
}
