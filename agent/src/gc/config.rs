//! The GC settings of the kubelet configuration: `KubeletConfiguration`'s
//! `imageGCHighThresholdPercent`, `imageGCLowThresholdPercent` and
//! `imageMinimumGCAge`, and the kubelet flags `--image-gc-high-threshold`,
//! `--image-gc-low-threshold`, `--minimum-image-ttl-duration`,
//! `--minimum-container-ttl-duration`,
//! `--maximum-dead-containers-per-container` and
//! `--pod-infra-container-image` (the sandbox image, never removed). Flags
//! win over the file, the file over upstream's defaults; validation as
//! upstream (thresholds 0..=100, low below high).
//!
//! Pure: callers pass the file's fields and the flags' text.

use std::time::Duration;

use super::containers::ContainerPolicy;
use super::images::ImagePolicy;

/// A bad GC setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{setting} {value:?}: not a duration (e.g. 2m0s, 90s, 1h)")]
    Duration { setting: &'static str, value: String },
    #[error("{setting} {value}: must be between 0 and 100")]
    Percent { setting: &'static str, value: i64 },
    #[error("imageGCLowThresholdPercent ({low}) must be less than imageGCHighThresholdPercent ({high})")]
    Thresholds { low: u8, high: u8 },
    #[error("--maximum-dead-containers-per-container {0}: must be -1 (no limit) or more")]
    MaxPerContainer(i64),
}

/// GC fields of the configuration file, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileFields {
    /// `imageGCHighThresholdPercent`.
    pub image_gc_high_threshold_percent: Option<i64>,
    /// `imageGCLowThresholdPercent`.
    pub image_gc_low_threshold_percent: Option<i64>,
    /// `imageMinimumGCAge`.
    pub image_minimum_gc_age: Option<String>,
}

/// GC flags, as given.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Flags {
    /// Image filesystem usage (percent) at which image GC starts (default 85; 100 turns it off).
    #[arg(long, allow_negative_numbers = true)]
    pub image_gc_high_threshold: Option<i64>,
    /// Usage (percent) image GC frees down to (default 80).
    #[arg(long, allow_negative_numbers = true)]
    pub image_gc_low_threshold: Option<i64>,
    /// Minimum age of an unused image before GC may remove it (default 2m0s).
    #[arg(long)]
    pub minimum_image_ttl_duration: Option<String>,
    /// Minimum age of a dead container before GC may remove it (default 0s).
    #[arg(long)]
    pub minimum_container_ttl_duration: Option<String>,
    /// Dead instances kept per container (default 1; -1: no limit).
    #[arg(long, allow_negative_numbers = true)]
    pub maximum_dead_containers_per_container: Option<i64>,
    /// The sandbox image; image GC never removes it (default: the runtime's).
    #[arg(long)]
    pub pod_infra_container_image: Option<String>,
    /// Period of container GC in ms (bosun's own; upstream's is 1 min).
    #[arg(long, env = "BOSUN_CONTAINER_GC_PERIOD_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub container_gc_period_ms: u64,
    /// Period of image GC in ms (bosun's own; upstream's is 5 min).
    #[arg(long, env = "BOSUN_IMAGE_GC_PERIOD_MS", default_value_t = 300_000,
          value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub image_gc_period_ms: u64,
}

impl Default for Flags {
    fn default() -> Self {
        Self {
            image_gc_high_threshold: None,
            image_gc_low_threshold: None,
            minimum_image_ttl_duration: None,
            minimum_container_ttl_duration: None,
            maximum_dead_containers_per_container: None,
            pod_infra_container_image: None,
            container_gc_period_ms: 60_000,
            image_gc_period_ms: 300_000,
        }
    }
}

impl Flags {
    /// The GC periods.
    pub fn periods(&self) -> super::Periods {
        super::Periods {
            containers: Duration::from_millis(self.container_gc_period_ms),
            images: Duration::from_millis(self.image_gc_period_ms),
        }
    }
}

/// The resolved GC settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcSettings {
    pub containers: ContainerPolicy,
    pub images: ImagePolicy,
    /// `--pod-infra-container-image`, pinned beside the runtime's sandbox image.
    pub sandbox_image: Option<String>,
}

/// Parses a Go duration (`time.ParseDuration`): `300ms`, `1.5h`, `2m0s`, `0`.
/// Negative durations are refused.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_end);
        let unit_end = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let unit_nanos: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        let nanos = value * unit_nanos;
        // Go's limit: about 290 years.
        if !nanos.is_finite() || nanos > i64::MAX as f64 {
            return None;
        }
        total = total.checked_add(Duration::from_nanos(nanos as u64))?;
        rest = tail;
    }
    (total.as_nanos() <= i64::MAX as u128).then_some(total)
}

fn duration(setting: &'static str, text: Option<&String>, default: Duration) -> Result<Duration, Error> {
    match text {
        Some(value) => parse_go_duration(value).ok_or_else(|| Error::Duration { setting, value: value.clone() }),
        None => Ok(default),
    }
}

fn percent(setting: &'static str, value: Option<i64>, default: u8) -> Result<u8, Error> {
    match value {
        Some(value) => u8::try_from(value).ok().filter(|p| *p <= 100).ok_or(Error::Percent { setting, value }),
        None => Ok(default),
    }
}

/// Combines `flags` and `file` (flags win) over upstream's defaults.
pub fn resolve(flags: &Flags, file: &FileFields) -> Result<GcSettings, Error> {
    let defaults = ImagePolicy::default();
    let high = percent(
        "imageGCHighThresholdPercent",
        flags.image_gc_high_threshold.or(file.image_gc_high_threshold_percent),
        defaults.high_threshold_percent,
    )?;
    let low = percent(
        "imageGCLowThresholdPercent",
        flags.image_gc_low_threshold.or(file.image_gc_low_threshold_percent),
        defaults.low_threshold_percent,
    )?;
    if low >= high {
        return Err(Error::Thresholds { low, high });
    }
    let min_age = duration(
        "imageMinimumGCAge",
        flags.minimum_image_ttl_duration.as_ref().or(file.image_minimum_gc_age.as_ref()),
        defaults.min_age,
    )?;
    let container_defaults = ContainerPolicy::default();
    let container_min_age = duration(
        "--minimum-container-ttl-duration",
        flags.minimum_container_ttl_duration.as_ref(),
        container_defaults.min_age,
    )?;
    let max_per_pod_container = match flags.maximum_dead_containers_per_container {
        None => container_defaults.max_per_pod_container,
        Some(n) if n < 0 => {
            if n != -1 {
                return Err(Error::MaxPerContainer(n));
            }
            None
        }
        Some(n) => Some(usize::try_from(n).map_err(|_| Error::MaxPerContainer(n))?),
    };
    Ok(GcSettings {
        containers: ContainerPolicy { min_age: container_min_age, max_per_pod_container },
        images: ImagePolicy { high_threshold_percent: high, low_threshold_percent: low, min_age },
        sandbox_image: flags.pod_infra_container_image.clone().filter(|s| !s.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_as_time_parse_duration() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("2m0s", Some(Duration::from_secs(120))),
            ("0s", Some(Duration::ZERO)),
            ("0", Some(Duration::ZERO)),
            ("90s", Some(Duration::from_secs(90))),
            ("1.5h", Some(Duration::from_secs(5400))),
            ("1h2m3s", Some(Duration::from_secs(3723))),
            ("300ms", Some(Duration::from_millis(300))),
            ("10us", Some(Duration::from_micros(10))),
            ("5", None),
            ("", None),
            ("-1s", None),
            ("1x", None),
            ("1..2s", None),
            ("s", None),
            ("99999999999h", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_duration(text), *want, "{text:?}");
        }
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_are_upstreams() {
        let defaults = resolve(&Flags::default(), &FileFields::default()).unwrap();
        assert_eq!(defaults.images, ImagePolicy::default());
        assert_eq!(defaults.containers, ContainerPolicy::default());
        let file = FileFields {
            image_gc_high_threshold_percent: Some(50),
            image_gc_low_threshold_percent: Some(40),
            image_minimum_gc_age: Some("0s".into()),
        };
        let from_file = resolve(&Flags::default(), &file).unwrap();
        assert_eq!(
            from_file.images,
            ImagePolicy { high_threshold_percent: 50, low_threshold_percent: 40, min_age: Duration::ZERO }
        );
        let flags = Flags {
            image_gc_high_threshold: Some(90),
            minimum_image_ttl_duration: Some("1m".into()),
            maximum_dead_containers_per_container: Some(-1),
            minimum_container_ttl_duration: Some("10s".into()),
            pod_infra_container_image: Some("r/pause:1".into()),
            ..Flags::default()
        };
        let both = resolve(&flags, &file).unwrap();
        assert_eq!(
            both.images,
            ImagePolicy { high_threshold_percent: 90, low_threshold_percent: 40, min_age: Duration::from_secs(60) }
        );
        assert_eq!(both.containers, ContainerPolicy { min_age: Duration::from_secs(10), max_per_pod_container: None });
        assert_eq!(both.sandbox_image.as_deref(), Some("r/pause:1"));
    }

    #[test]
    fn bad_settings_are_refused_with_their_name() {
        let file = |high, low| FileFields {
            image_gc_high_threshold_percent: Some(high),
            image_gc_low_threshold_percent: Some(low),
            image_minimum_gc_age: None,
        };
        assert_eq!(resolve(&Flags::default(), &file(80, 80)), Err(Error::Thresholds { low: 80, high: 80 }));
        assert_eq!(
            resolve(&Flags::default(), &file(101, 0)),
            Err(Error::Percent { setting: "imageGCHighThresholdPercent", value: 101 })
        );
        assert_eq!(
            resolve(&Flags::default(), &file(50, -1)),
            Err(Error::Percent { setting: "imageGCLowThresholdPercent", value: -1 })
        );
        assert!(resolve(&Flags::default(), &file(100, 0)).is_ok(), "100 turns image GC off");
        let flags = Flags { maximum_dead_containers_per_container: Some(-2), ..Flags::default() };
        assert_eq!(resolve(&flags, &FileFields::default()), Err(Error::MaxPerContainer(-2)));
        let flags = Flags { minimum_image_ttl_duration: Some("soon".into()), ..Flags::default() };
        assert!(matches!(resolve(&flags, &FileFields::default()), Err(Error::Duration { .. })));
    }
}
