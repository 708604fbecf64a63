//! The cluster-wide Pod Security configuration: upstream's
//! `PodSecurityConfiguration` (pod-security.admission.config.k8s.io/v1),
//! given inline in an `AdmissionConfiguration` file
//! (`bosun control --admission-control-config-file`, as kube-apiserver).
//!
//! - `defaults`: the level and version of each mode for a namespace that
//!   has no label of its own for it (upstream: `privileged` everywhere);
//! - `exemptions`: requests from these `usernames`, in these `namespaces`,
//!   or of pods with these `runtimeClasses` are not evaluated at all.
//!
//! Pure: the caller reads the file.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{Level, LevelVersion, Mode, Policy};

/// `AdmissionConfiguration`'s apiVersions.
const ADMISSION_API_VERSIONS: &[&str] = &["apiserver.config.k8s.io/v1", "apiserver.k8s.io/v1alpha1"];
/// `PodSecurityConfiguration`'s apiVersions.
const POD_SECURITY_API_VERSIONS: &[&str] =
    &["pod-security.admission.config.k8s.io/v1", "pod-security.admission.config.k8s.io/v1beta1"];
/// Most entries in one exemption list (bounded work per request).
const MAX_EXEMPTIONS: usize = 1_000;

/// A configuration that does not parse, with the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("admission configuration {field}: {message}")]
pub struct Error {
    pub field: String,
    pub message: String,
}

fn error(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error { field: field.into(), message: message.into() }
}

/// Who and what Pod Security leaves alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exemptions {
    pub usernames: BTreeSet<String>,
    pub namespaces: BTreeSet<String>,
    pub runtime_classes: BTreeSet<String>,
}

/// The cluster-wide configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSecurityConfig {
    /// The policy of a namespace with no Pod Security labels.
    pub defaults: Policy,
    pub exemptions: Exemptions,
}

impl Default for PodSecurityConfig {
    /// Upstream's: privileged everywhere, no exemption.
    fn default() -> PodSecurityConfig {
        PodSecurityConfig { defaults: Policy::default(), exemptions: Exemptions::default() }
    }
}

impl PodSecurityConfig {
    /// Whether a write by `user` in `namespace` of a pod (or template)
    /// with `runtime_class` is exempt.
    pub fn exempt(&self, user: Option<&str>, namespace: &str, runtime_class: Option<&str>) -> bool {
        let e = &self.exemptions;
        e.namespaces.contains(namespace)
            || user.is_some_and(|u| e.usernames.contains(u))
            || runtime_class.is_some_and(|c| e.runtime_classes.contains(c))
    }
}

/// Reads an `AdmissionConfiguration` (YAML or JSON): the `PodSecurity`
/// plugin's inline configuration; no such plugin gives the default.
pub fn parse_admission_config(text: &str) -> Result<PodSecurityConfig, Error> {
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| error("(file)", e.to_string()))?;
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    if kind != "AdmissionConfiguration" || !ADMISSION_API_VERSIONS.contains(&api_version) {
        return Err(error("kind", format!("want an AdmissionConfiguration of {ADMISSION_API_VERSIONS:?}")));
    }
    let plugins = match doc.get("plugins") {
        None | Some(Value::Null) => return Ok(PodSecurityConfig::default()),
        Some(Value::Array(plugins)) => plugins,
        Some(_) => return Err(error("plugins", "must be a list")),
    };
    let Some((i, plugin)) = plugins.iter().enumerate().find(|(_, p)| p.get("name") == Some(&"PodSecurity".into()))
    else {
        return Ok(PodSecurityConfig::default());
    };
    let at = |f: &str| format!("plugins[{i}].{f}");
    if plugin.get("path").is_some_and(|p| !p.is_null()) {
        return Err(error(at("path"), "not supported: give the configuration inline"));
    }
    let Some(config) = plugin.get("configuration").and_then(Value::as_object) else {
        return Err(error(at("configuration"), "required (a PodSecurityConfiguration)"));
    };
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = config.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    if kind != "PodSecurityConfiguration" || !POD_SECURITY_API_VERSIONS.contains(&api_version) {
        return Err(error(
            at("configuration.kind"),
            format!("want a PodSecurityConfiguration of {POD_SECURITY_API_VERSIONS:?}"),
        ));
    }
    let defaults = match config.get("defaults") {
        None | Some(Value::Null) => Policy::default(),
        Some(Value::Object(defaults)) => parse_defaults(defaults, &at("configuration.defaults"))?,
        Some(_) => return Err(error(at("configuration.defaults"), "must be a mapping")),
    };
    let exemptions = match config.get("exemptions") {
        None | Some(Value::Null) => Exemptions::default(),
        Some(Value::Object(e)) => {
            let list = |key: &str| names(e.get(key), &at(&format!("configuration.exemptions.{key}")));
            Exemptions {
                usernames: list("usernames")?,
                namespaces: list("namespaces")?,
                runtime_classes: list("runtimeClasses")?,
            }
        }
        Some(_) => return Err(error(at("configuration.exemptions"), "must be a mapping")),
    };
    Ok(PodSecurityConfig { defaults, exemptions })
}

/// `defaults`: `enforce`, `enforce-version`, `audit`, ... (unset: privileged, latest).
fn parse_defaults(defaults: &Map<String, Value>, field: &str) -> Result<Policy, Error> {
    let mode = |mode: Mode| -> Result<LevelVersion, Error> {
        let name = mode.as_str();
        let level = match defaults.get(name).and_then(Value::as_str) {
            None => Level::Privileged,
            Some(text) => Level::parse(text).ok_or_else(|| {
                error(format!("{field}.{name}"), format!("{text:?}: must be one of privileged, baseline, restricted"))
            })?,
        };
        let version_key = format!("{name}-version");
        let version = match defaults.get(&version_key).and_then(Value::as_str) {
            None => "latest".to_string(),
            Some(v) if super::valid_version(v) => v.to_string(),
            Some(v) => return Err(error(format!("{field}.{version_key}"), format!("{v:?}: must be latest or v1.x"))),
        };
        Ok(LevelVersion { level, version })
    };
    Ok(Policy { enforce: mode(Mode::Enforce)?, audit: mode(Mode::Audit)?, warn: mode(Mode::Warn)? })
}

fn names(value: Option<&Value>, field: &str) -> Result<BTreeSet<String>, Error> {
    let items = match value {
        None | Some(Value::Null) => return Ok(BTreeSet::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(error(field, "must be a list of names")),
    };
    if items.len() > MAX_EXEMPTIONS {
        return Err(error(field, format!("at most {MAX_EXEMPTIONS} entries")));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item.as_str() {
            Some(name) if !name.is_empty() => Ok(name.to_string()),
            _ => Err(error(format!("{field}[{i}]"), "must be a non-empty string")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: EventRateLimit
  path: /etc/eventconfig.yaml
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: baseline
      enforce-version: v1.32
      warn: restricted
    exemptions:
      usernames: [system:serviceaccount:kube-system:replicaset-controller]
      runtimeClasses: [kata]
      namespaces: [kube-system]
"#;

    #[test]
    fn the_pod_security_plugin_gives_defaults_and_exemptions() {
        let config = parse_admission_config(FILE).expect("parsed");
        assert_eq!(config.defaults.enforce, LevelVersion { level: Level::Baseline, version: "v1.32".into() });
        assert_eq!(config.defaults.warn, LevelVersion::latest(Level::Restricted));
        assert_eq!(config.defaults.audit, LevelVersion::latest(Level::Privileged));
        assert!(config.exempt(None, "kube-system", None));
        assert!(config.exempt(None, "default", Some("kata")));
        assert!(config.exempt(Some("system:serviceaccount:kube-system:replicaset-controller"), "default", None));
        assert!(!config.exempt(Some("alice"), "default", Some("runc")));
    }

    #[test]
    fn no_plugin_is_upstreams_default_and_bad_fields_are_named() {
        let none = "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins: []\n";
        assert_eq!(parse_admission_config(none).expect("parsed"), PodSecurityConfig::default());
        let head =
            "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: PodSecurity\n";
        let inline = "  configuration:\n    apiVersion: pod-security.admission.config.k8s.io/v1\n    \
                      kind: PodSecurityConfiguration\n";
        for (body, field) in [
            ("  path: /x.yaml\n".to_string(), "plugins[0].path"),
            (String::new(), "plugins[0].configuration"),
            (format!("{inline}    defaults: {{enforce: strict}}\n"), "plugins[0].configuration.defaults.enforce"),
            (
                format!("{inline}    defaults: {{warn-version: \"1.2\"}}\n"),
                "plugins[0].configuration.defaults.warn-version",
            ),
            (
                format!("{inline}    exemptions: {{namespaces: [\"\"]}}\n"),
                "plugins[0].configuration.exemptions.namespaces[0]",
            ),
            (
                format!("{inline}    exemptions: {{usernames: alice}}\n"),
                "plugins[0].configuration.exemptions.usernames",
            ),
        ] {
            let err = parse_admission_config(&format!("{head}{body}")).expect_err(&body);
            assert_eq!(err.field, field, "{body}: {err}");
        }
        assert_eq!(parse_admission_config("kind: Pod\n").expect_err("kind").field, "kind");
    }
}
