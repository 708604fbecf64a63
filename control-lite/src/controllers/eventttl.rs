//! Event TTL: deletes core/v1 Events nobody has touched for the TTL (1 h by
//! default, as upstream, whose apiserver gives each Event an etcd lease).
//! Without it Events, which have no owners for the garbage collector, would
//! grow the store forever.
//!
//! Owns: the pure choice of expired Events (`expired`) and a periodic sweep
//! that deletes them. Must not: touch anything but Events.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::is_not_found;
use super::nodelifecycle::Clock;

/// How long an untouched Event lives.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// How often the sweep runs.
pub const SWEEP_PERIOD: Duration = Duration::from_secs(60);

/// When an Event was last touched: its newest timestamp of any kind.
fn last_touched(event: &Event) -> Option<jiff::Timestamp> {
    [
        event.last_timestamp.as_ref().map(|t| t.0),
        event.event_time.as_ref().map(|t| t.0),
        event.first_timestamp.as_ref().map(|t| t.0),
        event.metadata.creation_timestamp.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .max()
}

/// `(namespace, name)` of the Events older than `ttl` at `now`.
pub fn expired(events: &[Event], now: jiff::Timestamp, ttl: Duration) -> Vec<(String, String)> {
    let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX);
    events
        .iter()
        .filter(|e| last_touched(e).is_some_and(|t| now.duration_since(t) > ttl))
        .map(|e| (e.namespace().unwrap_or_default(), e.name_any()))
        .collect()
}

/// Runs the sweep with the wall clock and the defaults.
pub async fn run(client: Client, token: CancellationToken) {
    run_with(client, token, DEFAULT_TTL, SWEEP_PERIOD, Arc::new(jiff::Timestamp::now)).await;
}

/// Runs the sweep with an explicit TTL, period and clock.
pub async fn run_with(client: Client, token: CancellationToken, ttl: Duration, period: Duration, clock: Clock) {
    let all: Api<Event> = Api::all(client.clone());
    loop {
        match all.list(&ListParams::default()).await {
            Ok(list) => {
                for (namespace, name) in expired(&list.items, clock(), ttl) {
                    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
                    match api.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => tracing::debug!(namespace, name, "expired event deleted"),
                        Err(error) if is_not_found(&error) => {}
                        Err(error) => tracing::warn!(%error, namespace, name, "deleting expired event"),
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "listing events for the TTL sweep"),
        }
        tokio::select! {
            () = token.cancelled() => break,
            () = tokio::time::sleep(period) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn event(name: &str, created_minutes_ago: i64, last_minutes_ago: Option<i64>, now: jiff::Timestamp) -> Event {
        let ago = |m: i64| Time(now - jiff::SignedDuration::from_mins(m));
        Event {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                creation_timestamp: Some(ago(created_minutes_ago)),
                ..Default::default()
            },
            last_timestamp: last_minutes_ago.map(ago),
            ..Default::default()
        }
    }

    #[test]
    fn events_untouched_for_longer_than_the_ttl_expire() {
        let now = jiff::Timestamp::now();
        let events = [
            event("old", 120, Some(90), now),
            event("old-created-recently-repeated", 120, Some(5), now),
            event("fresh", 10, None, now),
            event("old-no-last", 61, None, now),
        ];
        let gone = expired(&events, now, DEFAULT_TTL);
        assert_eq!(gone, vec![("default".to_string(), "old".to_string()), ("default".into(), "old-no-last".into())]);
    }
}
