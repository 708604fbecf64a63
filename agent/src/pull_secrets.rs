//! `imagePullSecrets`: registry credentials from `kubernetes.io/dockerconfigjson`
//! and `kubernetes.io/dockercfg` Secrets, matched against an image as the
//! upstream credential keyring does.
//!
//! Owns: parsing the two Secret formats (an entry's `auth` is base64
//! `user:pass` and wins over `username`/`password`), and choosing the
//! credentials for one image. A key matches when its host has as many
//! dot-separated parts as the image's host and each part glob-matches
//! (`*.example.com`), the ports are equal (none on both counts as equal), and
//! the key's path is a prefix of the image's repository path. Matches are
//! ordered most specific (longest key) first; the caller tries each in turn.
//!
//! Must not: fetch Secrets or pull; it is pure.

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Secret type of a `config.json`-shaped Secret (`{"auths": {...}}`).
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
/// Secret type of a legacy `.dockercfg` Secret (the `auths` map itself).
pub const DOCKER_CFG: &str = "kubernetes.io/dockercfg";
const DEFAULT_REGISTRY: &str = "docker.io";

/// Credentials for one registry, as `PullImage` takes them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credential {
    /// The key the credential was stored under (e.g. `127.0.0.1:5001`).
    pub server: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// `identitytoken`, if any.
    pub identity_token: String,
}

/// Why a Secret could not be read as registry credentials.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The Secret's type is not one of the two docker types.
    #[error("secret {name:?} has type {kind:?}, not {DOCKER_CONFIG_JSON} or {DOCKER_CFG}")]
    WrongType { name: String, kind: String },
    /// The key holding the config is absent.
    #[error("secret {name:?} has no key {key:?}")]
    MissingKey { name: String, key: &'static str },
    /// The config is not valid JSON of the expected shape, or an `auth` is bad.
    #[error("secret {name:?}: {reason}")]
    Invalid { name: String, reason: String },
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Deserialize, Default)]
struct Entry {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
}

/// The credentials one Secret holds, keyed by registry key as written.
pub fn parse_secret(secret: &Secret) -> Result<Vec<Credential>, Error> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let kind = secret.type_.clone().unwrap_or_default();
    let data = crate::volumes::payload::secret_data(secret);
    let invalid = |reason: String| Error::Invalid { name: name.clone(), reason };
    let auths = match kind.as_str() {
        DOCKER_CONFIG_JSON => {
            let key = ".dockerconfigjson";
            let raw = data.get(key).ok_or_else(|| Error::MissingKey { name: name.clone(), key })?;
            serde_json::from_slice::<ConfigJson>(raw).map_err(|e| invalid(e.to_string()))?.auths
        }
        DOCKER_CFG => {
            let key = ".dockercfg";
            let raw = data.get(key).ok_or_else(|| Error::MissingKey { name: name.clone(), key })?;
            serde_json::from_slice::<BTreeMap<String, Entry>>(raw).map_err(|e| invalid(e.to_string()))?
        }
        _ => return Err(Error::WrongType { name, kind }),
    };
    let mut out = Vec::with_capacity(auths.len());
    for (server, entry) in auths {
        let (mut username, mut password) = (entry.username, entry.password);
        if !entry.auth.is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(entry.auth.trim())
                .map_err(|e| invalid(format!("auth of {server:?} is not base64: {e}")))?;
            let text = String::from_utf8(decoded).map_err(|_| invalid(format!("auth of {server:?} is not UTF-8")))?;
            let (user, pass) =
                text.split_once(':').ok_or_else(|| invalid(format!("auth of {server:?} is not user:password")))?;
            (username, password) = (user.to_string(), pass.to_string());
        }
        out.push(Credential { server, username, password, identity_token: entry.identity_token });
    }
    Ok(out)
}

/// A registry location: host, optional port, repository path (no leading `/`).
#[derive(Debug, PartialEq, Eq)]
struct Location {
    host: String,
    port: String,
    path: String,
}

/// A credential key (`https://host:port/path`, `host`, ...) as a location.
fn key_location(key: &str) -> Location {
    let rest = key.split_once("://").map_or(key, |(_, rest)| rest);
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = split_port(hostport);
    let mut host = host.to_ascii_lowercase();
    let mut path = path.trim_end_matches('/').to_string();
    if host == "index.docker.io" || host == "registry-1.docker.io" {
        host = DEFAULT_REGISTRY.to_string();
        if path == "v1" || path == "v2" {
            path.clear();
        }
    }
    Location { host, port, path }
}

/// An image reference's registry and repository (tag and digest dropped;
/// no registry means Docker Hub, one-part names live under `library/`).
fn image_location(image: &str) -> Location {
    let name = image.split_once('@').map_or(image, |(name, _)| name);
    let (first, remainder) = name.split_once('/').unwrap_or(("", name));
    let is_host = first.contains('.') || first.contains(':') || first == "localhost";
    let (hostport, repo) = if is_host { (first, remainder) } else { (DEFAULT_REGISTRY, name) };
    let repo = match repo.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => repo,
    };
    let (host, port) = split_port(hostport);
    let mut host = host.to_ascii_lowercase();
    if host == "index.docker.io" {
        host = DEFAULT_REGISTRY.to_string();
    }
    let path =
        if host == DEFAULT_REGISTRY && !repo.contains('/') { format!("library/{repo}") } else { repo.to_string() };
    Location { host, port, path }
}

fn split_port(hostport: &str) -> (&str, String) {
    match hostport.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => (host, port.to_string()),
        _ => (hostport, String::new()),
    }
}

/// Shell-style match of one host part: `*` any run, `?` one character.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&pattern[1..], text) || (!text.is_empty() && glob(pattern, &text[1..])),
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

fn matches(key: &Location, image: &Location) -> bool {
    let key_parts: Vec<&str> = key.host.split('.').collect();
    let image_parts: Vec<&str> = image.host.split('.').collect();
    if key_parts.len() != image_parts.len() || key.port != image.port {
        return false;
    }
    let hosts = key_parts.iter().zip(&image_parts).all(|(k, i)| glob(k.as_bytes(), i.as_bytes()));
    let path_ok = key.path.is_empty()
        || image.path == key.path
        || image.path.strip_prefix(&key.path).is_some_and(|rest| rest.starts_with('/'));
    hosts && path_ok
}

/// The credentials that apply to `image`, most specific key first (ties keep
/// the order given: the pod's secret order).
pub fn lookup<'a>(credentials: &'a [Credential], image: &str) -> Vec<&'a Credential> {
    let target = image_location(image);
    let mut found: Vec<(usize, &Credential)> = credentials
        .iter()
        .filter_map(|c| {
            let key = key_location(&c.server);
            matches(&key, &target).then_some((key.host.len() + key.port.len() + key.path.len(), c))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.into_iter().map(|(_, c)| c).collect()
}

#[cfg(test)]
#[path = "pull_secrets_tests.rs"]
mod tests;
