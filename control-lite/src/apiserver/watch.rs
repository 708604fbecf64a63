//! Watch streams: store events -> filtered `WatchEvent` JSON lines.
//!
//! [`translate`] decides what one store event means to one watcher (its
//! selectors turn modifications into ADDED/DELETED when an object enters or
//! leaves the selection); [`serve`] streams the lines, flushing per event, and
//! stops on timeout, client disconnect, server shutdown, or when the client
//! does not accept an event within `ApiConfig::watch_deadline` (the store
//! drops its watcher after the same deadline, so writers never wait).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::crud;
use super::objects::{decode, meta_str};
use super::options::WatchOptions;
use super::registry::ResourceInfo;
use super::response::stream_response;
use super::selectors::Selectors;
use super::status::{ApiError, Result};
use super::table::{self, IncludeObject};
use super::ApiState;
use crate::store::{self, EventKind};

/// Longest watch when the client gives no `timeoutSeconds`.
const MAX_WATCH: Duration = Duration::from_secs(30 * 60);
/// How often BOOKMARK events are sent to clients that allow them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(20);

/// What one store event means to a watcher with `selectors`.
/// Objects of custom resources are shown as `info`'s version.
pub fn translate(
    info: &ResourceInfo,
    event: &store::Event,
    selectors: &Selectors,
) -> Result<Option<(&'static str, Value)>> {
    let mut obj = decode(&event.kv)?;
    super::crd::to_version(info, &mut obj);
    let now = selectors.matches(&obj);
    if event.kind == EventKind::Delete {
        return Ok(now.then_some(("DELETED", obj)));
    }
    let before = match &event.prev {
        Some(prev) => selectors.matches(&decode(prev)?),
        None => false,
    };
    Ok(match (before, now) {
        (false, true) => Some(("ADDED", obj)),
        (true, true) => Some(("MODIFIED", obj)),
        (true, false) => Some(("DELETED", obj)),
        (false, false) => None,
    })
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// Serves a watch on `info` (one namespace or all).
pub async fn serve(
    state: &ApiState,
    info: &'static ResourceInfo,
    ns: Option<&str>,
    selectors: Selectors,
    opts: &WatchOptions,
    mode: Option<IncludeObject>,
) -> Result<Response> {
    let send_initial = opts.send_initial_events;
    let bookmarks = opts.bookmarks;
    let timeout = opts.timeout.unwrap_or(MAX_WATCH).min(MAX_WATCH);
    let accept_within = state.config.watch_deadline;
    let (initial, after) = match opts.resource_version {
        Some(rv) if rv != 0 && !send_initial => (Vec::new(), rv),
        _ => crud::list(state, info, ns, &selectors).await?,
    };
    let prefix = info.prefix(ns);
    let events = match state.store.watch_with_deadline(&prefix, after, accept_within).await {
        Ok(rx) => Some(rx),
        Err(store::Error::Compacted { requested, compacted }) => {
            tracing::debug!(requested, compacted, prefix, "watch from a compacted revision");
            None
        }
        Err(e) => return Err(ApiError::from_store(info, "", "watch", &prefix, e)),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let closed = tx.clone();
    let token = state.token.clone();
    let render = move |kind: &str, obj: &Value, first: bool| -> Bytes {
        match mode {
            Some(m) => {
                let rv = meta_str(obj, "resourceVersion").unwrap_or_default().to_string();
                line(kind, &table::table(info, std::slice::from_ref(obj), m, &rv, first))
            }
            None => line(kind, obj),
        }
    };
    let Some(mut events) = events else {
        let (_, status) = ApiError::Gone { requested: after, compacted: state.store.compacted_revision() }.to_status();
        return Ok(stream_response(Body::from(line("ERROR", &status)), "application/json"));
    };
    let open = OpenWatch::new(state.open_watches.clone());
    // A client that does not accept an event within the deadline ends the
    // watch (its connection is closed by the stalled-write guard).
    let send = move |bytes: Bytes| {
        let tx = tx.clone();
        async move { matches!(tokio::time::timeout(accept_within, tx.send(bytes)).await, Ok(Ok(()))) }
    };
    tokio::spawn(async move {
        let _open = open;
        let mut first = true;
        let mut last_rv = after;
        for obj in &initial {
            if !send(render("ADDED", obj, first)).await {
                return;
            }
            first = false;
        }
        if send_initial {
            let bookmark = json!({"kind": info.kind_name, "apiVersion": info.api_version(), "metadata": {
                "resourceVersion": after.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
            if !send(line("BOOKMARK", &bookmark)).await {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticks = tokio::time::interval(BOOKMARK_EVERY);
        ticks.tick().await;
        loop {
            let out = tokio::select! {
                _ = token.cancelled() => return,
                _ = &mut deadline => return,
                _ = closed.closed() => return,
                _ = ticks.tick(), if bookmarks => {
                    let bookmark = json!({"kind": info.kind_name, "apiVersion": info.api_version(),
                        "metadata": {"resourceVersion": last_rv.to_string()}});
                    line("BOOKMARK", &bookmark)
                }
                ev = events.recv() => {
                    let Some(ev) = ev else { return };
                    last_rv = ev.revision();
                    match translate(info, &ev, &selectors) {
                        Ok(Some((kind, obj))) => {
                            let b = render(kind, &obj, first);
                            first = false;
                            b
                        }
                        Ok(None) => continue,
                        Err(error) => {
                            tracing::warn!(%error, "watch: undecodable event skipped");
                            continue;
                        }
                    }
                }
            };
            if !send(out).await {
                tracing::debug!(prefix, "watch: client did not accept an event in time; closing");
                return;
            }
        }
    });
    let stream = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    Ok(stream_response(Body::from_stream(stream), "application/json"))
}

/// Counts a watch as open while alive.
struct OpenWatch(Arc<AtomicUsize>);

impl OpenWatch {
    fn new(count: Arc<AtomicUsize>) -> OpenWatch {
        count.fetch_add(1, Ordering::Relaxed);
        OpenWatch(count)
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::selectors::LabelSelector;
    use crate::store::{Event, KeyValue};

    fn kv(labels: Value, rev: i64) -> KeyValue {
        KeyValue {
            key: "/registry/core/pods/default/p".into(),
            value: json!({"metadata": {"name": "p", "labels": labels}}).to_string().into_bytes(),
            create_revision: 1,
            mod_revision: rev,
        }
    }

    #[test]
    fn selector_transitions_become_added_and_deleted() {
        let sel = Selectors { labels: LabelSelector::parse("app=web").expect("sel"), ..Selectors::default() };
        let web = json!({"app": "web"});
        let db = json!({"app": "db"});
        let put = |prev: Option<KeyValue>, new: KeyValue| Event { kind: EventKind::Put, kv: new, prev };
        let cases = [
            (put(None, kv(web.clone(), 2)), Some("ADDED")),
            (put(None, kv(db.clone(), 2)), None),
            (put(Some(kv(web.clone(), 2)), kv(web.clone(), 3)), Some("MODIFIED")),
            (put(Some(kv(web.clone(), 2)), kv(db.clone(), 3)), Some("DELETED")),
            (put(Some(kv(db.clone(), 2)), kv(web.clone(), 3)), Some("ADDED")),
            (
                Event { kind: EventKind::Delete, kv: kv(web.clone(), 4), prev: Some(kv(web.clone(), 3)) },
                Some("DELETED"),
            ),
            (Event { kind: EventKind::Delete, kv: kv(db.clone(), 4), prev: Some(kv(db.clone(), 3)) }, None),
        ];
        for (ev, want) in cases {
            let got = translate(crate::apiserver::registry::by_kind(crate::apiserver::registry::Kind::Pod), &ev, &sel)
                .expect("decode");
            assert_eq!(got.as_ref().map(|(k, _)| *k), want, "{ev:?}");
            if let Some((_, obj)) = got {
                assert_eq!(obj["metadata"]["resourceVersion"], ev.kv.mod_revision.to_string());
            }
        }
    }
}
