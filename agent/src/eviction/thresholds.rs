//! Eviction thresholds from configuration (pure): the signals bosun
//! observes, upstream's default hard thresholds, the KubeletConfiguration
//! maps (`evictionHard: {memory.available: 100Mi}`, percentages allowed)
//! and the flag form (`memory.available<100Mi,nodefs.available<10%`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::Error;

/// An eviction signal the node observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    /// Memory capacity less the working set of all processes.
    MemoryAvailable,
    /// Free bytes on the filesystem of the agent's root dir.
    NodeFsAvailable,
    /// `kernel.pid_max` less the processes running.
    PidAvailable,
}

impl Signal {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::NodeFsAvailable => "nodefs.available",
            Signal::PidAvailable => "pid.available",
        }
    }

    /// Parses a configuration name.
    pub fn parse(s: &str) -> Option<Signal> {
        [Signal::MemoryAvailable, Signal::NodeFsAvailable, Signal::PidAvailable].into_iter().find(|x| x.as_str() == s)
    }

    /// The node condition a met threshold of this signal raises.
    pub fn condition(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "MemoryPressure",
            Signal::NodeFsAvailable => "DiskPressure",
            Signal::PidAvailable => "PIDPressure",
        }
    }

    /// The NoSchedule taint of that condition (upstream's `TaintNode*Pressure`).
    pub fn taint_key(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "node.kubernetes.io/memory-pressure",
            Signal::NodeFsAvailable => "node.kubernetes.io/disk-pressure",
            Signal::PidAvailable => "node.kubernetes.io/pid-pressure",
        }
    }

    /// The resource named in the Evicted message.
    pub fn resource(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory",
            Signal::NodeFsAvailable => "ephemeral-storage",
            Signal::PidAvailable => "pids",
        }
    }
}

/// A threshold value: an absolute amount (bytes or pids) or a percentage of capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdValue {
    /// Bytes (memory, nodefs) or a count (pids).
    Quantity(i64),
    /// Percent of the signal's capacity, in (0, 100].
    Percent(f64),
}

impl ThresholdValue {
    /// The amount for a signal whose capacity is `capacity`.
    pub fn amount(self, capacity: i64) -> i64 {
        match self {
            ThresholdValue::Quantity(q) => q,
            // Capacities are far below 2^53: the product is exact enough.
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            ThresholdValue::Percent(p) => (capacity as f64 * p / 100.0) as i64,
        }
    }
}

/// One threshold: the signal is under pressure when its available amount is below the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The signal.
    pub signal: Signal,
    /// The value.
    pub value: ThresholdValue,
    /// `None`: hard (evict at once); `Some`: soft, evict once met this long.
    pub grace: Option<Duration>,
}

/// Every threshold the node enforces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds {
    /// Hard and soft thresholds.
    pub all: Vec<Threshold>,
    /// How long a pressure condition stays after its threshold clears
    /// (`evictionPressureTransitionPeriod`, upstream default 5 m).
    pub transition: Duration,
}

impl Thresholds {
    /// The hard `memory.available` threshold in bytes for a node with
    /// `capacity` bytes (0 when there is none): Node allocatable leaves it out.
    pub fn hard_memory(&self, capacity: i64) -> i64 {
        self.all
            .iter()
            .filter(|t| t.signal == Signal::MemoryAvailable && t.grace.is_none())
            .map(|t| t.value.amount(capacity))
            .max()
            .unwrap_or(0)
    }
}

/// Upstream's default `evictionPressureTransitionPeriod`.
pub const DEFAULT_TRANSITION: Duration = Duration::from_secs(300);

fn parse_value(signal: &str, value: &str) -> Result<ThresholdValue, Error> {
    let bad = || Error::BadValue { signal: signal.to_string(), value: value.to_string() };
    let value = value.trim();
    if let Some(p) = value.strip_suffix('%') {
        let p: f64 = p.trim().parse().map_err(|_| bad())?;
        return if p > 0.0 && p <= 100.0 { Ok(ThresholdValue::Percent(p)) } else { Err(bad()) };
    }
    let q = bosun_resources::plain_value(value).map_err(|_| bad())?;
    if q < 0 {
        return Err(bad());
    }
    Ok(ThresholdValue::Quantity(q))
}

/// A Go duration as the kubelet writes them (`90s`, `1m30s`, `1h`, `500ms`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(Duration::try_from_secs_f64(number * seconds).ok()?)?;
    }
    Some(total)
}

/// Thresholds from the configuration maps; `hard` `None` means the default
/// `memory.available<100Mi` (upstream's memory default). Upstream's
/// `nodefs.available<10%` is not a default here: the upstream kubelet frees
/// node-level disk (image GC) before it evicts pods for disk, which bosun's
/// eviction does not do yet, so disk and pid thresholds apply only when
/// configured. Every soft threshold needs a grace period, as upstream.
pub fn from_config(
    hard: Option<&BTreeMap<String, String>>,
    soft: &BTreeMap<String, String>,
    soft_grace: &BTreeMap<String, String>,
    transition: Option<Duration>,
) -> Result<Thresholds, Error> {
    let defaults = BTreeMap::from([("memory.available".to_string(), "100Mi".to_string())]);
    let mut all = Vec::new();
    for (name, value) in hard.unwrap_or(&defaults) {
        let signal = Signal::parse(name).ok_or_else(|| Error::UnknownSignal(name.clone()))?;
        all.push(Threshold { signal, value: parse_value(name, value)?, grace: None });
    }
    for (name, value) in soft {
        let signal = Signal::parse(name).ok_or_else(|| Error::UnknownSignal(name.clone()))?;
        let grace_text = soft_grace
            .get(name)
            .ok_or_else(|| Error::BadGrace { signal: name.clone(), message: "no grace period specified".into() })?;
        let grace = parse_duration(grace_text)
            .ok_or_else(|| Error::BadGrace { signal: name.clone(), message: format!("bad duration {grace_text:?}") })?;
        all.push(Threshold { signal, value: parse_value(name, value)?, grace: Some(grace) });
    }
    Ok(Thresholds { all, transition: transition.unwrap_or(DEFAULT_TRANSITION) })
}

/// The flag form `memory.available<100Mi,nodefs.available<10%` as a map.
pub fn parse_flag(text: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, value) = entry.split_once('<').ok_or_else(|| Error::BadFlag(entry.to_string()))?;
        out.insert(name.trim().to_string(), value.trim().to_string());
    }
    Ok(out)
}

/// The grace flag form `memory.available=1m30s,...` as a map.
pub fn parse_grace_flag(text: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, value) = entry.split_once('=').ok_or_else(|| Error::BadFlag(entry.to_string()))?;
        out.insert(name.trim().to_string(), value.trim().to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn default_is_upstreams_memory_threshold() {
        let t = from_config(None, &BTreeMap::new(), &BTreeMap::new(), None).expect("defaults");
        assert_eq!(t.all.len(), 1);
        assert_eq!(t.all[0].signal, Signal::MemoryAvailable);
        assert_eq!(t.all[0].value, ThresholdValue::Quantity(100 << 20));
        assert_eq!(t.transition, DEFAULT_TRANSITION);
    }

    #[test]
    fn config_table() {
        type Map = BTreeMap<String, String>;
        let cases: Vec<(Map, Map, Map, bool)> = vec![
            (map(&[("memory.available", "1Gi"), ("pid.available", "5%")]), map(&[]), map(&[]), true),
            (
                map(&[("memory.available", "1Gi")]),
                map(&[("memory.available", "2Gi")]),
                map(&[("memory.available", "1m30s")]),
                true,
            ),
            (map(&[]), map(&[("memory.available", "2Gi")]), map(&[]), false),
            (map(&[("imagefs.available", "15%")]), map(&[]), map(&[]), false),
            (map(&[("memory.available", "150%")]), map(&[]), map(&[]), false),
            (map(&[("memory.available", "-1")]), map(&[]), map(&[]), false),
            (map(&[("memory.available", "lots")]), map(&[]), map(&[]), false),
        ];
        for (hard, soft, grace, ok) in cases {
            assert_eq!(from_config(Some(&hard), &soft, &grace, None).is_ok(), ok, "{hard:?} {soft:?} {grace:?}");
        }
        let soft = from_config(
            Some(&map(&[])),
            &map(&[("memory.available", "2Gi")]),
            &map(&[("memory.available", "1m30s")]),
            None,
        )
        .expect("soft");
        assert_eq!(soft.all[0].grace, Some(Duration::from_secs(90)));
    }

    #[test]
    fn flags_and_durations_parse() {
        assert_eq!(
            parse_flag("memory.available<100Mi, nodefs.available<10%").expect("ok"),
            map(&[("memory.available", "100Mi"), ("nodefs.available", "10%")])
        );
        assert!(parse_flag("memory.available=100Mi").is_err());
        assert_eq!(parse_grace_flag("memory.available=30s").expect("ok"), map(&[("memory.available", "30s")]));
        assert_eq!(parse_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5d"), None);
        assert_eq!(ThresholdValue::Percent(10.0).amount(1000), 100);
    }
}
