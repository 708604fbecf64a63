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
//! re-watches and then gets the `Compacted`. The compacted revision in that
//! error is etcd's own, learned from the watch response that reports it
//! (recorded as the store's compacted revision).
//!
//! A delete event without the deleted value (etcd omits the previous kv
//! when the revision before the delete was compacted meanwhile) cannot be
//! reported as the contract says: the watch ends after the events before it,
//! as for a compaction, so the client re-watches from its last revision,
//! gets `Compacted` (410) and re-lists.

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
                // etcd's compacted revision if it tells; else a lower bound.
                let known = compacted_since(etcd, prefix, after).await;
                let compacted = known.unwrap_or_else(|| compacted.max(after.saturating_add(1)));
                return Err(Error::Compacted { requested: after, compacted });
            }
            // Watching from the future is allowed: events start above `after`.
            Err(Error::Etcd { source, .. }) if is_future(&source) => {}
            Err(error) => return Err(error),
        }
    }
    let mut stream = open(etcd, prefix, after).await?;
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

/// Opens an etcd watch of keys under `prefix` from revision `after + 1`.
async fn open(etcd: &Etcd, prefix: &str, after: Revision) -> Result<WatchStream> {
    let (from, end) = etcd.range_of(prefix);
    let options = WatchOptions::new().with_range(end).with_prev_key().with_start_revision(after.saturating_add(1));
    let key = etcd.key(&from);
    let open = || {
        let mut client = etcd.inner.client.watch_client().max_decoding_message_size(MAX_RESPONSE_BYTES);
        let (key, options) = (key.clone(), options.clone());
        async move { client.watch(key, Some(options)).await }
    };
    etcd.call_retrying("watch", prefix, open).await
}

/// etcd's compacted revision, known to be above `after`: a watch from
/// `after + 1` is cancelled with it (etcd reports it nowhere else). Recorded
/// as the store's compacted revision; `None` if etcd did not tell within
/// the request timeout.
async fn compacted_since(etcd: &Etcd, prefix: &str, after: Revision) -> Option<Revision> {
    let ask = async {
        let mut stream = open(etcd, prefix, after).await.ok()?;
        // At most a created response, then the cancellation.
        for _ in 0..4 {
            let response = stream.message().await.ok()??;
            if response.compact_revision() > 0 {
                return Some(response.compact_revision());
            }
            if response.canceled() {
                return None;
            }
        }
        None
    };
    let compacted = tokio::time::timeout(etcd.inner.options.request_timeout, ask).await.ok().flatten()?;
    etcd.inner.revisions.raise_compacted(compacted);
    Some(compacted)
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
        let mut events = Vec::with_capacity(response.events().len());
        let mut gone = false;
        for e in response.events() {
            let kv = e.kv().and_then(|kv| etcd.store_kv(kv));
            match translate(e.event_type(), kv, e.prev_kv().and_then(|kv| etcd.store_kv(kv))) {
                Ok(event) => events.extend(event),
                Err(HistoryGone) => {
                    gone = true;
                    break;
                }
            }
        }
        hub.publish(&events, std::time::Instant::now());
        if gone {
            tracing::info!(prefix, "store: etcd sent a delete without its last value (compacted); ending the watch");
            return;
        }
        if hub.is_empty() {
            return;
        }
    }
}

/// A delete event whose deleted value etcd no longer has (compacted).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct HistoryGone;

/// The store event of an etcd event, as the SQLite backend reports it: a
/// put whose create and mod revisions are equal is a create (no `prev`); a
/// delete carries the last value at the delete's revision, and without it
/// (etcd omits the prev kv when it was compacted meanwhile) is
/// [`HistoryGone`]. `Ok(None)` for a key the store skips.
pub(super) fn translate(
    kind: EventType,
    kv: Option<KeyValue>,
    prev: Option<KeyValue>,
) -> Result<Option<Event>, HistoryGone> {
    let Some(kv) = kv else { return Ok(None) };
    match kind {
        EventType::Put => {
            let prev = if kv.create_revision == kv.mod_revision { None } else { prev };
            Ok(Some(Event { kind: EventKind::Put, kv, prev }))
        }
        EventType::Delete => {
            let last = prev.clone().ok_or(HistoryGone)?;
            Ok(Some(Event { kind: EventKind::Delete, kv: KeyValue { mod_revision: kv.mod_revision, ..last }, prev }))
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
        let event = |kind, kv, prev| translate(kind, kv, prev).expect("translated").expect("event");
        let created = event(EventType::Put, Some(kv("/a", "1", 5, 5)), None);
        assert_eq!((created.kind, created.prev), (EventKind::Put, None));
        let updated = event(EventType::Put, Some(kv("/a", "2", 5, 7)), Some(kv("/a", "1", 5, 5)));
        assert_eq!(updated.prev, Some(kv("/a", "1", 5, 5)));
        assert_eq!(updated.revision(), 7);
        // etcd's delete event has an empty value and zero create revision.
        let deleted = event(EventType::Delete, Some(kv("/a", "", 0, 9)), Some(kv("/a", "2", 5, 7)));
        assert_eq!(deleted.kind, EventKind::Delete);
        assert_eq!(deleted.kv, kv("/a", "2", 5, 9), "the last value at the delete's revision");
        assert_eq!(deleted.prev, Some(kv("/a", "2", 5, 7)));
        assert_eq!(translate(EventType::Put, None, None), Ok(None), "a key the store skips");
        // Without the deleted value the event cannot be reported: the watch ends.
        assert_eq!(translate(EventType::Delete, Some(kv("/a", "", 0, 9)), None), Err(HistoryGone));
    }
}
