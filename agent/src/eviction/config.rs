//! The eviction settings of the kubelet's configuration (pure):
//! KubeletConfiguration `evictionHard`, `evictionSoft`,
//! `evictionSoftGracePeriod`, `evictionPressureTransitionPeriod` and the
//! flags of the same names (`--eviction-hard=memory.available<100Mi,...`,
//! `--eviction-soft-grace-period=memory.available=1m`). A flag wins over
//! the file, the file over upstream's defaults.

use std::collections::BTreeMap;

use super::thresholds::{from_config, parse_duration, parse_flag, parse_grace_flag, Thresholds};
use super::Error;

/// The KubeletConfiguration field names this module reads.
pub const FIELDS: [&str; 4] =
    ["evictionHard", "evictionSoft", "evictionSoftGracePeriod", "evictionPressureTransitionPeriod"];

/// What a configuration file sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEviction {
    /// `evictionHard`.
    pub eviction_hard: Option<BTreeMap<String, String>>,
    /// `evictionSoft`.
    pub eviction_soft: Option<BTreeMap<String, String>>,
    /// `evictionSoftGracePeriod`.
    pub eviction_soft_grace_period: Option<BTreeMap<String, String>>,
    /// `evictionPressureTransitionPeriod` (a duration, e.g. `5m0s`).
    pub eviction_pressure_transition_period: Option<String>,
}

impl FileEviction {
    /// Reads the four fields from a configuration document.
    pub fn from_document(doc: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let picked: serde_json::Map<String, serde_json::Value> =
            doc.iter().filter(|(k, _)| FIELDS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
        serde_json::from_value(serde_json::Value::Object(picked)).map_err(|e| e.to_string())
    }
}

/// The flags as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvictionFlags {
    /// `--eviction-hard`.
    pub hard: Option<String>,
    /// `--eviction-soft`.
    pub soft: Option<String>,
    /// `--eviction-soft-grace-period`.
    pub soft_grace: Option<String>,
    /// `--eviction-pressure-transition-period`.
    pub transition: Option<String>,
}

/// Flags over file over defaults.
pub fn resolve(flags: &EvictionFlags, file: &FileEviction) -> Result<Thresholds, Error> {
    let hard = flags.hard.as_deref().map(parse_flag).transpose()?.or_else(|| file.eviction_hard.clone());
    let soft = flags.soft.as_deref().map(parse_flag).transpose()?.or_else(|| file.eviction_soft.clone());
    let grace = flags
        .soft_grace
        .as_deref()
        .map(parse_grace_flag)
        .transpose()?
        .or_else(|| file.eviction_soft_grace_period.clone());
    let transition_text = flags.transition.as_ref().or(file.eviction_pressure_transition_period.as_ref());
    let transition = transition_text
        .map(|t| {
            parse_duration(t).ok_or_else(|| Error::BadGrace {
                signal: "evictionPressureTransitionPeriod".into(),
                message: format!("bad duration {t:?}"),
            })
        })
        .transpose()?;
    from_config(hard.as_ref(), &soft.unwrap_or_default(), &grace.unwrap_or_default(), transition)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::eviction::thresholds::{Signal, ThresholdValue};

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let doc: serde_json::Value = serde_json::json!({
            "evictionHard": {"memory.available": "1Gi"},
            "evictionSoft": {"pid.available": "20%"},
            "evictionSoftGracePeriod": {"pid.available": "30s"},
            "evictionPressureTransitionPeriod": "10s",
            "other": 1,
        });
        let file = FileEviction::from_document(doc.as_object().expect("map")).expect("file");
        let t = resolve(&EvictionFlags::default(), &file).expect("file");
        assert_eq!(t.all.len(), 2);
        assert_eq!(t.all[0].value, ThresholdValue::Quantity(1 << 30));
        assert_eq!((t.all[1].signal, t.all[1].grace), (Signal::PidAvailable, Some(Duration::from_secs(30))));
        assert_eq!(t.transition, Duration::from_secs(10));
        let flags = EvictionFlags { hard: Some("memory.available<2Gi".into()), ..Default::default() };
        assert_eq!(resolve(&flags, &file).expect("flags").all[0].value, ThresholdValue::Quantity(2 << 30));
        assert_eq!(resolve(&EvictionFlags::default(), &FileEviction::default()).expect("defaults").all.len(), 1);
        let bad = EvictionFlags { transition: Some("soon".into()), ..Default::default() };
        assert!(resolve(&bad, &file).is_err());
        let bad = serde_json::json!({"evictionHard": "memory.available<1Gi"});
        assert!(FileEviction::from_document(bad.as_object().expect("map")).is_err());
    }
}
