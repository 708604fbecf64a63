//! Watches on etcd: an etcd watch from `after + 1` with prev kv, whose
//! events are translated to the store's [`Event`]s and delivered through the
//! same per-watcher queue as the SQLite backend's (a one-watcher [`Hub`]),
//! so deadlines and the backlog backstop behave the same.
//!
//! Replay without gaps or duplicates is etcd's: a watch from a revision
//! streams every later event of the range in revision order, history first.
//! A watch from a compacted revision fails with `Compacted` before it is
//! returned (a read at revision `after` tells); if a compaction races the
//! start, etcd cancels the watch and the receiver ends, so the client
//! re-watches and then gets the `Compacted`.

use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions, WatchStream};
use tokio::time::Instant;

use super::{is_compacted, is_future, Etcd, MAX_RESPONSE_BYTES};
use crate::store::watch::Hub;
use crate::store::{Error, Event, EventKind, KeyValue, Result, Revision, WatchReceiver};

/// How often a quiet watch checks whether its receiver is gone or overdue.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// Starts a watch of keys under `prefix` from revision `after + 1`.
pub(super) async fn start(etcd: &Etcd, prefix: &str, after: Revision, deadline: Duration) -> Result<WatchReceiver> {
    let compacted = etcd.compacted_revision();
    if after < compacted {
        return Err(Error::Compacted { requested: after, compacted });
    }
    if after > 0 {
        // etcd refuses a read below its compaction: is `after` still there?
        let (from, end) = etcd.range_of(prefix);
        let at_after = GetOptions::new().with_range(end).with_count_only().with_revision(after);
        match etcd.range("watch", &from, Some(at_after)).await {
            Ok(_) => {}
            Err(Error::Etcd { source, .. }) if is_compacted(&source) => {
                let compacted = compacted.max(after.saturating_add(1));
                return Err(Error::Compacted { requested: after, compacted });
            }
            // Watching from the future is allowed: events start above `after`.
            Err(Error::Etcd { source, .. }) if is_future(&source) => {}
            Err(error) => return Err(error),
        }
    }
    let (from, end) = etcd.range_of(prefix);
    let options = WatchOptions::new().with_range(end).with_prev_key().with_start_revision(after.saturating_add(1));
    let key = etcd.key(&from);
    let open = || {
        let mut client = etcd.inner.client.watch_client().max_decoding_message_size(MAX_RESPONSE_BYTES);
        let (key, options) = (key.clone(), options.clone());
        async move { client.watch(key, Some(options)).await }
    };
    let mut stream = etcd.call_retrying("watch", prefix, open).await?;
    // The first response confirms (or refuses) the watch.
    let first = etcd.call("watch", prefix, stream.message()).await?;
    match first {
        Some(response) if response.created() && !response.canceled() => {}
        Some(response) if response.compact_revision() > 0 => {
            etcd.inner.revisions.raise_compacted(response.compact_revision());
            return Err(Error::Compacted { requested: after, compacted: response.compact_revision() });
        }
        other => {
            let why = other.map_or_else(|| "stream ended".to_owned(), |r| r.cancel_reason().to_owned());
            let source = Box::new(etcd_client::Error::WatchError(why));
            return Err(Error::Etcd { op: "watch", key: prefix.to_owned(), source });
        }
    }
    let mut hub = Hub::new(etcd.inner.watch_max_backlog);
    let receiver = hub.register(prefix.to_owned(), after, deadline, Vec::new(), Instant::now().into_std());
    tokio::spawn(pump(etcd.clone(), stream, hub, prefix.to_owned()));
    Ok(receiver)
}

/// Moves etcd's responses into the hub until the watcher is gone, etcd
/// ends the watch, or the store closes. Dropping the stream cancels the
/// etcd watch.
async fn pump(etcd: Etcd, mut stream: WatchStream, mut hub: Hub, prefix: String) {
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        let message = tokio::select! {
            _ = etcd.inner.closed.cancelled() => return,
            _ = prune.tick() => {
                hub.publish(&[], std::time::Instant::now());
                if hub.is_empty() {
                    return;
                }
                continue;
            }
            message = stream.message() => message,
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => {
                tracing::info!(prefix, "store: etcd ended a watch");
                return;
            }
            Err(error) => {
                tracing::warn!(prefix, %error, "store: etcd watch failed");
                return;
            }
        };
        etcd.observe(response.header());
        if response.canceled() {
            etcd.inner.revisions.raise_compacted(response.compact_revision());
            tracing::info!(prefix, reason = response.cancel_reason(), "store: etcd cancelled a watch");
            return;
        }
        let events: Vec<Event> = response
            .events()
            .iter()
            .filter_map(|e| {
                let kv = e.kv().and_then(|kv| etcd.store_kv(kv));
                translate(e.event_type(), kv, e.prev_kv().and_then(|kv| etcd.store_kv(kv)))
            })
            .collect();
        hub.publish(&events, std::time::Instant::now());
        if hub.is_empty() {
            return;
        }
    }
}

/// The store event of an etcd event, as the SQLite backend reports it: a
/// put whose create and mod revisions are equal is a create (no `prev`); a
/// delete carries the last value at the delete's revision.
pub(super) fn translate(kind: EventType, kv: Option<KeyValue>, prev: Option<KeyValue>) -> Option<Event> {
    let kv = kv?;
    match kind {
        EventType::Put => {
            let prev = if kv.create_revision == kv.mod_revision { None } else { prev };
            Some(Event { kind: EventKind::Put, kv, prev })
        }
        EventType::Delete => {
            // etcd keeps the prev kv unless it was compacted meanwhile.
            let last = prev.clone().unwrap_or_else(|| KeyValue {
                key: kv.key.clone(),
                value: Vec::new(),
                create_revision: 0,
                mod_revision: 0,
            });
            Some(Event { kind: EventKind::Delete, kv: KeyValue { mod_revision: kv.mod_revision, ..last }, prev })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, create: Revision, modified: Revision) -> KeyValue {
        KeyValue { key: key.into(), value: value.into(), create_revision: create, mod_revision: modified }
    }

    #[test]
    fn puts_and_deletes_translate_as_the_sqlite_backend_reports_them() {
        let created = translate(EventType::Put, Some(kv("/a", "1", 5, 5)), None).expect("event");
        assert_eq!((created.kind, created.prev), (EventKind::Put, None));
        let updated = translate(EventType::Put, Some(kv("/a", "2", 5, 7)), Some(kv("/a", "1", 5, 5))).expect("event");
        assert_eq!(updated.prev, Some(kv("/a", "1", 5, 5)));
        assert_eq!(updated.revision(), 7);
        // etcd's delete event has an empty value and zero create revision.
        let deleted = translate(EventType::Delete, Some(kv("/a", "", 0, 9)), Some(kv("/a", "2", 5, 7))).expect("event");
        assert_eq!(deleted.kind, EventKind::Delete);
        assert_eq!(deleted.kv, kv("/a", "2", 5, 9), "the last value at the delete's revision");
        assert_eq!(deleted.prev, Some(kv("/a", "2", 5, 7)));
        assert!(translate(EventType::Put, None, None).is_none());
    }
}
