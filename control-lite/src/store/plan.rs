//! Pure decisions of the store: what a write does to a key given its current
//! value, and which key range a prefix covers.
//!
//! Owns no I/O. The SQLite layer reads the current value, asks [`plan_write`]
//! for the resulting [`Event`] and then persists exactly that event.

use super::{Error, Event, EventKind, KeyValue, Result, Revision};

/// A write requested by a client, without its reply channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriteRequest {
    pub key: String,
    pub kind: WriteKind,
}

/// The three kinds of writes and their preconditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// Fails with `AlreadyExists` if the key is live.
    Create { value: Vec<u8> },
    /// Fails with `NotFound` if the key is not live, `Conflict` if `expected`
    /// is set and differs from the live mod revision.
    Update { value: Vec<u8>, expected: Option<Revision> },
    /// Same preconditions as `Update`.
    Delete { expected: Option<Revision> },
}

/// Decides the event a write produces at `revision`, given the key's live
/// value (`None` if the key does not exist or was deleted).
///
/// For a delete, the event's `kv` is the last value stamped with the delete's
/// revision and `prev` is the value as it was before the delete.
pub(crate) fn plan_write(req: &WriteRequest, current: Option<&KeyValue>, revision: Revision) -> Result<Event> {
    let key = &req.key;
    match (&req.kind, current) {
        (WriteKind::Create { .. }, Some(_)) => Err(Error::AlreadyExists { key: key.clone() }),
        (WriteKind::Create { value }, None) => Ok(Event {
            kind: EventKind::Put,
            kv: KeyValue { key: key.clone(), value: value.clone(), create_revision: revision, mod_revision: revision },
            prev: None,
        }),
        (WriteKind::Update { .. } | WriteKind::Delete { .. }, None) => Err(Error::NotFound { key: key.clone() }),
        (WriteKind::Update { value, expected }, Some(cur)) => {
            check_expected(key, *expected, cur)?;
            Ok(Event {
                kind: EventKind::Put,
                kv: KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: cur.create_revision,
                    mod_revision: revision,
                },
                prev: Some(cur.clone()),
            })
        }
        (WriteKind::Delete { expected }, Some(cur)) => {
            check_expected(key, *expected, cur)?;
            Ok(Event {
                kind: EventKind::Delete,
                kv: KeyValue { mod_revision: revision, ..cur.clone() },
                prev: Some(cur.clone()),
            })
        }
    }
}

fn check_expected(key: &str, expected: Option<Revision>, cur: &KeyValue) -> Result<()> {
    match expected {
        Some(expected) if expected != cur.mod_revision => {
            Err(Error::Conflict { key: key.to_owned(), expected, actual: cur.mod_revision })
        }
        _ => Ok(()),
    }
}

/// The smallest string greater than every string starting with `prefix`, or
/// `None` if there is none (empty prefix, or one made only of `char::MAX`).
///
/// SQLite compares TEXT with memcmp and UTF-8 byte order equals code point
/// order, so `prefix <= key < prefix_end(prefix)` selects exactly the keys
/// starting with `prefix`, using the index.
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = next_char(last) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn next_char(c: char) -> Option<char> {
    match c {
        char::MAX => None,
        // Skip the surrogate range, which is not valid in a `char`.
        '\u{D7FF}' => Some('\u{E000}'),
        c => char::from_u32(u32::from(c) + 1),
    }
}

/// Whether `key` is selected by `prefix` (used for live watch fan-out).
pub(crate) fn matches_prefix(key: &str, prefix: &str) -> bool {
    key.starts_with(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, create: Revision, modr: Revision) -> KeyValue {
        KeyValue { key: key.to_owned(), value: value.as_bytes().to_vec(), create_revision: create, mod_revision: modr }
    }

    fn req(kind: WriteKind) -> WriteRequest {
        WriteRequest { key: "/k".to_owned(), kind }
    }

    fn create(v: &str) -> WriteKind {
        WriteKind::Create { value: v.as_bytes().to_vec() }
    }

    fn update(v: &str, expected: Option<Revision>) -> WriteKind {
        WriteKind::Update { value: v.as_bytes().to_vec(), expected }
    }

    #[test]
    fn plans_writes_against_current_value() {
        let live = kv("/k", "old", 3, 5);
        let cases: Vec<(&str, WriteKind, Option<KeyValue>, Result<Event>)> = vec![
            (
                "create absent key",
                create("v"),
                None,
                Ok(Event { kind: EventKind::Put, kv: kv("/k", "v", 9, 9), prev: None }),
            ),
            ("create live key", create("v"), Some(live.clone()), Err(Error::AlreadyExists { key: "/k".into() })),
            ("update absent key", update("v", None), None, Err(Error::NotFound { key: "/k".into() })),
            (
                "unconditional update keeps create revision",
                update("v", None),
                Some(live.clone()),
                Ok(Event { kind: EventKind::Put, kv: kv("/k", "v", 3, 9), prev: Some(live.clone()) }),
            ),
            (
                "update with matching revision",
                update("v", Some(5)),
                Some(live.clone()),
                Ok(Event { kind: EventKind::Put, kv: kv("/k", "v", 3, 9), prev: Some(live.clone()) }),
            ),
            (
                "update with stale revision",
                update("v", Some(4)),
                Some(live.clone()),
                Err(Error::Conflict { key: "/k".into(), expected: 4, actual: 5 }),
            ),
            (
                "delete absent key",
                WriteKind::Delete { expected: None },
                None,
                Err(Error::NotFound { key: "/k".into() }),
            ),
            (
                "delete stamps last value with delete revision",
                WriteKind::Delete { expected: Some(5) },
                Some(live.clone()),
                Ok(Event { kind: EventKind::Delete, kv: kv("/k", "old", 3, 9), prev: Some(live.clone()) }),
            ),
            (
                "delete with stale revision",
                WriteKind::Delete { expected: Some(7) },
                Some(live.clone()),
                Err(Error::Conflict { key: "/k".into(), expected: 7, actual: 5 }),
            ),
        ];
        for (name, kind, current, want) in cases {
            let got = plan_write(&req(kind), current.as_ref(), 9);
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "case {name}");
        }
    }

    #[test]
    fn prefix_end_is_the_next_string_after_all_prefixed_keys() {
        let cases: Vec<(&str, Option<String>)> = vec![
            ("", None),
            ("/registry/pods/", Some("/registry/pods0".to_owned())),
            ("a", Some("b".to_owned())),
            ("a\u{10FFFF}", Some("b".to_owned())),
            ("\u{10FFFF}", None),
            ("x\u{D7FF}", Some("x\u{E000}".to_owned())),
        ];
        for (prefix, want) in cases {
            assert_eq!(prefix_end(prefix), want, "prefix {prefix:?}");
        }
    }

    #[test]
    fn prefix_range_selects_exactly_prefixed_keys() {
        let prefix = "/registry/pods/";
        let end = prefix_end(prefix).unwrap_or_default();
        let keys = [
            "/registry/pods/a",
            "/registry/pods/\u{10FFFF}\u{10FFFF}",
            "/registry/pods",
            "/registry/pods0",
            "/registry/podsx",
            "/registry/services/a",
        ];
        for key in keys {
            let in_range = key >= prefix && key < end.as_str();
            assert_eq!(in_range, matches_prefix(key, prefix), "key {key:?}");
        }
    }
}
