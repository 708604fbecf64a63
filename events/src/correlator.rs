//! Event correlation, decided without I/O (the idea of upstream's
//! `EventCorrelator`, written for bosun):
//!
//! 1. **Spam filter.** A token bucket per (source, involved object): `burst`
//!    events, then one per `refill_every`. Events over the budget are
//!    skipped.
//! 2. **Aggregation.** Events that are *similar* (same source, object, type
//!    and reason, different message) are counted per distinct message; from
//!    the `max_similar`-th distinct message within `similar_window` on, they
//!    all land in one Event whose message starts with `COMBINED_PREFIX`.
//! 3. **Deduplication.** An *identical* event (same source, object, type,
//!    reason and message) updates the Event posted before: `count` + 1, a new
//!    `lastTimestamp` and the latest message, instead of a new object.
//!
//! Keys leave durations out of messages ("back-off 10s" and "back-off 20s"
//! are the same event); with `ignore_numbers` (the node agent's recorder)
//! every standalone number too (restart counts, exit codes, sizes), never
//! digits inside names, addresses or versions. Every cache is a bounded LRU.

use std::collections::HashSet;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::lru::Lru;

/// Message prefix of an Event that stands for many similar ones.
pub const COMBINED_PREFIX: &str = "(combined from similar events): ";

/// Correlation limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Distinct messages of similar events before they are combined.
    pub max_similar: usize,
    /// Similar events further apart than this start a new count.
    pub similar_window: Duration,
    /// Events an object may get at once.
    pub burst: u32,
    /// One more event is allowed per this interval after the burst.
    pub refill_every: Duration,
    /// Entries kept in each cache.
    pub cache_size: usize,
    /// Leave every standalone number out of the deduplication key, not only
    /// durations ("restart count 3" and "restart count 4" are one event).
    pub ignore_numbers: bool,
}

impl Default for Config {
    /// Upstream's values: 10 similar events in 10 min; 25 events per
    /// object, then one per 5 min; 4096 cache entries.
    fn default() -> Self {
        Config {
            max_similar: 10,
            similar_window: Duration::from_secs(600),
            burst: 25,
            refill_every: Duration::from_secs(300),
            cache_size: 4096,
            ignore_numbers: false,
        }
    }
}

/// What to do with one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create this Event.
    Create(Box<Event>),
    /// Update the Event posted before.
    Update(Update),
    /// Drop it (rate-limited).
    Skip,
}

/// The fields to change on an existing Event.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// Namespace of the Event.
    pub namespace: String,
    /// Name of the Event.
    pub name: String,
    /// New `count`.
    pub count: i32,
    /// New `lastTimestamp`.
    pub last_timestamp: Time,
    /// Latest message.
    pub message: String,
}

impl Update {
    /// The merge patch applying this update.
    pub fn patch(&self) -> serde_json::Value {
        serde_json::json!({"count": self.count, "lastTimestamp": self.last_timestamp, "message": self.message})
    }
}

/// A decision and the cache key it was filed under (for `forget`).
#[derive(Debug, Clone, PartialEq)]
pub struct Correlated {
    /// Deduplication key.
    pub key: String,
    /// What to do.
    pub action: Action,
}

#[derive(Debug)]
struct Seen {
    namespace: String,
    name: String,
    count: i32,
}

#[derive(Debug)]
struct Similar {
    messages: HashSet<String>,
    last: Timestamp,
}

#[derive(Debug)]
struct Bucket {
    tokens: u32,
    refilled: Timestamp,
}

/// Correlation state of one recorder.
#[derive(Debug)]
pub struct Correlator {
    config: Config,
    seen: Lru<Seen>,
    similar: Lru<Similar>,
    buckets: Lru<Bucket>,
}

impl Default for Correlator {
    fn default() -> Self {
        Correlator::new(Config::default())
    }
}

const SEP: char = '\u{1f}';

fn object_key(o: &ObjectReference, with_field: bool) -> String {
    let part = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut key = [&o.kind, &o.namespace, &o.name, &o.uid, &o.api_version].map(part).join(&SEP.to_string());
    if with_field {
        key.push(SEP);
        key.push_str(o.field_path.as_deref().unwrap_or_default());
    }
    key
}

fn source_key(e: &Event) -> String {
    let source = e.source.clone().unwrap_or_default();
    format!("{}{SEP}{}", source.component.unwrap_or_default(), source.host.unwrap_or_default())
}

/// `elapsed` from `earlier` to `now`, zero if the clock went backwards.
fn since(now: Timestamp, earlier: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

impl Correlator {
    /// An empty correlator with `config`.
    pub fn new(config: Config) -> Self {
        let size = config.cache_size;
        Correlator { config, seen: Lru::new(size), similar: Lru::new(size), buckets: Lru::new(size) }
    }

    /// Decides what to do with `event` (rendered with count 1) at `now`,
    /// and remembers it.
    pub fn correlate(&mut self, mut event: Event, now: Timestamp) -> Correlated {
        let source = source_key(&event);
        let spam_key = format!("{source}{SEP}{}", object_key(&event.involved_object, false));
        let similar_key = format!(
            "{source}{SEP}{}{SEP}{}{SEP}{}",
            object_key(&event.involved_object, true),
            event.type_.as_deref().unwrap_or_default(),
            event.reason.as_deref().unwrap_or_default(),
        );
        let message = event.message.clone().unwrap_or_default();
        let normalized = normalize(&message, self.config.ignore_numbers);
        if !self.take_token(&spam_key, now) {
            return Correlated { key: format!("{similar_key}{SEP}{normalized}"), action: Action::Skip };
        }
        let key = if self.combine(&similar_key, normalized.clone(), now) {
            event.message = Some(format!("{COMBINED_PREFIX}{message}"));
            format!("{similar_key}{SEP}{COMBINED_PREFIX}")
        } else {
            format!("{similar_key}{SEP}{normalized}")
        };
        let action = match self.seen.get_mut(&key) {
            Some(seen) => {
                seen.count = seen.count.saturating_add(1);
                Action::Update(Update {
                    namespace: seen.namespace.clone(),
                    name: seen.name.clone(),
                    count: seen.count,
                    last_timestamp: Time(now),
                    message: event.message.clone().unwrap_or_default(),
                })
            }
            None => {
                let seen = Seen {
                    namespace: event.metadata.namespace.clone().unwrap_or_default(),
                    name: event.metadata.name.clone().unwrap_or_default(),
                    count: 1,
                };
                self.seen.insert(key.clone(), seen);
                Action::Create(Box::new(event))
            }
        };
        Correlated { key, action }
    }

    /// Forgets the Event filed under `key` (its write failed, or it is
    /// gone), so the next identical event creates a new one.
    pub fn forget(&mut self, key: &str) {
        self.seen.remove(key);
    }

    /// Takes one token from the bucket of `key`; false if it is empty.
    fn take_token(&mut self, key: &str, now: Timestamp) -> bool {
        let (burst, every) = (self.config.burst, self.config.refill_every);
        let Some(bucket) = self.buckets.get_mut(key) else {
            let Some(tokens) = burst.checked_sub(1) else { return false };
            self.buckets.insert(key.to_string(), Bucket { tokens, refilled: now });
            return true;
        };
        let earned = since(now, bucket.refilled).as_nanos().checked_div(every.as_nanos()).unwrap_or(u128::MAX);
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            bucket.tokens = bucket.tokens.saturating_add(earned).min(burst);
            bucket.refilled = now;
        }
        match bucket.tokens.checked_sub(1) {
            Some(left) => {
                bucket.tokens = left;
                true
            }
            None => false,
        }
    }

    /// Counts `message` among the similar events of `key`; true once they
    /// are to be combined.
    fn combine(&mut self, key: &str, message: String, now: Timestamp) -> bool {
        let (max, window) = (self.config.max_similar, self.config.similar_window);
        let Some(similar) = self.similar.get_mut(key) else {
            let messages = HashSet::from([message]);
            let combined = messages.len() >= max;
            self.similar.insert(key.to_string(), Similar { messages, last: now });
            return combined;
        };
        if since(now, similar.last) > window {
            similar.messages.clear();
        }
        similar.last = now;
        if similar.messages.len() < max {
            similar.messages.insert(message);
        }
        similar.messages.len() >= max
    }
}

/// `message` with every duration token ("10s", "1m30s", "1.5h", "200ms")
/// replaced by `#`, so repeats that differ only in a back-off compare equal.
pub fn without_durations(message: &str) -> String {
    normalize(message, false)
}

/// `message` with every duration and every standalone number ("code 137",
/// "count 5,", "1234 bytes") replaced by `#`; digits inside names, image
/// references, addresses, versions and fractions ("web-5", "host:5000",
/// "1.2.3", "0/3") stay.
pub fn without_numbers(message: &str) -> String {
    normalize(message, true)
}

fn normalize(message: &str, numbers: bool) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < chars.len() {
        // Not inside a name ("web-5s", "v1.2s", "host:5000").
        let at_word_start = i == 0 || !(chars[i - 1].is_alphanumeric() || "-_./:".contains(chars[i - 1]));
        if at_word_start && chars[i].is_ascii_digit() {
            let end = duration_end(&chars, i).or_else(|| if numbers { number_end(&chars, i) } else { None });
            if let Some(end) = end {
                out.push('#');
                i = end;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// End of a plain number (`137`, `1.5`) starting at `start`, if it stands
/// alone: followed by the end, a space, closing punctuation, or a sentence
/// mark that ends the text or is followed by a space.
fn number_end(chars: &[char], start: usize) -> Option<usize> {
    let digits_from = |i: usize| chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = start + digits_from(start);
    if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
        i += 1 + digits_from(i + 1);
    }
    let ends_text = |at: usize| chars.get(at).is_none_or(|c| c.is_whitespace());
    match chars.get(i) {
        None => Some(i),
        Some(c) if c.is_whitespace() || ",;)]}\"'".contains(*c) => Some(i),
        Some(c) if ".:!?".contains(*c) && ends_text(i + 1) => Some(i),
        _ => None,
    }
}

/// End of a duration token starting at `start` (one or more `<number><unit>`
/// pairs followed by a non-alphanumeric character or the end).
fn duration_end(chars: &[char], start: usize) -> Option<usize> {
    const UNITS: [&str; 7] = ["ns", "us", "µs", "ms", "h", "m", "s"];
    let mut i = start;
    let mut pairs = 0;
    loop {
        if !chars.get(i).is_some_and(char::is_ascii_digit) {
            break;
        }
        let digits = chars[i..].iter().take_while(|c| c.is_ascii_digit() || **c == '.').count();
        if digits == 0 {
            break;
        }
        let rest = &chars[i + digits..];
        let unit = UNITS.iter().find(|u| {
            let u: Vec<char> = u.chars().collect();
            rest.starts_with(&u) && rest.get(u.len()).is_none_or(|c| !c.is_alphabetic())
        })?;
        i += digits + unit.chars().count();
        pairs += 1;
    }
    let ends_word = chars.get(i).is_none_or(|c| !c.is_alphanumeric());
    (pairs > 0 && ends_word).then_some(i)
}

#[cfg(test)]
#[path = "correlator_tests.rs"]
mod tests;
