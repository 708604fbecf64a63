//! Pod Security Admission (upstream's built-in `PodSecurity` plugin).
//!
//! A namespace chooses, by its `pod-security.kubernetes.io/<mode>` labels, a
//! Pod Security Standards level (`privileged | baseline | restricted`) for
//! each mode: `enforce` refuses pods that violate it (403), `warn` returns
//! `Warning` headers, `audit` logs. Every `-version` (`latest` or `v1.x`) is
//! evaluated as `latest`.
//!
//! This module is pure: label parsing ([`Policy::from_labels`]) and the
//! checks ([`evaluate`], split by level into [`baseline`] and
//! [`restricted`]); [`admission`] applies it to writes. Workload resources
//! (their pod templates) only ever get warnings, as upstream. A cluster-wide
//! [`config`] (`--admission-control-config-file`) gives the levels of
//! namespaces without labels and the exempt users, namespaces and runtime
//! classes.

pub mod admission;
pub mod baseline;
pub mod config;
pub mod restricted;
pub mod view;

#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::{Map, Value};

pub use view::PodView;

/// The label prefix of every Pod Security Admission label.
pub const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// A Pod Security Standards level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    /// The label value of the level.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }

    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }
}

/// The admission modes, each with its own label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Audit,
    Warn,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 3] = [Mode::Enforce, Mode::Audit, Mode::Warn];

    /// The label's suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
            Mode::Warn => "warn",
        }
    }
}

/// A level with its version, as reported (`restricted:latest`). Versions
/// are kept for the message only; every version is evaluated as `latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelVersion {
    pub level: Level,
    pub version: String,
}

impl LevelVersion {
    fn latest(level: Level) -> LevelVersion {
        LevelVersion { level, version: "latest".into() }
    }
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

/// An invalid Pod Security label value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata.labels[{label}]: Invalid value: {value:?}: {expected}")]
pub struct LabelError {
    pub label: String,
    pub value: String,
    pub expected: &'static str,
}

/// What a namespace's labels ask for, per mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub audit: LevelVersion,
    pub warn: LevelVersion,
}

impl Default for Policy {
    /// No labels: everything is privileged.
    fn default() -> Policy {
        let p = LevelVersion::latest(Level::Privileged);
        Policy { enforce: p.clone(), audit: p.clone(), warn: p }
    }
}

/// What a level label may hold.
const LEVEL_VALUES: &str = "must be one of privileged, baseline, restricted";
/// What a version label may hold.
const VERSION_VALUES: &str = "must be \"latest\" or \"v1.x\"";

/// `latest` or `v1.<minor>`.
fn valid_version(v: &str) -> bool {
    v == "latest"
        || v.strip_prefix("v1.")
            .is_some_and(|minor| !minor.is_empty() && minor.len() <= 4 && minor.bytes().all(|b| b.is_ascii_digit()))
}

impl Policy {
    /// The policy of a namespace's labels and the invalid label values.
    /// With an invalid enforce level or version, `enforce` is
    /// `restricted:latest` (upstream's fail-closed choice); an invalid
    /// audit or warn value leaves that mode privileged. An unset `warn`
    /// follows a valid `enforce` level (upstream's default).
    pub fn from_labels(labels: Option<&Map<String, Value>>) -> (Policy, Vec<LabelError>) {
        Policy::from_labels_or(labels, &Policy::default())
    }

    /// [`Policy::from_labels`] with `defaults` for the modes a namespace
    /// has no label of (the cluster's configuration).
    pub fn from_labels_or(labels: Option<&Map<String, Value>>, defaults: &Policy) -> (Policy, Vec<LabelError>) {
        let mut errors = Vec::new();
        let mut parse = |mode: Mode| -> Result<Option<LevelVersion>, ()> {
            let get = |key: String| labels?.get(&key).and_then(Value::as_str).map(|v| (key, v.to_string()));
            let level = get(format!("{LABEL_PREFIX}{}", mode.as_str()));
            let version = get(format!("{LABEL_PREFIX}{}-version", mode.as_str()));
            let mut valid = true;
            let level = match level {
                Some((label, value)) => match Level::parse(&value) {
                    Some(level) => Some(level),
                    None => {
                        errors.push(LabelError { label, value, expected: LEVEL_VALUES });
                        valid = false;
                        None
                    }
                },
                None => None,
            };
            let version = match version {
                Some((_, v)) if valid_version(&v) => v,
                Some((label, value)) => {
                    errors.push(LabelError { label, value, expected: VERSION_VALUES });
                    valid = false;
                    "latest".into()
                }
                None => "latest".into(),
            };
            match (valid, level) {
                (false, _) => Err(()),
                (true, level) => Ok(level.map(|level| LevelVersion { level, version })),
            }
        };
        let (enforce, audit, warn) = (parse(Mode::Enforce), parse(Mode::Audit), parse(Mode::Warn));
        let privileged = || LevelVersion::latest(Level::Privileged);
        let policy = Policy {
            enforce: match &enforce {
                Ok(lv) => lv.clone().unwrap_or_else(|| defaults.enforce.clone()),
                Err(()) => LevelVersion::latest(Level::Restricted),
            },
            audit: match audit {
                Ok(lv) => lv.unwrap_or_else(|| defaults.audit.clone()),
                Err(()) => privileged(),
            },
            warn: match (warn, enforce) {
                (Ok(Some(lv)), _) => lv,
                (Ok(None), Ok(Some(lv))) => lv,
                (Ok(None), _) => defaults.warn.clone(),
                (Err(()), _) => privileged(),
            },
        };
        (policy, errors)
    }

    /// Every mode is privileged: nothing to evaluate.
    pub fn fully_privileged(&self) -> bool {
        [&self.enforce, &self.audit, &self.warn].iter().all(|lv| lv.level == Level::Privileged)
    }
}

/// One failed check: upstream's forbidden reason and its detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub reason: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.detail)
    }
}

/// The checks of `level` that `pod` fails, in report order.
pub fn evaluate(level: Level, pod: &PodView<'_>) -> Vec<Violation> {
    let restricted = level == Level::Restricted;
    let baseline = baseline::CHECKS.iter().filter(|(_, replaced)| !(restricted && *replaced)).map(|(check, _)| check);
    let stricter = restricted::CHECKS.iter().filter(|_| restricted);
    match level {
        Level::Privileged => Vec::new(),
        _ => baseline.chain(stricter).filter_map(|check| check(pod)).collect(),
    }
}

/// `violates PodSecurity "restricted:latest": a (..), b (..)`.
pub fn describe(lv: &LevelVersion, violations: &[Violation]) -> String {
    let reasons: Vec<String> = violations.iter().map(Violation::to_string).collect();
    format!("PodSecurity \"{lv}\": {}", reasons.join(", "))
}
